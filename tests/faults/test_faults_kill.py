"""SIGKILL a job at each point of its commit, then rerun it: the rerun must restore the output.

``answers.collect`` (a Python stage: quarantine/answers, then qa) runs as a real process with
``SYNTHLLM_FAULT`` set (jobs/commit.py's test hook), over a previous committed run it replaces.
``answers.prepare`` killed mid-commit must not cost the responses of unchanged requests.
"""

from __future__ import annotations

import pytest
from faultkit import (
    MODEL,
    SNAP,
    answered,
    commit_questions,
    committed_rows,
    comparable,
    ctx,
    reply,
    run_process,
)

from jobs.answers import collect, prepare
from jobs.commit import SUCCESS, UncommittedInputError, require_committed
from jobs.layout import Layout
from jobs.llm.batchfile import ShardSpec
from jobs.llm.runner import run_shard
from jobs.llm.tasks import get_task
from jobs.storage import Storage, join

KILLS = [
    ("before_commit", "qa"),
    ("after_claim", "qa"),
    ("after_delete_success", "qa"),
    ("after_moves", "qa"),
    ("before_success", "qa"),
    ("after_success", "qa"),
    ("after_moves", "quarantine/answers"),
]
# Killed before it changed the prefix, the old commit is whole; killed after _SUCCESS, the
# new one is (its staging and older claims are left for the rerun to tidy).
INTACT = {"before_commit", "after_claim"}


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
    if point in INTACT or point == "after_success":
        # Nothing touched yet (or all done): a whole commit, readable, with the same rows.
        assert snapshot_of(storage, uris, tmp_ok=True)[target] == before[target]
        state = "old commit intact" if point in INTACT else "new commit whole, staging left"
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


class RepliesEngine:
    """The fault suite's fixed replies (faultkit.reply), as a shard runner's engine."""

    model_name = MODEL

    def generate(self, requests):
        return [reply(r.custom_id) for r in requests]


def no_engine():
    raise AssertionError("a shard whose requests did not change must not generate again")


def run_shards(cfg, engine) -> dict[str, bytes]:
    """Bring both answer shards to done; the bytes of every response part file after."""
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    for i in range(2):
        run_shard(storage, layout, get_task("answers"), ShardSpec(i, 2), engine, cfg)
    responses = join(layout.llm_task("answers"), "responses")
    return {u: storage.read_bytes(u) for u in storage.walk_files(responses)}


def test_kill_prepare_after_it_withdrew_success_keeps_every_response(make_config, record):
    # q5's engine error is one of four requests in its shard: within the limit here.
    cfg = make_config("generation.num_shards=2", "generation.max_error_share=0.5")
    commit_questions(cfg)
    prepare.run(ctx(cfg))
    generated = run_shards(cfg, RepliesEngine())
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    requests = join(layout.llm_task("answers"), "requests")

    killed = run_process(
        "jobs.answers.prepare",
        cfg.storage.root_uri,
        "generation.num_shards=2",
        attempt="2",
        fault="after_delete_success@requests",
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not storage.exists(join(requests, SUCCESS))
    rerun = run_process(
        "jobs.answers.prepare", cfg.storage.root_uri, "generation.num_shards=2", attempt="3"
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    require_committed(storage, requests)
    # Same requests, so the same shard keys: both shards are still done, nothing regenerates.
    assert run_shards(cfg, no_engine) == generated
    stats = collect.run(ctx(cfg))
    assert (stats.rows_in, stats.rows_out, stats.rows_quarantined) == (8, 6, 2)
    record(
        "SIGKILL after_delete_success",
        "answers.prepare (requests)",
        f"exit -9, requests uncommitted; rerun committed the same shards, all "
        f"{len(generated)} response files kept, no shard regenerated, collect 8 = 6 + 2",
    )
