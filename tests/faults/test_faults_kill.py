"""SIGKILL a job at each point of its commit, then rerun it: the rerun must restore the output.

``answers.collect`` (a Python stage: quarantine/answers, then qa) runs as a real process with
``SYNTHLLM_FAULT`` set (jobs/commit.py's test hook), over a previous committed run it replaces.
"""

from __future__ import annotations

import pytest
from faultkit import SNAP, answered, committed_rows, comparable, ctx, run_process

from jobs.answers import collect
from jobs.commit import SUCCESS, UncommittedInputError, require_committed
from jobs.layout import Layout
from jobs.storage import Storage, join

KILLS = [
    ("before_commit", "qa"),
    ("after_delete_success", "qa"),
    ("after_moves", "qa"),
    ("before_success", "qa"),
    ("after_moves", "quarantine/answers"),
]


def outputs(cfg) -> dict[str, str]:
    layout = Layout(cfg.storage.root_uri, SNAP)
    return {"qa": layout.table("qa"), "quarantine/answers": layout.quarantine("answers")}


def snapshot_of(storage, uris, tmp_ok: bool = False) -> dict[str, str]:
    return {
        "qa": comparable(committed_rows(storage, uris["qa"], "question_id", tmp_ok)),
        "quarantine/answers": comparable(
            committed_rows(storage, uris["quarantine/answers"], "raw", tmp_ok)
        ),
    }


@pytest.mark.parametrize(("point", "target"), KILLS, ids=[f"{p}@{t}" for p, t in KILLS])
def test_kill_during_commit_then_rerun(point, target, make_config, record):
    cfg = make_config()
    answered(cfg)
    storage, uris = Storage(cfg.storage), outputs(cfg)
    stats = collect.run(ctx(cfg))  # the previous committed run the killed one replaces
    assert (stats.rows_in, stats.rows_out, stats.rows_quarantined) == (8, 6, 2)
    before = snapshot_of(storage, uris)

    killed = run_process(
        "jobs.answers.collect", cfg.storage.root_uri, attempt="2", fault=f"{point}@{target}"
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert f"killing this process at {point}" in killed.stderr
    if point == "before_commit":
        # Nothing touched yet: the old commit is still whole and readable.
        assert snapshot_of(storage, uris, tmp_ok=True)[target] == before[target]
        state = "old commit intact"
    else:
        assert not storage.exists(join(uris[target], SUCCESS))
        with pytest.raises(UncommittedInputError):
            require_committed(storage, uris[target])
        state = "uncommitted, readers refuse"

    rerun = run_process("jobs.answers.collect", cfg.storage.root_uri, attempt="3")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert snapshot_of(storage, uris) == before
    assert not storage.exists(join(uris[target], "_tmp"))
    record(
        f"SIGKILL {point}",
        f"answers.collect ({target})",
        f"exit -9, {state}; rerun committed, 8 = 6 + 2 quarantined, no dup ids, same rows",
    )
