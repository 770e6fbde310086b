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


class _Refusing:
    """A loopback OpenAI-compatible server that answers every POST with one status."""

    def __init__(self, status: int) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.calls = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the stdlib's name)
                self.rfile.read(int(self.headers["Content-Length"]))
                owner.calls += 1
                data = json.dumps({"error": {"message": f"status {status}"}}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status", [401, 404])
def test_a_refused_key_or_unknown_model_fails_the_shard_at_once_as_permanent(
    make_config, record, status
):
    from faultkit import run_process

    from jobs.errors import EXIT_PERMANENT
    from jobs.llm.journal import ShardFiles

    cfg = make_config()
    commit_questions(cfg)
    prepare.run(ctx(cfg, num_shards=2))
    server = _Refusing(status)
    try:
        proc = run_process(
            "jobs.llm.run_shard", cfg.storage.root_uri,
            'generation.engine="openai"', f'generation.openai_base_url="{server.url}"',
            'generation.model="served-model"', 'generation.model_revision="r1"',
            "generation.openai_max_retries=4", "generation.openai_concurrency=2",
            extra=["--task", "answers", "--shard", "0/2"],
        )  # fmt: skip
    finally:
        server.close()
    assert proc.returncode == EXIT_PERMANENT, proc.stderr[-2000:]
    assert f"HTTP {status}" in proc.stderr and f"{server.url}/chat/completions" in proc.stderr
    assert "'served-model'" in proc.stderr
    assert server.calls <= 2  # the requests in flight; no retries, not one per request
    layout = Layout(cfg.storage.root_uri, SNAP)
    assert not Storage(cfg.storage).exists(ShardFiles.of(layout, "answers", ShardSpec(0, 2)).done)
    record(
        f"openai endpoint answers HTTP {status}",
        "llm.run_shard (answers)",
        f"EndpointRejected (exit {proc.returncode}, permanent) after {server.calls} calls",
    )
