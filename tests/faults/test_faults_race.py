"""Two attempts of one stage as real processes: a zombie stopped (SIGSTOP) inside its commit
and resumed after its retry committed, and two attempts committing at the same time.

``answers.collect`` commits quarantine/answers, then qa (jobs/llm/shards.py); both are fenced
(jobs/commit.py), so the outputs hold exactly one attempt's files whatever the interleaving.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from faultkit import REPO, SNAP, answered, committed_rows, comparable, ctx, run_process

from jobs.answers import collect
from jobs.commit import MANIFEST, SUCCESS
from jobs.errors import EXIT_TRANSIENT
from jobs.layout import Layout
from jobs.storage import Storage, join


def outputs(cfg) -> dict[str, str]:
    layout = Layout(cfg.storage.root_uri, SNAP)
    return {"qa": layout.table("qa"), "quarantine/answers": layout.quarantine("answers")}


def committed_by(storage: Storage, uri: str) -> str:
    """The attempt whose commit ``uri`` holds; its manifest must say the same."""
    attempt = storage.read_json(join(uri, SUCCESS))["attempt"]
    assert storage.read_json(join(uri, MANIFEST))["commit"]["attempt"] == attempt
    return attempt


def state(storage: Storage, cfg) -> dict[str, tuple[str, str]]:
    """Per output: (attempt, rows); each balanced, without duplicates or ``_tmp``."""
    ids = {"qa": "question_id", "quarantine/answers": "raw"}
    return {
        name: (committed_by(storage, uri), comparable(committed_rows(storage, uri, ids[name])))
        for name, uri in outputs(cfg).items()
    }


def start(cfg, attempt: str, fault: str | None, log_path) -> subprocess.Popen:
    """``answers.collect`` as a task runner starts it, not waited for."""
    env = {k: v for k, v in os.environ.items() if k != "SYNTHLLM_FAULT"}
    if fault:
        env["SYNTHLLM_FAULT"] = fault
    root = f'storage.root_uri="{cfg.storage.root_uri}"'
    argv = [sys.executable, "-m", "jobs.answers.collect", "--snapshot", SNAP]
    argv += ["--attempt", attempt, "--set", root]
    with open(log_path, "w") as log:
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("point", ["before_commit@quarantine/answers", "after_moves@qa"])
def test_a_zombie_resumed_after_its_retry_committed_changes_nothing(
    point, make_config, tmp_path, record
):
    cfg = make_config()
    answered(cfg)
    storage = Storage(cfg.storage)
    collect.run(ctx(cfg))  # the committed run both attempts replace
    zombie = start(cfg, "1", f"stop:{point}", tmp_path / "zombie.log")
    try:
        _, status = os.waitpid(zombie.pid, os.WUNTRACED)  # returns once it has stopped
        assert os.WIFSTOPPED(status), (tmp_path / "zombie.log").read_text()[-2000:]
        retry = run_process("jobs.answers.collect", cfg.storage.root_uri, attempt="2")
        assert retry.returncode == 0, retry.stderr[-2000:]
        after_retry = state(storage, cfg)
        assert all(".manual.2." in attempt for attempt, _ in after_retry.values())
    finally:
        os.kill(zombie.pid, signal.SIGCONT)
        zombie.wait(timeout=300)
    log = (tmp_path / "zombie.log").read_text()
    assert zombie.returncode == EXIT_TRANSIENT, log[-2000:]
    assert "is superseded" in log
    assert state(storage, cfg) == after_retry  # same attempt, same rows: nothing touched
    record(
        f"SIGSTOP {point}, SIGCONT after the retry",
        "answers.collect (zombie + retry)",
        f"zombie exit {zombie.returncode} (superseded); both outputs the retry's, 8 = 6 + 2",
    )


def test_two_attempts_committing_at_once_leave_whole_outputs(make_config, tmp_path, record):
    cfg = make_config()
    answered(cfg)
    storage = Storage(cfg.storage)
    collect.run(ctx(cfg))
    before = {name: rows for name, (_, rows) in state(storage, cfg).items()}
    procs = [start(cfg, a, None, tmp_path / f"collect-{a}.log") for a in ("2", "3")]
    codes = [p.wait(timeout=300) for p in procs]
    logs = [(tmp_path / f"collect-{a}.log").read_text() for a in ("2", "3")]
    assert set(codes) <= {0, EXIT_TRANSIENT} and 0 in codes, logs
    for code, log in zip(codes, logs, strict=True):
        assert code == 0 or "is superseded" in log, log[-2000:]
    after = state(storage, cfg)
    assert {name: rows for name, (_, rows) in after.items()} == before
    assert all(".manual." in attempt for attempt, _ in after.values())
    record(
        "two attempts at once (tries 2, 3)",
        "answers.collect",
        f"exits {codes}; each output one attempt's files, 8 = 6 + 2, no dup ids, no _tmp",
    )
