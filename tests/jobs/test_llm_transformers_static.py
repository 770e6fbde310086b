"""The static-cache decode loop: greedy tokens as ``model.generate``'s, sampling, stops."""

from __future__ import annotations

import pytest
import torch
from greedy import NEAR_TIE, agreed_prefix, top2_margin

from jobs.llm.engine import ChatRequest, batch_seed
from jobs.llm.static_decode import ATTENTION, StaticDecoder, choose_tokens
from jobs.llm.transformers_engine import check_plain_weights

BUDGET = 10


def _req(cid: str, *turns: str, temperature: float = 0.0, top_p: float = 1.0) -> ChatRequest:
    roles = ("user", "assistant")
    messages = tuple({"role": roles[i % 2], "content": text} for i, text in enumerate(turns))
    return ChatRequest(cid, messages, temperature, top_p, BUDGET, seed=3)


# Three prompt lengths in one left-padded batch, one of them a prefilled assistant turn; the
# first one is short enough for the model to finish before the budget.
REQUESTS = [
    _req("short", "What is 2 + 3?"),
    _req("long", "Write a short proof that the square root of 2 is irrational, step by step."),
    _req("prefill", "Solve x + 1 = 3.", "Step 1:"),
]


def test_top_p_keeps_the_smallest_set_reaching_p_and_greedy_takes_the_argmax():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])).repeat(200, 1)
    gen = torch.Generator().manual_seed(0)
    drawn = choose_tokens(logits, 1.0, 0.6, gen).view(200, 2)
    assert set(drawn[:, 0].tolist()) == {0, 1}  # 0.5 < 0.6, so the 0.3 token joins it
    assert set(drawn[:, 1].tolist()) == {2}  # 0.8 alone reaches 0.6
    full = choose_tokens(logits, 1.0, 1.0, torch.Generator().manual_seed(0)).view(200, 2)
    assert set(full[:, 0].tolist()) == {0, 1, 2}
    assert choose_tokens(logits[:2], 0.0, 1.0, None).tolist() == [0, 2]


def test_check_plain_weights_rejects_packed_or_mistyped_parameters():
    model = torch.nn.Linear(4, 2)
    check_plain_weights(model, torch.float32)
    with pytest.raises(TypeError, match="expected plain torch.bfloat16"):
        check_plain_weights(model, torch.bfloat16)
    model.weight = torch.nn.Parameter(torch.zeros(2, 3, dtype=torch.uint8), requires_grad=False)
    with pytest.raises(TypeError, match="weight: torch.uint8"):
        check_plain_weights(model, torch.float32)


def _engine(device: str, compile: bool = False):
    from jobs.llm.transformers_engine import TransformersEngine

    # One thread: on a shared, oversubscribed CPU more threads spin and run slower.
    return TransformersEngine(
        device=device, max_batch_size=4, compile=compile, num_threads=1, decode="static"
    )


@pytest.fixture(scope="module")
def cpu_engine():
    return _engine("cpu")


def _reference_margins(engine, prompt: list[int], row: list[int]) -> list[float]:
    """The top-2 logit margin of each token of the reference row, by one teacher-forced pass."""
    ids = torch.tensor([prompt + row], device=engine.device)
    with torch.inference_mode():
        logits = engine.model(ids).logits[0, len(prompt) - 1 : len(prompt) - 1 + len(row)]
    return [top2_margin(step) for step in logits.float().cpu()]


def _assert_same_greedy_tokens(engine, decoder) -> None:
    """The static loop's greedy tokens agree with ``model.generate`` except at near ties.

    The two loops run other shapes (a static cache, a batch rounded up), so their logits round
    differently, in a way that depends on the machine; only a near tie may go either way.
    """
    prompts = [engine.encode(r) for r in REQUESTS]
    assert len({len(p) for p in prompts}) == 3  # really left-padded
    want = engine.generate_ids(REQUESTS[0], prompts, seed=0)
    got = decoder.decode(prompts, BUDGET)
    assert [len(row) for row in got] == [len(row) for row in want]
    # bf16 logits carry ~3 significant digits: a wider band counts as a tie there.
    near_tie = NEAR_TIE if engine.model.dtype == torch.float32 else 4 * NEAR_TIE
    compared = 0
    for prompt, mine, ref in zip(prompts, got, want, strict=True):
        margins = _reference_margins(engine, prompt, ref)
        compared += agreed_prefix(mine, ref, margins, engine.stop_ids, near_tie)
    assert compared >= len(prompts)  # at least each row's first token: none opens on a tie
    stop = engine.stop_ids[0]
    assert stop in want[0] and want[0][-1] == engine.pad_id  # a row stopped, then padded
    assert all(stop not in row for row in want[1:])  # and others ran to the budget


@pytest.mark.slow
def test_static_loop_greedy_agrees_with_generate_on_cpu(cpu_engine):
    assert cpu_engine.model.config._attn_implementation == ATTENTION
    _assert_same_greedy_tokens(cpu_engine, cpu_engine.decoder)
    # The CUDA shapes on CPU: batch rounded up to 4 with a filler row, cache rounded to 256.
    rounded = StaticDecoder(cpu_engine.model, cpu_engine.stop_ids, cpu_engine.pad_id, False, True)
    _assert_same_greedy_tokens(cpu_engine, rounded)


@pytest.mark.slow
def test_engine_on_static_loop_returns_prefill_counts_and_reasons(cpu_engine):
    out = cpu_engine.generate(REQUESTS)
    assert [r.custom_id for r in out] == ["short", "long", "prefill"]
    short, long, prefill = out
    assert (short.finish_reason, long.finish_reason) == ("stop", "length")
    assert short.completion_tokens < BUDGET and short.text.strip()
    assert long.completion_tokens == BUDGET == prefill.completion_tokens
    assert prefill.text.startswith("Step 1:") and len(prefill.text) > len("Step 1:")
    for resp, req in zip(out, REQUESTS, strict=True):
        assert resp.error is None and resp.prompt_tokens == len(cpu_engine.encode(req))


@pytest.mark.slow
def test_static_loop_sampling_is_seeded_and_tiny_top_p_is_greedy(cpu_engine):
    prompts = [cpu_engine.encode(r) for r in REQUESTS[:2]]
    decode = cpu_engine.decoder.decode
    seed = batch_seed(REQUESTS[:2])
    first = decode(prompts, BUDGET, temperature=1.5, top_p=1.0, seed=seed)
    assert decode(prompts, BUDGET, temperature=1.5, top_p=1.0, seed=seed) == first
    assert decode(prompts, BUDGET, temperature=1.5, top_p=1.0, seed=seed + 1) != first
    greedy = decode(prompts, BUDGET)
    assert decode(prompts, BUDGET, temperature=1.5, top_p=1e-9, seed=seed) == greedy
    assert first != greedy


@pytest.mark.gpu
@pytest.mark.parametrize("compile", [False, True], ids=["graphs", "compile+graphs"])
def test_static_loop_greedy_agrees_with_generate_on_cuda(compile):
    engine = _engine("cuda", compile=compile)
    assert engine.model.dtype == torch.bfloat16
    check_plain_weights(engine.model, torch.bfloat16)
    engine.compile = False  # the reference: plain generate, dynamic cache, eager
    _assert_same_greedy_tokens(engine, engine.decoder)
    slot = next(iter(engine.decoder._slots.values()))
    assert slot.graph is not None and (slot.batch, slot.cache_len) == (4, 256)
