"""A shard whose every request fails in the engine: the shard fails, collect refuses the task,
and the retry regenerates exactly the failed requests, after which collect balances."""

from __future__ import annotations

import pytest
from faultkit import ERRORED, NO_BOX, QIDS, SNAP, commit_questions, ctx, reply

import jobs.answers.tasks  # noqa: F401  (registers the answers task)
from jobs.answers import collect, prepare
from jobs.errors import EXIT_TRANSIENT, classify, kind
from jobs.layout import Layout
from jobs.llm.batchfile import ShardSpec
from jobs.llm.engine import ChatResponse
from jobs.llm.results import IncompleteTaskError
from jobs.llm.runner import ShardErrorShareExceeded, run_shard
from jobs.llm.tasks import get_task
from jobs.storage import Storage


class Engine:
    """Answers as ``faultkit.reply`` without engine errors; ``broken`` fails every request."""

    model_name = "fault-engine"

    def __init__(self, broken: bool) -> None:
        self.broken = broken
        self.generated: list[str] = []

    def generate(self, requests):
        self.generated += [r.custom_id for r in requests]
        if self.broken:
            return [
                ChatResponse.failed(r.custom_id, "CUDA error: device lost", 40) for r in requests
            ]
        # q5 (an engine error in the fixture replies) now answers; q2 still has no box.
        return [
            ChatResponse(r.custom_id, "$\\boxed{10}$", 50, 6, "stop")
            if r.custom_id.removeprefix("ans-") in ERRORED
            else reply(r.custom_id)
            for r in requests
        ]


def test_shard_full_of_engine_errors_fails_then_retry_completes(make_config, record):
    cfg = make_config("generation.batch_size=2")
    commit_questions(cfg)
    prepare.run(ctx(cfg, num_shards=2))
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    task = get_task("answers")
    shards = [ShardSpec(0, 2), ShardSpec(1, 2)]

    broken = Engine(broken=True)
    with pytest.raises(ShardErrorShareExceeded, match="4 of 4 requests failed") as exc:
        run_shard(storage, layout, task, shards[0], broken, cfg)
    code = classify(exc.value)
    assert code == EXIT_TRANSIENT  # retried with backoff; the retry redoes only the failures
    run_shard(storage, layout, task, shards[1], Engine(broken=False), cfg)
    with pytest.raises(IncompleteTaskError, match="shard-00000-of-00002"):
        collect.run(ctx(cfg))

    healthy = Engine(broken=False)
    marker = run_shard(storage, layout, task, shards[0], healthy, cfg)
    assert sorted(set(healthy.generated)) == sorted(set(broken.generated))  # only the failures
    assert (marker["errors"], marker["generated_this_attempt"]) == (0, 4)
    stats = collect.run(ctx(cfg, attempt="2"))
    stats.check_balance()
    assert stats.rows_in == len(QIDS) and stats.quarantined == {"no_boxed_answer": len(NO_BOX)}
    record(
        "engine errors on a whole shard",
        "llm.run_shard (answers)",
        f"ShardErrorShareExceeded (exit {code}, {kind(code)}), collect refuses; retry regenerates "
        f"4 failed only; collect {stats.rows_in} = {stats.rows_out} + {stats.rows_quarantined}",
    )
