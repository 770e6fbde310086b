"""VLLMEngine._chat without vllm: a failing call is split in halves down to the bad requests.

The engine is built with ``object.__new__`` (no model load) and ``llm.chat`` is a fake that
fails a whole call whenever it holds a poisoned conversation, as vLLM does when one prompt of a
list is rejected.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from jobs.llm.engine import ChatRequest
from jobs.llm.vllm_engine import VLLMEngine


class FakeLLM:
    def __init__(self, poisoned: set[str]) -> None:
        self.poisoned = poisoned
        self.calls: list[tuple[int, bool]] = []  # (conversations, continue_final_message)

    def chat(self, conversations, sampling_params, use_tqdm, **flags):
        self.calls.append((len(conversations), flags["continue_final_message"]))
        texts = [c[-1]["content"] for c in conversations]
        if self.poisoned & set(texts):
            raise ValueError("prompt rejected")
        return [
            SimpleNamespace(
                prompt_token_ids=[1] * len(t),
                outputs=[SimpleNamespace(text=f"re:{t}", token_ids=[1, 2], finish_reason="stop")],
            )
            for t in texts
        ]


def _engine(poisoned: set[str]) -> VLLMEngine:
    engine = object.__new__(VLLMEngine)
    engine.llm = FakeLLM(poisoned)
    engine._sampling = lambda req: req.seed  # the real one imports vllm.SamplingParams
    return engine


def _reqs(n: int, prefill_every: int = 0) -> list[ChatRequest]:
    out = []
    for i in range(n):
        messages = [{"role": "user", "content": f"q{i}"}]
        if prefill_every and i % prefill_every == 0:
            messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": f"q{i}"}]
        out.append(ChatRequest(f"r{i}", tuple(messages), seed=i))
    return out


def _check(out, reqs, bad):
    assert [r.custom_id for r in out] == [r.custom_id for r in reqs]
    for resp, req in zip(out, reqs, strict=True):
        last = req.messages[-1]["content"]
        if last in bad:
            assert resp.finish_reason == "error"
            assert resp.error == "generation failed: prompt rejected"
        else:
            assert resp.error is None
            assert resp.text == (req.prefill or "") + f"re:{last}"


def test_one_bad_request_costs_logarithmically_many_calls():
    reqs = _reqs(16)
    engine = _engine({"q11"})
    out = engine._chat(reqs)
    _check(out, reqs, {"q11"})
    # 1 failing call, then per halving one failing and one answered half: 1 + 2 * log2(16).
    assert len(engine.llm.calls) == 9
    # Only the bad request ends up alone in a failing call.
    assert sorted(size for size, _ in engine.llm.calls) == [1, 1, 2, 2, 4, 4, 8, 8, 16]


@pytest.mark.parametrize("n", [2, 3, 100, 1000])
def test_call_count_is_bounded_by_twice_the_depth(n):
    reqs = _reqs(n)
    bad = {f"q{n // 3}"}
    engine = _engine(bad)
    _check(engine._chat(reqs), reqs, bad)
    # Retrying one by one, as before, took n + 1 calls.
    assert len(engine.llm.calls) <= 2 * math.ceil(math.log2(n)) + 1


def test_several_bad_requests_each_fail_alone_and_nothing_else_does():
    reqs = _reqs(20)
    bad = {"q0", "q7", "q19"}
    engine = _engine(bad)
    _check(engine._chat(reqs), reqs, bad)
    assert sum(1 for size, _ in engine.llm.calls if size == 1) >= len(bad)
    # Each bad request adds at most two calls per halving level.
    assert len(engine.llm.calls) <= 1 + 2 * len(bad) * math.ceil(math.log2(len(reqs)))


def test_mixed_prefill_batches_split_by_kind_first_then_in_halves():
    reqs = _reqs(12, prefill_every=3)  # r0, r3, r6, r9 are prefilled
    bad = {"q6"}
    engine = _engine(bad)
    _check(engine._chat(reqs), reqs, bad)
    # Every call holds one kind only; the plain kind (8) is answered in one call.
    assert (8, False) in engine.llm.calls
    assert [size for size, prefilled in engine.llm.calls if prefilled] == [4, 2, 2, 1, 1]


def test_a_good_batch_is_one_call():
    reqs = _reqs(7)
    engine = _engine(set())
    _check(engine._chat(reqs), reqs, set())
    assert engine.llm.calls == [(7, False)]
