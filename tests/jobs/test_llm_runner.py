"""The shard runner with a small deterministic engine: resume, errors, repair, skip, part files,
the error-share limit and the model fingerprint."""

from __future__ import annotations

import hashlib
import json

import pytest

from jobs.errors import EXIT_PERMANENT, classify
from jobs.layout import Layout
from jobs.llm import run_shard as run_shard_job
from jobs.llm.batchfile import ShardSpec, dumps_lines, response_to_line, write_request_shards
from jobs.llm.engine import ChatRequest, ChatResponse
from jobs.llm.fingerprint import model_fingerprint
from jobs.llm.journal import (
    ShardNotDoneError,
    list_attempts,
    merge_responses,
    new_attempt,
    part_uri,
    read_shard_lines,
    verified_done,
)
from jobs.llm.results import (
    IncompleteTaskError,
    InconsistentShardsError,
    MissingRequestsError,
    read_task_responses,
    require_task_done,
    task_token_totals,
)
from jobs.llm.runner import (
    ShardErrorShareExceeded,
    ShardFiles,
    StaleRequestsError,
    derive_seed,
    run_shard,
)
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


def _ids(storage, files):
    return [x["custom_id"] for x in read_shard_lines(storage, files)]


def _lines(storage, files):
    return {x["custom_id"]: x for x in read_shard_lines(storage, files)}


def _parts(storage, files):
    """Part files under the shard's responses prefix, as ``attempt-SSSSS/part-BBBBB.jsonl``."""
    out = []
    for uri in storage.walk_files(files.responses):
        attempt, part = uri.split("/")[-2:]
        out.append(f"{attempt[: len('attempt-00000')]}/{part}")
    return out


def test_fresh_run_writes_all_lines_stats_and_marker(env):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", [f"r{i}" for i in range(5)])
    engine = EchoEngine()
    marker = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, cfg, {"run_id": "x"})
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))
    assert [[r.custom_id for r in c] for c in engine.calls] == [["r0", "r1"], ["r2", "r3"], ["r4"]]
    assert _ids(storage, files) == ["r0", "r1", "r2", "r3", "r4"]
    # One part file per batch, all in the first attempt's prefix under the shard key.
    assert _parts(storage, files) == [f"attempt-00001/part-0000{i}.jsonl" for i in range(3)]
    assert marker["responses_uri"] == files.key_prefix(marker["shard_key"])
    assert marker["model_fingerprint"] == model_fingerprint(cfg.generation)
    assert len(marker["attempts"]) == 1
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


class KilledEngine(EchoEngine):
    """Dies (raises, like a killed pod) on its ``die_at``-th call, after answering the others."""

    def __init__(self, die_at: int):
        super().__init__()
        self.die_at = die_at

    def generate(self, requests):
        if len(self.calls) + 1 == self.die_at:
            raise MemoryError("killed")
        return super().generate(requests)


def test_resume_generates_only_missing_and_keeps_old_parts(env):
    cfg, storage, layout = env
    ids = [f"r{i}" for i in range(6)]
    _write_requests(storage, layout, "plain", ids)
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))
    with pytest.raises(MemoryError):
        run_shard(storage, layout, PLAIN, ShardSpec(0, 1), KilledEngine(die_at=2), cfg)
    assert not storage.exists(files.done)
    (first_part,) = storage.walk_files(files.responses)
    kept = storage.read_bytes(first_part)
    engine = EchoEngine()
    marker = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, cfg)
    assert engine.generated_ids == ["r2", "r3", "r4", "r5"]
    assert engine.calls[0][0].seed == derive_seed(7, 0, 1)  # r2 keeps batch 1's seed
    assert storage.read_bytes(first_part) == kept
    assert _parts(storage, files) == [
        "attempt-00001/part-00000.jsonl",
        "attempt-00002/part-00000.jsonl",
        "attempt-00002/part-00001.jsonl",
    ]
    assert sorted(_ids(storage, files)) == ids
    assert (marker["generated_this_attempt"], marker["resumed_with"]) == (4, 2)
    assert marker["responses"] == 6 and len(marker["attempts"]) == 2


def test_errors_under_the_limit_are_recorded_and_shard_completes(env, make_config):
    _, storage, layout = env
    cfg = make_config("generation.batch_size=2", "generation.max_error_share=0.34")
    _write_requests(storage, layout, "plain", ["a", "err1", "b"])
    marker = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), EchoEngine(), cfg)
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))
    lines = _lines(storage, files)
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
    lines = _lines(storage, files)
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


def test_each_reply_is_parsed_once_unless_repaired_or_from_an_earlier_attempt(env, make_config):
    """The shard's stats reuse this attempt's parse checks; only what they did not see is parsed."""
    _, storage, layout = env
    parsed: list[str] = []

    def parseable(text: str) -> bool:
        parsed.append(text)
        return text.startswith(("ok:", "PARSED:"))

    task = LLMTask("counted", is_parseable=parseable, repair_prompt=lambda bad: REPAIR_MSG)
    cfg = make_config("generation.max_error_share=0.5")
    _write_requests(storage, layout, "counted", ["a", "b", "err1", "d"])
    engine = EchoEngine(bad=frozenset({"b"}), stubborn=frozenset({"d"}))
    marker = run_shard(storage, layout, task, ShardSpec(0, 1), engine, cfg)
    # First replies a, b, d (err1 failed); then the two repaired finals once each in the stats.
    assert sorted(parsed) == sorted(["ok:a", "garbage:b", "garbage:d", "PARSED:b", "garbage:d"])
    assert (marker["repaired"], marker["unparseable"], marker["errors"]) == (2, 1, 1)
    # A later attempt regenerates only err1 (failing again); the replies stored by the first
    # attempt are parsed for the stats, as this process never checked them.
    files = ShardFiles.of(layout, "counted", ShardSpec(0, 1))
    storage.delete(files.done)
    parsed.clear()
    again = run_shard(storage, layout, task, ShardSpec(0, 1), EchoEngine(), cfg)
    assert (again["unparseable"], again["errors"], again["generated_this_attempt"]) == (1, 1, 1)
    assert sorted(parsed) == sorted(["ok:a", "PARSED:b", "garbage:d"])


def test_done_shard_is_skipped_without_loading_a_model(env):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", ["a", "b"])
    first = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), EchoEngine(), cfg)
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))
    before = _parts(storage, files)

    def no_engine():
        raise AssertionError("a finished shard must not build an engine")

    again = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), no_engine, cfg)
    assert again == first
    assert _parts(storage, files) == before


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


def test_structural_shard_errors_are_permanent(env):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", ["a", "b"], num_shards=1)
    with pytest.raises(MissingRequestsError) as missing:
        run_shard(storage, layout, PLAIN, ShardSpec(1, 2), EchoEngine(), cfg)
    marker = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), EchoEngine(), cfg)
    # A response for an id the requests do not have, under the shard's own key.
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))
    attempt = new_attempt(storage, marker["responses_uri"])
    stray = response_to_line(ChatResponse("zz", "ok:zz", 1, 1, "stop"), "echo-1", 1, None)
    storage.write_text(part_uri(attempt, 0), dumps_lines([stray]))
    storage.delete(files.done)
    engine = EchoEngine()
    with pytest.raises(InconsistentShardsError, match="1 stored custom_ids") as strays:
        run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, cfg)
    assert engine.calls == []  # refused before generating anything
    requests_uri = join(layout.llm_task("plain"), "requests")
    storage.write_text(join(requests_uri, "shard-00001-of-00003.jsonl"), "")
    with pytest.raises(InconsistentShardsError, match="inconsistent") as counts:
        require_task_done(storage, layout, "plain")
    for exc in (missing, strays, counts):
        assert classify(exc.value) == EXIT_PERMANENT, exc.value


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


# -- error-share limit, model fingerprint, part files, internally batching engines ------------


class FlakyEngine(EchoEngine):
    """Fails the ids in ``fail_once`` on their first request only (a transient error)."""

    def __init__(self, fail_once: set[str], model_name: str = "echo-1"):
        super().__init__()
        self.fail_once, self.model_name = set(fail_once), model_name

    def generate(self, requests):
        out = []
        for resp in super().generate(requests):
            if resp.custom_id in self.fail_once:
                self.fail_once.discard(resp.custom_id)
                resp = ChatResponse.failed(resp.custom_id, "server overloaded", 4)
            out.append(resp)
        return out


def test_shard_over_the_error_limit_fails_and_retry_regenerates_only_the_errors(env):
    cfg, storage, layout = env  # generation.max_error_share: the default 0.1
    ids = [f"r{i}" for i in range(10)]
    _write_requests(storage, layout, "plain", ids)
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))
    engine = FlakyEngine({"r1", "r6"})
    with pytest.raises(ShardErrorShareExceeded) as exc:
        run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, cfg)
    message = str(exc.value)
    assert "plain shard-00000-of-00001: 2 of 10 requests failed (20.0%)" in message
    assert "generation.max_error_share=0.1" in message
    assert not storage.exists(files.done) and not storage.exists(files.stats)
    assert engine.generated_ids == ids
    engine.calls.clear()
    marker = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, cfg)
    # Exactly the errored requests, each in its planned batch with that batch's seed.
    assert [[r.custom_id for r in c] for c in engine.calls] == [["r1"], ["r6"]]
    assert [r.seed for c in engine.calls for r in c] == [derive_seed(7, 0, 0), derive_seed(7, 0, 3)]
    assert (marker["errors"], marker["generated_this_attempt"], marker["resumed_with"]) == (0, 2, 8)
    lines = _lines(storage, files)
    assert [lines[i]["response"]["body"]["choices"][0]["message"]["content"] for i in ids] == [
        f"ok:{i}" for i in ids
    ]
    assert len(marker["attempts"]) == 2


def test_error_share_at_the_limit_is_done(env):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", [f"r{i}" for i in range(9)] + ["err"])
    marker = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), EchoEngine(), cfg)
    assert (marker["errors"], marker["requests"], marker["max_error_share"]) == (1, 10, 0.1)


def test_later_success_replaces_an_error_and_an_error_never_replaces_a_success(env):
    _, storage, layout = env
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))
    key = files.key_prefix("k")

    def put(attempt, resp, part=0):
        line = response_to_line(resp, "m")
        storage.write_text(join(key, attempt, f"part-{part:05d}.jsonl"), dumps_lines([line]))

    put("attempt-00001-aa", ChatResponse("x", "first", 1, 1, "stop"))
    put("attempt-00001-aa", ChatResponse.failed("y", "boom"), part=1)
    put("attempt-00002-bb", ChatResponse.failed("x", "late error"))
    storage.write_text(join(key, "attempt-00003-cc", "part-00000.jsonl.partial"), "torn{")
    merged = merge_responses(storage, key)
    assert merged["x"]["error"] is None and merged["y"]["error"] == {"message": "boom"}
    put("attempt-00010-dd", ChatResponse("y", "fixed", 1, 1, "stop"))
    assert merge_responses(storage, key)["y"]["error"] is None
    # Oldest first; an attempt holding only a write in flight (.partial) is listed, not read.
    assert [a.rsplit("/", 1)[-1] for a in list_attempts(storage, key)] == [
        "attempt-00001-aa",
        "attempt-00002-bb",
        "attempt-00003-cc",
        "attempt-00010-dd",
    ]


def test_another_model_never_reuses_old_responses(env, make_config):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", ["a", "b", "c"])
    first = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), EchoEngine(), cfg)
    other = make_config(
        "generation.batch_size=2", "generation.seed=7", 'generation.model_revision="v2"'
    )
    engine = FlakyEngine(set(), model_name="echo-2")
    marker = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, other)
    assert engine.generated_ids == ["a", "b", "c"]
    assert marker["shard_key"] != first["shard_key"] and marker["model"] == "echo-2"
    assert {r.text for r in read_task_responses(storage, layout, "plain").values()} == {
        "ok:a",
        "ok:b",
        "ok:c",
    }
    assert {
        x["response"]["body"]["model"]
        for x in read_shard_lines(storage, ShardFiles.of(layout, "plain", ShardSpec(0, 1)))
    } == {"echo-2"}
    # Sampling settings are part of the fingerprint too; the original settings reuse all.
    hotter = make_config(
        "generation.batch_size=2", "generation.seed=7", "generation.temperature=1.1"
    )
    assert model_fingerprint(hotter.generation)["sha256"] != first["model_fingerprint"]["sha256"]
    engine = EchoEngine()
    again = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, cfg)
    assert engine.generated_ids == [] and again["shard_key"] == first["shard_key"]


def test_model_identity_of_gguf_files_and_model_directories(tmp_path, make_config):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 100)

    def sha(model, *extra):
        return model_fingerprint(make_config(f'generation.model="{model}"', *extra).generation)

    first = sha(gguf)
    assert first["model_identity"]["kind"] == "gguf" and sha(gguf) == first
    gguf.write_bytes(b"GGUF" + b"\1" * 101)
    assert sha(gguf)["model_identity"]["sha256"] != first["model_identity"]["sha256"]
    model_dir = tmp_path / "hf"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"n_layer": 2}')
    (model_dir / "model-00001.safetensors").write_bytes(b"w" * 10)
    vllm = 'generation.engine="vllm"'
    one = sha(model_dir, vllm)
    assert one["model_identity"]["kind"] == "directory"
    assert one["model_identity"]["weights"] == [["model-00001.safetensors", 10]]
    (model_dir / "model-00001.safetensors").write_bytes(b"w" * 11)  # re-exported weights
    two = sha(model_dir, vllm)
    assert two["sha256"] != one["sha256"]
    (model_dir / "config.json").write_text('{"n_layer": 3}')
    three = sha(model_dir, vllm)
    assert three["model_identity"]["config_sha256"] != one["model_identity"]["config_sha256"]
    assert sha(model_dir, vllm, 'generation.model_revision="r2"')["sha256"] != three["sha256"]
    assert sha(model_dir, 'generation.engine="transformers"')["sha256"] != three["sha256"]
    served = sha(
        "Qwen/Qwen2.5-7B",
        'generation.engine="openai"',
        'generation.openai_base_url="http://x/v1"',
        'generation.model_revision="2025-01"',
    )
    assert served["model_identity"] == {"kind": "name", "revision": "2025-01"}


class InternalBatchEngine(EchoEngine):
    """Like vLLM: schedules any number of requests itself."""

    batches_internally = True


def test_internally_batching_engine_gets_the_whole_shard_in_one_call(env):
    cfg, storage, layout = env
    task = LLMTask(
        "strict",
        is_parseable=lambda t: t.startswith(("ok:", "PARSED:")),
        repair_prompt=lambda bad: REPAIR_MSG,
    )
    ids = [f"r{i}" for i in range(5)]
    _write_requests(storage, layout, "strict", ids)
    engine = InternalBatchEngine(bad=frozenset({"r3"}))
    marker = run_shard(storage, layout, task, ShardSpec(0, 1), engine, cfg)
    # One call with all five (batch_size=2 does not apply), then the one repair.
    assert [[r.custom_id for r in c] for c in engine.calls] == [ids, ["r3"]]
    # Seeds still follow the planned batches, so they do not depend on the engine kind.
    assert [r.seed for r in engine.calls[0]] == [derive_seed(7, 0, b) for b in (0, 0, 1, 1, 2)]
    files = ShardFiles.of(layout, "strict", ShardSpec(0, 1))
    assert _parts(storage, files) == ["attempt-00001/part-00000.jsonl"]
    assert (marker["responses"], marker["repaired"]) == (5, 1)


def test_part_files_on_s3_are_written_once_per_batch_and_attempt(s3_bucket, make_config):
    endpoint, bucket = s3_bucket
    cfg = make_config(
        "generation.batch_size=2",
        f'storage.s3_endpoint_url="{endpoint}"',
        f'storage.root_uri="s3://{bucket}/root"',
    )
    storage = Storage(cfg.storage)
    layout = Layout(cfg.storage.root_uri, "snap1")
    ids = [f"r{i}" for i in range(6)]
    _write_requests(storage, layout, "plain", ids)
    puts: list[str] = []
    real_put = storage.write_bytes

    def spy(uri, data, content_type=None):
        puts.append(uri)
        real_put(uri, data, content_type)

    storage.write_bytes = spy  # type: ignore[method-assign]
    engine = FlakyEngine({"r0", "r5"})
    with pytest.raises(ShardErrorShareExceeded):
        run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, cfg)
    first = {
        o["Key"]: o["ETag"]
        for o in _objects(storage, bucket, "root/runs/snap1/llm/plain/responses/")
    }
    marker = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, cfg)
    objects = {
        o["Key"]: o["ETag"]
        for o in _objects(storage, bucket, "root/runs/snap1/llm/plain/responses/")
    }
    prefix = f"root/runs/snap1/llm/plain/responses/shard-00000-of-00001/{marker['shard_key']}/"
    parts = sorted(k[len(prefix) :] for k in objects if k.startswith(prefix))
    a1, a2 = marker["attempts"]
    assert parts == [
        f"{a1}/part-00000.jsonl",
        f"{a1}/part-00001.jsonl",
        f"{a1}/part-00002.jsonl",
        f"{a2}/part-00000.jsonl",
        f"{a2}/part-00001.jsonl",
    ]
    # The first attempt's objects are untouched; no object was PUT twice.
    assert all(objects[k] == etag for k, etag in first.items())
    part_puts = [u for u in puts if "/attempt-" in u]
    assert len(part_puts) == 5 == len(set(part_puts))
    assert {r.text for r in read_task_responses(storage, layout, "plain").values()} == {
        f"ok:{i}" for i in ids
    }


def _objects(storage, bucket, prefix):
    pages = storage.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o for page in pages for o in page.get("Contents", [])]


def test_readers_accept_a_journal_from_the_runner_before_part_files(env):
    _, storage, layout = env
    _write_requests(storage, layout, "plain", ["a"])
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))
    line = response_to_line(ChatResponse("a", "old", 1, 1, "stop"), "m")
    storage.write_text(files.responses + ".jsonl", dumps_lines([line]))
    sha = hashlib.sha256(storage.read_bytes(files.requests)).hexdigest()
    storage.write_json(files.done, {"requests": 1, "requests_sha256": sha})
    assert read_task_responses(storage, layout, "plain")["a"].text == "old"
    # That marker names its requests' hash too: a marker of other requests is refused.
    storage.write_json(files.done, {"requests": 1, "requests_sha256": "0" * 64})
    with pytest.raises(IncompleteTaskError, match="shard-00000-of-00001"):
        read_task_responses(storage, layout, "plain")


# -- a .done marker is checked, never trusted -------------------------------------------------


class PrepareMidRunEngine(EchoEngine):
    """On its first call, ``replace()`` runs (a prepare committing other requests meanwhile)."""

    def __init__(self, replace):
        super().__init__()
        self.replace = replace

    def generate(self, requests):
        if not self.calls:
            self.replace()
        return super().generate(requests)


@pytest.mark.parametrize("prepare", ["replaces the requests", "withdraws requests/_SUCCESS"])
def test_a_zombie_shard_cannot_mark_done_requests_that_prepare_replaced(env, prepare):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", ["a", "b"])
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))

    def replace():
        if prepare == "replaces the requests":
            _write_requests(storage, layout, "plain", ["a", "c"])
        else:  # a prepare mid-commit (or killed there)
            storage.delete(join(layout.llm_task("plain"), "requests", "_SUCCESS"))

    with pytest.raises(StaleRequestsError, match="changed while plain shard-00000-of-00001 ran"):
        run_shard(storage, layout, PLAIN, ShardSpec(0, 1), PrepareMidRunEngine(replace), cfg)
    assert not storage.exists(files.done) and not storage.exists(files.stats)
    if prepare != "replaces the requests":
        return
    with pytest.raises(IncompleteTaskError):
        require_task_done(storage, layout, "plain")
    marker = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), EchoEngine(), cfg)
    assert set(read_task_responses(storage, layout, "plain")) == {"a", "c"}
    sha = hashlib.sha256(storage.read_bytes(files.requests)).hexdigest()
    assert marker["requests_sha256"] == sha


def test_a_stale_marker_is_refused_by_readers_and_redone_by_the_runner(env):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", ["a", "b"])
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))
    old = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), EchoEngine(), cfg)
    _write_requests(storage, layout, "plain", ["a", "b", "c"])  # prepare: new requests
    assert storage.read_json(files.done) == old  # still there, and refused:
    with pytest.raises(IncompleteTaskError, match="1 of 1 shards not done"):
        require_task_done(storage, layout, "plain")
    with pytest.raises(IncompleteTaskError):
        read_task_responses(storage, layout, "plain")
    assert task_token_totals(storage, layout, "plain")["shards_done"] == 0
    engine = EchoEngine()
    new = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, cfg)
    assert engine.generated_ids == ["a", "b", "c"] and new["shard_key"] != old["shard_key"]
    assert set(read_task_responses(storage, layout, "plain")) == {"a", "b", "c"}

    # A zombie of the old requests writes its marker after all: refused again, and the next
    # run only re-marks the shard (its responses are stored under the current key).
    storage.write_json(files.done, old)
    with pytest.raises(IncompleteTaskError):
        require_task_done(storage, layout, "plain")
    engine = EchoEngine()
    again = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), engine, cfg)
    assert engine.generated_ids == [] and again["shard_key"] == new["shard_key"]
    assert require_task_done(storage, layout, "plain") == [ShardSpec(0, 1)]


def test_a_marker_whose_key_is_not_its_requests_and_model_is_refused(env):
    cfg, storage, layout = env
    _write_requests(storage, layout, "plain", ["a"])
    files = ShardFiles.of(layout, "plain", ShardSpec(0, 1))
    marker = run_shard(storage, layout, PLAIN, ShardSpec(0, 1), EchoEngine(), cfg)
    assert verified_done(storage, files) == marker
    for forged in (
        {**marker, "shard_key": "0" * 16},
        {**marker, "model_fingerprint": {**marker["model_fingerprint"], "sha256": "f" * 64}},
        {k: v for k, v in marker.items() if k != "requests_sha256"},
    ):
        storage.write_json(files.done, forged)
        assert verified_done(storage, files) is None
        with pytest.raises(ShardNotDoneError):
            read_shard_lines(storage, files)
