"""`corpus.require_marker`: ingest waits for the completion marker, then fails transient."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from jobs.config import ConfigError, CorpusConfig, StorageConfig, load_config
from jobs.corpus.marker import SnapshotNotReadyError, wait_for_marker
from jobs.errors import EXIT_TRANSIENT, classify
from jobs.storage import Storage

SNAP = "snap-m"


class FakeTime:
    """A clock that only moves when slept on; ``on_sleep`` runs after each sleep."""

    def __init__(self, on_sleep=None):
        self.now = 100.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))


def _snapshot(tmp_path: Path) -> tuple[Storage, str, Path]:
    folder = tmp_path / "corpus" / SNAP
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text('{"text": "x"}\n')
    return Storage(StorageConfig(root_uri=f"file://{tmp_path}")), f"file://{folder}", folder


def test_not_required_means_no_wait_and_no_lookup(tmp_path):
    t = FakeTime()
    assert wait_for_marker(None, "file:///nowhere", CorpusConfig(), t.sleep, t.clock) is None
    assert t.sleeps == []


def test_present_marker_returns_at_once(tmp_path):
    storage, uri, folder = _snapshot(tmp_path)
    (folder / "_SUCCESS").write_text("")
    t = FakeTime()
    cfg = CorpusConfig(require_marker=True)
    assert wait_for_marker(storage, uri, cfg, t.sleep, t.clock) == f"{uri}/_SUCCESS"
    assert t.sleeps == []


def test_marker_that_lands_during_the_wait(tmp_path):
    storage, uri, folder = _snapshot(tmp_path)
    t = FakeTime(on_sleep=lambda n: n == 3 and (folder / "_DONE").write_text(""))
    cfg = CorpusConfig(require_marker=True, marker_name="_DONE", marker_wait_s=600, marker_poll_s=5)
    assert wait_for_marker(storage, uri, cfg, t.sleep, t.clock) == f"{uri}/_DONE"
    assert t.sleeps == [5, 5, 5]


def test_missing_marker_waits_the_bound_then_fails_transient(tmp_path):
    storage, uri, _ = _snapshot(tmp_path)
    t = FakeTime()
    cfg = CorpusConfig(require_marker=True, marker_wait_s=40, marker_poll_s=15)
    with pytest.raises(SnapshotNotReadyError) as info:
        wait_for_marker(storage, uri, cfg, t.sleep, t.clock)
    assert t.sleeps == [15, 15, 10]  # bounded: the last poll does not overshoot the wait
    message = str(info.value)
    assert f"snapshot {uri} is not complete: no _SUCCESS after waiting 40 s" in message
    assert "transient" in message and f"{uri}/_SUCCESS" in message
    assert classify(info.value) == EXIT_TRANSIENT


def test_zero_wait_fails_without_sleeping(tmp_path):
    storage, uri, _ = _snapshot(tmp_path)
    t = FakeTime()
    with pytest.raises(SnapshotNotReadyError):
        wait_for_marker(storage, uri, CorpusConfig(require_marker=True, marker_wait_s=0), t.sleep,
                        t.clock)  # fmt: skip
    assert t.sleeps == []


@pytest.mark.parametrize(
    "override",
    ['corpus.marker_name="a/_SUCCESS"', "corpus.marker_poll_s=0", "corpus.marker_wait_s=-1"],
)
def test_bad_marker_settings_are_config_errors(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].split(".")[1]):
        load_config("local", None, [override])


def test_ingest_without_marker_exits_transient_before_spark(tmp_path, caplog):
    from jobs.cli import run_job
    from jobs.ingest import ingest

    _snapshot(tmp_path)
    argv = ["--snapshot", SNAP, "--set", f'storage.root_uri="file://{tmp_path}"']
    for item in ("corpus.require_marker=true", "corpus.marker_wait_s=0"):
        argv += ["--set", item]
    with caplog.at_level(logging.ERROR, logger="jobs"):
        code = run_job("ingest", argv, ingest.run, ingest._parser(), raise_errors=False)
    assert code == EXIT_TRANSIENT
    assert f"snapshot file://{tmp_path}/corpus/{SNAP} is not complete: no _SUCCESS" in caplog.text
    assert not (tmp_path / "runs").exists()
