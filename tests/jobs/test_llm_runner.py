"""The shard runner with a small deterministic engine: resume, errors, repair, skip."""

from __future__ import annotations

import json

import pytest

from jobs.layout import Layout
from jobs.llm import run_shard as run_shard_job
from jobs.llm.batchfile import ShardSpec, read_responses, write_request_shards
from jobs.llm.engine import ChatRequest, ChatResponse
from jobs.llm.results import (
    IncompleteTaskError,
    read_task_responses,
    require_task_done,
    task_token_totals,
)
from jobs.llm.runner import ShardFiles, derive_seed, run_shard
from jobs.llm.tasks import TASK_MODULES, LLMTask, get_task, register_task, unregister_task
from jobs.storage import Storage, join

REPAIR_MSG = "Please answer with PARSED."


class EchoEngine:
    """Answers ``ok:<id>``; ids containing ``err`` fail; ids in ``bad`` answer garbage first."""

    model_name = "echo-1"

    def __init__(self, bad: frozenset[str] = frozenset(), stubborn: frozenset[str] = frozenset()):
        self.calls: list[list[ChatRequest]] = []
        self.bad, self.stubborn = bad, stubborn

    def generate(self, requests):
        self.calls.append(list(requests))
        out = []
        for r in requests:
            repair = r.messages[-1]["content"] == REPAIR_MSG
            if "err" in r.custom_id:
                out.append(ChatResponse.failed(r.custom_id, "boom", 3))
            elif r.custom_id in self.stubborn or (r.custom_id in self.bad and not repair):
                out.append(ChatResponse(r.custom_id, f"garbage:{r.custom_id}", 5, 2, "length"))
            else:
                text = f"PARSED:{r.custom_id}" if repair else f"ok:{r.custom_id}"
                out.append(ChatResponse(r.custom_id, text, 10 + len(r.messages), 3, "stop"))
        return out

    @property
    def generated_ids(self) -> list[str]:
        return [r.custom_id for call in self.calls for r in call]


PLAIN = LLMTask("plain")


@pytest.fixture
def env(make_config):
    cfg = make_config("generation.batch_size=2", "generation.seed=7")
    storage = Storage(cfg.storage)
    layout = Layout(cfg.storage.root_uri, "snap1")
    return cfg, storage, layout


def _write_requests(storage, layout, task, ids, num_shards=1, seed=None):
    reqs = [ChatRequest(i, ({"role": "user", "content": f"q {i}"},), seed=seed) for i in ids]
    requests_uri = join(layout.llm_task(task), "requests")
    write_request_shards(storage, requests_uri, reqs, num_shards, "echo-1")
    storage.write_text(join(requests_uri, "_SUCCESS"), "")
    return reqs


def _ids(storage, uri):
    return [x["custom_id"] for x in read_responses(storage, uri).lines]


def test_fresh_run_writes_all_lines_stats_and_marker(env):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", [f"r{i}" for i in range(5)])
    engine = EchoEngine()
    marker = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, cfg, {"run_id": "x"})
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))
    assert [[r.custom_id for r in c] for c in engine.calls] == [["r0", "r1"], ["r2", "r3"], ["r4"]]
    assert _ids(storage, files.responses) == ["r0", "r1", "r2", "r3", "r4"]
    assert marker == storage.read_json(files.done)
    assert marker["run_id"] == "x" and marker["model"] == "echo-1"
    assert (marker["requests"], marker["responses"], marker["errors"]) == (5, 5, 0)
    assert (marker["generated_this_attempt"], marker["resumed_with"]) == (5, 0)
    assert marker["tokens"] == {"prompt_tokens": 55, "completion_tokens": 15}
    assert storage.read_json(files.stats)["tokens"] == marker["tokens"]
    assert marker["finish_reasons"] == {"stop": 5}


def test_seeds_are_fixed_per_batch_position(env):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", ["a", "b", "c"])
    engine = EchoEngine()
    run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, cfg)
    seeds = [r.seed for c in engine.calls for r in c]
    assert seeds == [derive_seed(7, 0, 0), derive_seed(7, 0, 0), derive_seed(7, 0, 1)]
    assert derive_seed(7, 0, 0) != derive_seed(7, 0, 1) != derive_seed(7, 1, 1)


def test_resume_generates_only_missing_and_keeps_old_bytes(env):
    cfg, storage, layout = env
    ids = [f"r{i}" for i in range(6)]
    _write_requests(storage, layout, "plain", ids)
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))
    run_shard(storage, layout, PLAIN, ShardSpec(0, 1), EchoEngine(), cfg)
    full = storage.read_bytes(files.responses)
    # Simulate a kill after three lines, the last append torn halfway through line four.
    lines = full.splitlines(keepends=True)
    kept = b"".join(lines[:3])
    storage.write_bytes(files.responses, kept + lines[3][:20])
    storage.delete(files.done)
    storage.delete(files.stats)
    engine = EchoEngine()
    marker = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, cfg)
    assert engine.generated_ids == ["r3", "r4", "r5"]
    # r3 sits in batch 1 with r2 (already done): it keeps batch 1's seed.
    assert engine.calls[0][0].seed == derive_seed(7, 0, 1)
    after = storage.read_bytes(files.responses)
    assert after.startswith(kept)
    assert _ids(storage, files.responses) == ids
    assert (marker["generated_this_attempt"], marker["resumed_with"]) == (3, 3)
    assert marker["responses"] == 6


def test_errors_are_recorded_and_shard_completes(env):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", ["a", "err1", "b"])
    marker = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), EchoEngine(), cfg)
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))
    lines = {x["custom_id"]: x for x in read_responses(storage, files.responses).lines}
    assert lines["err1"]["error"] == {"message": "boom"}
    assert lines["err1"]["response"]["status_code"] == 500
    assert lines["a"]["error"] is None and lines["a"]["response"]["status_code"] == 200
    assert (marker["errors"], marker["responses"]) == (1, 3)
    assert marker["finish_reasons"] == {"error": 1, "stop": 2}
    assert storage.exists(files.done)


def test_unparseable_answer_is_repaired_once(env):
    cfg, storage, layout = env
    task = LLMTask(
        "strict",
        is_parseable=lambda t: t.startswith(("ok:", "PARSED:")),
        repair_prompt=lambda bad: REPAIR_MSG,
    )
    _write_requests(storage, layout, "strict", ["a", "b", "c", "d"])
    engine = EchoEngine(bad=frozenset({"b"}), stubborn=frozenset({"d"}))
    marker = run_shard(storage, layout, task, ShardSpec(0, 1), engine, cfg)
    files = ShardFiles.of(layout, "strict", ShardSpec(0, 1))
    lines = {x["custom_id"]: x for x in read_responses(storage, files.responses).lines}
    assert list(lines) == ["a", "b", "c", "d"]
    b = lines["b"]
    assert b["attempts"] == 2 and b["first_attempt"] == "garbage:b"
    assert b["response"]["body"]["choices"][0]["message"]["content"] == "PARSED:b"
    assert b["first_attempt_usage"]["completion_tokens"] == 2
    assert lines["a"]["attempts"] == 1 and lines["a"]["first_attempt"] is None
    repair_call = engine.calls[1]
    assert [r.custom_id for r in repair_call] == ["b"]
    assert [m["role"] for m in repair_call[0].messages] == ["user", "assistant", "user"]
    assert repair_call[0].messages[1]["content"] == "garbage:b"
    # d stays unparseable after its one repair: recorded, counted, not retried again.
    assert lines["d"]["attempts"] == 2 and lines["d"]["first_attempt"] == "garbage:d"
    assert engine.generated_ids.count("d") == 2
    assert (marker["repaired"], marker["unparseable"]) == (2, 1)
    # Spent tokens include first attempts: prompt a=11, b=5+13, c=11, d=5+5; completion
    # a=3, b=2+3, c=3, d=2+2.
    assert marker["tokens"] == {"prompt_tokens": 50, "completion_tokens": 15}


def test_done_shard_is_skipped_without_loading_a_model(env):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", ["a", "b"])
    first = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), EchoEngine(), cfg)
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))
    before = storage.read_bytes(files.responses)

    def no_engine():
        raise AssertionError("a finished shard must not build an engine")

    again = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), no_engine, cfg)
    assert again == first
    assert storage.read_bytes(files.responses) == before


def test_changed_requests_discard_old_responses(env):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", ["a", "b"])
    run_shard(storage, layout, PLAIN, ShardSpec(0, 1), EchoEngine(), cfg)
    _write_requests(storage, layout, "plain", ["a", "b", "c"])
    engine = EchoEngine()
    marker = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, cfg)
    assert engine.generated_ids == ["a", "b", "c"]
    assert marker["responses"] == 3


def test_uncommitted_or_missing_requests_fail_clearly(env):
    cfg, storage, layout = env
    with pytest.raises(Exception, match="not committed"):
        run_shard(storage, layout, PLAIN, ShardSpec(0, 1), EchoEngine(), cfg)
    _write_requests(storage, layout, "plain", ["a"], num_shards=1)
    with pytest.raises(FileNotFoundError, match="shard-00001-of-00002.jsonl"):
        run_shard(storage, layout, PLAIN, ShardSpec(1, 2), EchoEngine(), cfg)


def test_task_results_helpers(env):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", ["a", "b", "c"], num_shards=2)
    with pytest.raises(IncompleteTaskError, match="2 of 2 shards not done"):
        require_task_done(storage, layout, "plain")
    run_shard(storage, layout, PLAIN, ShardSpec(0, 2), EchoEngine(), cfg)
    with pytest.raises(IncompleteTaskError, match="shard-00001-of-00002"):
        read_task_responses(storage, layout, "plain")
    assert task_token_totals(storage, layout, "plain")["shards_done"] == 1
    run_shard(storage, layout, PLAIN, ShardSpec(1, 2), EchoEngine(), cfg)
    responses = read_task_responses(storage, layout, "plain")
    assert {k: v.text for k, v in responses.items()} == {"a": "ok:a", "b": "ok:b", "c": "ok:c"}
    assert task_token_totals(storage, layout, "plain") == {
        "prompt_tokens": 33,
        "completion_tokens": 9,
        "requests": 3,
        "shards_done": 2,
    }


def test_task_registry(monkeypatch):
    task = register_task(LLMTask("t-reg", lambda t: True, lambda t: "fix"))
    try:
        assert get_task("t-reg") is task
    finally:
        unregister_task("t-reg")
    plain = get_task("no-such-task")
    assert plain.name == "no-such-task" and not plain.repairs
    monkeypatch.setitem(TASK_MODULES, "ghost", "jobs.no_such_module.tasks")
    with pytest.raises(KeyError, match="not installed"):
        get_task("ghost")
    with pytest.raises(ValueError, match="both or none"):
        LLMTask("half", is_parseable=lambda t: True)


def test_job_main_runs_a_shard(env, monkeypatch, make_config):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", ["a", "b", "c"])
    engine = EchoEngine()
    monkeypatch.setattr("jobs.llm.engine.make_engine", lambda gen_cfg: engine)
    root = f'storage.root_uri="{cfg.storage.root_uri}"'
    argv = ["--snapshot", "snap1", "--task", "plain", "--shard", "0/1", "--set", root]
    assert run_shard_job.main([*argv, "--run-id", "run-9"]) == 0
    done = json.loads(storage.read_text(ShardFiles.of(layout, "plain", ShardSpec(0, 1)).done))
    assert done["run_id"] == "run-9" and done["job"] == "llm.run_shard"
    assert done["config"]["storage"]["root_uri"] == cfg.storage.root_uri
    assert (done["responses"], done["generated_this_attempt"]) == (3, 3)
    assert engine.generated_ids == ["a", "b", "c"]
    with pytest.raises(SystemExit) as exc:
        run_shard_job.main(["--snapshot", "snap1", "--task", "plain", "--shard", "2/2"])
    assert exc.value.code == 2


def test_vllm_engine_module_imports_when_vllm_present():
    pytest.importorskip("vllm")
    from jobs.llm.vllm_engine import VLLMEngine

    assert callable(VLLMEngine.generate)
