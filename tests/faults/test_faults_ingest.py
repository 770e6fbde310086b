"""Ingest (Spark): SIGKILL while it writes, then rerun; a corrupt input file under both
``ingest.on_corrupt_file`` policies. One job process; the rest reuses the session's Spark."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultkit import REPO, SNAP, committed_rows, comparable

from jobs.cli import run_job
from jobs.commit import SUCCESS
from jobs.config import StorageConfig
from jobs.errors import EXIT_PERMANENT, EXIT_TRANSIENT, kind
from jobs.ingest import ingest
from jobs.layout import Layout
from jobs.storage import Storage, join

GOOD = (REPO / "tests" / "fixtures" / "ingest" / "good.jsonl").read_bytes()
SETS = ("ingest.max_text_chars=200", "spark.shuffle_partitions=2", "spark.master=local[2]")


def corpus(root: Path) -> Path:
    folder = root / "corpus" / SNAP
    folder.mkdir(parents=True)
    extra = [json.dumps({"id": f"x{i}", "text": f"Extra document {i}."}) for i in range(20)]
    (folder / "a.jsonl").write_bytes(GOOD + b'{"id": "m1", "text": "broken\n')
    (folder / "b.jsonl.gz").write_bytes(gzip.compress("\n".join(extra).encode() + b"\n", mtime=0))
    return folder


def argv(root: Path, attempt: str, *sets: str) -> list[str]:
    out = ["--snapshot", SNAP, "--attempt", attempt, "--set", f'storage.root_uri="file://{root}"']
    for item in (*SETS, *sets):
        out += ["--set", item]
    return out


def ingest_in_process(root: Path, attempt: str, *sets: str) -> int:
    return run_job("ingest", argv(root, attempt, *sets), ingest.run, ingest._parser(),
                   raise_errors=False)  # fmt: skip


def outputs(root: Path) -> dict[str, list]:
    layout = Layout(f"file://{root}", SNAP)
    storage = Storage(StorageConfig(root_uri=f"file://{root}"))
    docs = committed_rows(storage, layout.table("documents_raw"), "doc_id")
    quarantine = committed_rows(storage, layout.quarantine("ingest"), "raw")
    return {"docs": docs, "quarantine": quarantine}


def test_kill_ingest_while_writing_then_rerun(spark, tmp_path, record):
    base, faulty = tmp_path / "base", tmp_path / "faulty"
    corpus(base), corpus(faulty)
    assert ingest_in_process(base, "1") == 0
    expected = outputs(base)
    assert len(expected["docs"]) == 23 and len(expected["quarantine"]) == 1

    layout = Layout(f"file://{faulty}", SNAP)
    # Each attempt stages under a folder of its own below _tmp (jobs/commit.py).
    tmp_dirs = [Path(layout.table("documents_raw")[7:]) / "_tmp",
                Path(layout.quarantine("ingest")[7:]) / "_tmp"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "SYNTHLLM_FAULT"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.ingest.ingest", *argv(faulty, "1")],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not any(d.is_dir() and any(d.iterdir()) for d in tmp_dirs) and proc.poll() is None:
            assert time.monotonic() < deadline, "ingest never started writing"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the JVM dies with its driver anyway
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -9, proc.stderr.read().decode()[-2000:]
    assert not (Path(layout.table("documents_raw")[7:]) / SUCCESS).exists()

    assert ingest_in_process(faulty, "2") == 0
    got = outputs(faulty)
    for name in ("docs", "quarantine"):  # the same rows, up to the root folder in source_file
        assert comparable(got[name]).replace(str(faulty), "ROOT") == comparable(
            expected[name]
        ).replace(str(base), "ROOT")
    record(
        "SIGKILL while writing",
        "ingest (spark)",
        "exit -9, documents_raw uncommitted; rerun committed, 24 = 23 + 1 quarantined, "
        "no dup doc_ids, same rows as an undisturbed run",
    )


def test_corrupt_input_file_under_both_policies(spark, tmp_path, caplog, record):
    folder = corpus(tmp_path)
    (folder / "c.jsonl.gz").write_bytes(gzip.compress(b'{"text": "lost"}\n' * 50)[:-12])
    broken = f"file://{folder}/c.jsonl.gz"
    storage = Storage(StorageConfig(root_uri=f"file://{tmp_path}"))
    layout = Layout(f"file://{tmp_path}", SNAP)

    with caplog.at_level(logging.ERROR, logger="jobs"):
        code = ingest_in_process(tmp_path, "1", 'ingest.on_corrupt_file="fail"')
    assert code == EXIT_PERMANENT
    assert "c.jsonl.gz" in caplog.text and "corrupt input file" in caplog.text
    assert not storage.exists(join(layout.table("documents_raw"), SUCCESS))
    record("corrupt .jsonl.gz, policy fail", "ingest (spark)",
           f"exit {code} ({kind(code)}), error names c.jsonl.gz, nothing committed")  # fmt: skip

    assert ingest_in_process(tmp_path, "2", 'ingest.on_corrupt_file="quarantine"') == 0
    got = outputs(tmp_path)
    assert len(got["docs"]) == 23
    unreadable = [r for r in got["quarantine"] if r["reason"] == "unreadable_file"]
    assert [r["source_file"] for r in unreadable] == [broken]
    stats = storage.read_json(join(layout.table("documents_raw"), "_stats.json"))
    assert (stats["rows_in"], stats["rows_out"], stats["rows_quarantined"]) == (25, 23, 2)
    record(
        "corrupt .jsonl.gz, policy quarantine",
        "ingest (spark)",
        "other files ingested, unreadable_file row names c.jsonl.gz, 25 = 23 + 2 quarantined",
    )


def test_rows_that_used_to_kill_ingest_are_quarantined(spark, tmp_path, record):
    """The issue's snapshot: a lone surrogate in a list id, a row nested 300,000 levels deep."""
    folder = corpus(tmp_path)
    (folder / "c.jsonl").write_bytes(
        b'{"id": ["\\ud800"], "text": "Lone surrogate in the id."}\n'
        + b"[" * 300_000
        + b"]" * 300_000
        + b"\n"
    )
    code = ingest_in_process(tmp_path, "1")
    assert code == 0  # was 1 (UnicodeEncodeError / RecursionError) on every retry
    got = outputs(tmp_path)
    assert len(got["docs"]) == 23
    assert sorted(r["reason"] for r in got["quarantine"]) == [
        "invalid_id", "malformed_json", "nesting_too_deep"]  # fmt: skip
    storage = Storage(StorageConfig(root_uri=f"file://{tmp_path}"))
    stats = storage.read_json(join(Layout(f"file://{tmp_path}", SNAP).table("documents_raw"),
                                   "_stats.json"))  # fmt: skip
    assert (stats["rows_in"], stats["rows_out"], stats["rows_quarantined"]) == (26, 23, 3)
    record("lone surrogate in a list id; 300,000-deep nesting", "ingest (spark)",
           "exit 0 (was 1 on every retry): invalid_id + nesting_too_deep, 26 = 23 + 3")  # fmt: skip


def test_snapshot_still_landing_is_transient_until_its_marker(spark, tmp_path, caplog, record):
    folder = corpus(tmp_path)
    sets = ("corpus.require_marker=true", "corpus.marker_wait_s=0.2", "corpus.marker_poll_s=0.05")
    with caplog.at_level(logging.ERROR, logger="jobs"):
        code = ingest_in_process(tmp_path, "1", *sets)
    assert code == EXIT_TRANSIENT
    assert f"snapshot file://{folder} is not complete: no _SUCCESS" in caplog.text
    assert not (tmp_path / "runs").exists()  # nothing read, nothing staged
    (folder / "_SUCCESS").write_text("")  # the copy finished: the retry ingests
    assert ingest_in_process(tmp_path, "2", *sets) == 0
    assert len(outputs(tmp_path)["docs"]) == 23
    docs_uri = Layout(f"file://{tmp_path}", SNAP).table("documents_raw")
    manifest = Storage(StorageConfig(root_uri=f"file://{tmp_path}")).read_json(
        join(docs_uri, "_manifest.json")
    )
    assert manifest["corpus_marker"] == f"file://{folder}/_SUCCESS"
    record("snapshot without its _SUCCESS marker (require_marker)", "ingest",
           f"exit {code} ({kind(code)}) after the bounded wait, nothing written; "
           "with the marker the retry ingests 23 rows")  # fmt: skip


@pytest.fixture(autouse=True)
def _no_fault_env(monkeypatch):
    monkeypatch.delenv("SYNTHLLM_FAULT", raising=False)
