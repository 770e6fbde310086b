"""The real default engine (SmolLM2-135M-Instruct from PyPI, CPU): smoke and kill/resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.config import StorageConfig
from jobs.layout import Layout
from jobs.llm.batchfile import ShardSpec, parse_journal, write_request_shards
from jobs.llm.engine import ChatRequest
from jobs.llm.runner import ShardFiles
from jobs.llm.transformers_engine import resolve_model
from jobs.storage import Storage, join

REPO = Path(__file__).resolve().parents[2]


def _ask(cid: str, text: str, max_tokens: int = 8, seed: int = 1) -> ChatRequest:
    return ChatRequest(cid, ({"role": "user", "content": text},), 0.7, 0.9, max_tokens, seed)


def test_resolve_model_finds_the_packaged_gguf(tmp_path):
    directory, gguf = resolve_model("smollm2-135m-instruct")
    assert gguf == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (Path(directory) / gguf).stat().st_size > 50_000_000
    with pytest.raises(FileNotFoundError, match="not a packaged model"):
        resolve_model(str(tmp_path / "nothing-here"))


class _Tok:
    def decode(self, ids, skip_special_tokens=True):
        return " ".join(map(str, ids))


def test_finish_cuts_at_first_stop_token_and_counts_it():
    from jobs.llm.transformers_engine import TransformersEngine

    engine = object.__new__(TransformersEngine)  # no model needed to cut and count tokens
    engine.stop_ids, engine.tokenizer = [2, 7], _Tok()
    req = _ask("a", "x", max_tokens=5)
    stop = engine._finish(req, 9, [10, 11, 7, 2, 2])
    assert (stop.text, stop.prompt_tokens, stop.completion_tokens, stop.finish_reason) == (
        "10 11",
        9,
        3,
        "stop",
    )
    cut = engine._finish(req, 9, [10, 11, 12, 13, 14])
    assert (cut.text, cut.completion_tokens, cut.finish_reason) == ("10 11 12 13 14", 5, "length")


@pytest.mark.slow
def test_real_engine_generates_counts_and_rejects_long_prompts():
    from jobs.llm.transformers_engine import TransformersEngine

    # One thread: on a shared, oversubscribed CPU two OpenMP threads spin and run ~7x slower.
    engine = TransformersEngine(device="cpu", max_batch_size=4, num_threads=1)
    reqs = [
        _ask("a", "What is 2 + 3?"),
        _ask("long", "seven " * 9000),
        _ask("b", "Name a prime number.", max_tokens=6),
    ]
    out = engine.generate(reqs)
    assert [r.custom_id for r in out] == ["a", "long", "b"]
    assert out[1].error.startswith("prompt too long: ") and out[1].prompt_tokens > 8192
    for resp, req in ((out[0], reqs[0]), (out[2], reqs[2])):
        assert resp.error is None and resp.text.strip()
        assert resp.prompt_tokens == len(engine.encode(req)) > 10
        assert 1 <= resp.completion_tokens <= req.max_tokens
        assert resp.finish_reason in {"stop", "length"}
        if resp.finish_reason == "length":
            assert resp.completion_tokens == req.max_tokens
    # Same batch, same seeds → same samples (what makes a resumed batch reproducible).
    again = engine.generate([reqs[0], reqs[2]])
    assert [r.text for r in again] == [out[0].text, out[2].text]


def _start(root: Path, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SYNTHLLM_ROOT_URI": f"file://{root}"}
    args = [sys.executable, "-m", "jobs.llm.run_shard", "--snapshot", "kill1", "--task", "smoke"]
    args += ["--shard", "0/1", "--set", "generation.max_new_tokens=8"]
    args += ["--set", "generation.batch_size=2", "--set", "generation.device=cpu"]
    args += ["--set", "generation.num_threads=1", "--set", "generation.engine=transformers"]
    return subprocess.Popen(
        args, cwd=REPO, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT
    )


@pytest.mark.slow
def test_killed_shard_resumes_without_duplicates(tmp_path):
    root = tmp_path / "data"
    storage = Storage(StorageConfig(root_uri=f"file://{root}"))
    layout = Layout(f"file://{root}", "kill1")
    ids = [f"q{i:02d}" for i in range(12)]
    requests_uri = join(layout.llm_task("smoke"), "requests")
    reqs = [_ask(cid, f"Give one word for the number {i}.", seed=i) for i, cid in enumerate(ids)]
    write_request_shards(storage, requests_uri, reqs, 1, "smollm2-135m-instruct")
    storage.write_text(join(requests_uri, "_SUCCESS"), "")
    files = ShardFiles.of(layout, "smoke", ShardSpec(0, 1))
    responses = Path(files.responses[len("file://") :])

    def parts() -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in sorted(responses.rglob("part-*.jsonl"))}

    proc = _start(root, tmp_path / "run1.log")
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and proc.poll() is None:
        if responses.exists() and parts():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "run1.log").read_text()[-2000:]
    before = parts()  # one PUT per batch: every part is whole, a batch in flight has none
    n_before = sum(len(parse_journal(data).lines) for data in before.values())
    assert 2 <= n_before < 12 and not storage.exists(files.done)

    proc = _start(root, tmp_path / "run2.log")
    assert proc.wait(timeout=600) == 0, (tmp_path / "run2.log").read_text()[-2000:]
    after = parts()
    assert all(after[path] == data for path, data in before.items())
    got = [json.loads(line)["custom_id"] for data in after.values() for line in data.splitlines()]
    assert sorted(got) == ids and len(got) == 12
    done = json.loads(storage.read_text(files.done))
    assert (done["generated_this_attempt"], done["resumed_with"]) == (12 - n_before, n_before)
    assert done["model"] == "smollm2-135m-instruct" and done["errors"] == 0
    assert done["tokens"]["completion_tokens"] > 0
