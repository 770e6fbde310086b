"""The llama.cpp engine on the bundled GGUF (CPU): template parity, prefill, seeds, errors."""

from __future__ import annotations

import pytest
from greedy import agreed_prefix, top2_margin

from jobs.config import GenerationConfig
from jobs.llm.engine import ChatRequest, make_engine
from jobs.llm.llamacpp_engine import continue_final_message

PREFILL = "The final answer is \\boxed{"


def _ask(
    cid: str,
    text: str,
    max_tokens: int = 8,
    temperature: float = 0.0,
    seed: int | None = 1,
    prefill: str | None = None,
) -> ChatRequest:
    messages = [{"role": "system", "content": "You are a careful math tutor."}]
    messages.append({"role": "user", "content": text})
    if prefill is not None:
        messages.append({"role": "assistant", "content": prefill})
    return ChatRequest(cid, tuple(messages), temperature, 0.95, max_tokens, seed)


def test_continue_final_message_cuts_after_the_last_turns_content():
    rendered = "<s>user\nhi<e>\n<s>assistant\nThe answer: <e>\n"
    assert (
        continue_final_message(rendered, "The answer: ")
        == "<s>user\nhi<e>\n<s>assistant\nThe answer: "
    )
    # A template that strips the message: cut after the stripped text.
    assert continue_final_message("<s>a\nx y<e>\n", " x y \n") == "<s>a\nx y"
    with pytest.raises(ValueError, match="dropped the final"):
        continue_final_message("<s>a\n<e>", "missing")


@pytest.fixture(scope="module")
def engine():
    from jobs.llm.llamacpp_engine import LlamaCppEngine

    engine = LlamaCppEngine(n_ctx=2048, n_threads=1, seed=3)
    yield engine
    engine.close()


@pytest.mark.slow
def test_prompt_tokens_match_the_transformers_chat_template(engine):
    from transformers import AutoTokenizer

    from jobs.llm.transformers_engine import resolve_model

    directory, gguf = resolve_model("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(directory, gguf_file=gguf, local_files_only=True)
    for req in (_ask("a", "What is 2 + 3?"), _ask("b", "Solve 2x = 6.", prefill=PREFILL)):
        text = tok.apply_chat_template(list(req.messages), tokenize=False, **req.template_flags())
        assert engine.template.render(req) == text
        assert engine.encode(req) == tok(text, add_special_tokens=False)["input_ids"]
    assert engine.template.render(req).endswith("<|im_start|>assistant\n" + PREFILL)


@pytest.mark.slow
def test_prefill_is_continued_and_returned_with_the_continuation(engine):
    req = _ask("p", "What is 2 + 3? Give only the number.", max_tokens=6, prefill=PREFILL)
    [resp] = engine.generate([req])
    assert resp.error is None
    assert resp.text.startswith(PREFILL) and len(resp.text) > len(PREFILL)
    assert resp.prompt_tokens == len(engine.encode(req))
    # A continuation, not a new turn: the text after the prefill opens no new message.
    assert "<|im_start|>" not in resp.text and "assistant" not in resp.text[len(PREFILL) :]


@pytest.mark.slow
def test_greedy_is_deterministic_and_seeded_sampling_reproducible(engine):
    # The engine reuses the cached prefix of the previous prompt, and how much of a prompt is
    # prefilled at once changes the rounding; the same history before each call makes it
    # the very same computation, which must give the very same answer.
    greedy = _ask("g", "Name three prime numbers.", max_tokens=12)
    other = _ask("other", "Write a haiku about rain.", max_tokens=8)
    engine.generate([other])
    first = engine.generate([greedy])[0]
    engine.generate([other])
    assert engine.generate([greedy])[0] == first

    def sampled(seed: int) -> str:
        req = _ask(f"s{seed}", "Tell me a fact about circles.", 16, temperature=1.0, seed=seed)
        return engine.generate([req])[0].text

    runs = {seed: sampled(seed) for seed in (1, 2, 3)}
    assert all(text for text in runs.values())
    assert sampled(2) == runs[2]
    assert len(set(runs.values())) > 1  # the seed changes the sample


@pytest.mark.slow
def test_several_requests_keep_order_count_tokens_and_fail_alone(engine):
    reqs = [
        _ask("a", "What is 2 + 3?", max_tokens=5),
        _ask("long", "seven " * 3000),
        _ask("b", "Name a prime number.", max_tokens=40),
    ]
    out = engine.generate(reqs)
    assert [r.custom_id for r in out] == ["a", "long", "b"]
    assert out[1].error.startswith("prompt too long: ") and out[1].prompt_tokens >= 2048
    assert (out[1].text, out[1].finish_reason) == ("", "error")
    for resp, req in ((out[0], reqs[0]), (out[2], reqs[2])):
        assert resp.error is None and resp.text.strip()
        assert resp.prompt_tokens == len(engine.encode(req)) > 10
        assert 1 <= resp.completion_tokens <= req.max_tokens
        if resp.finish_reason == "length":
            assert resp.completion_tokens == req.max_tokens
        else:
            assert resp.finish_reason == "stop"
    assert out[0].finish_reason == "length"  # 5 tokens are too few for this model's answer


@pytest.mark.slow
def test_make_engine_builds_the_llamacpp_engine():
    cfg = GenerationConfig(engine="llamacpp", llamacpp_n_ctx=512, num_threads=1)
    engine = make_engine(cfg)
    try:
        assert engine.model_name == "smollm2-135m-instruct" and engine.max_context == 512
        [resp] = engine.generate([_ask("a", "Hi", max_tokens=3)])
        assert resp.error is None and resp.completion_tokens >= 1
    finally:
        engine.close()


def test_groups_hold_at_most_n_seq_requests_whose_cells_fit():
    from jobs.llm.llamacpp_engine import _Batched

    batched = object.__new__(_Batched)  # grouping needs no model
    batched.n_seq, batched.n_ctx = 3, 100
    items = [
        (i, _ask(f"r{i}", "x", max_tokens=20), [0] * n)
        for i, n in enumerate([10, 10, 10, 10, 50, 30, 90])
    ]
    sizes = [[i for i, _, _ in group] for group in batched.groups(items)]
    # 30 cells each: three fit (n_seq); 30 + 70 fill the next; a 90-token prompt gets 10.
    assert sizes == [[0, 1, 2], [3, 4], [5], [6]]
    assert batched.budget(items[6][1], items[6][2]) == 10


@pytest.fixture(scope="module")
def batched_engine():
    from jobs.llm.llamacpp_engine import LlamaCppEngine

    engine = LlamaCppEngine(n_ctx=2048, n_threads=1, seed=3, n_seq=4)
    yield engine
    engine.close()


STOP = -1  # an end-of-turn token, whichever of the model's it was


def _greedy_reference(engine, ids: list[int], budget: int) -> tuple[list[int], list[float]]:
    """The one-sequence path's greedy tokens, each with the logit margin it was chosen by."""
    import llama_cpp
    import numpy as np

    llm = engine.llm
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    llm.reset()
    llm.eval(ids)
    tokens: list[int] = []
    margins: list[float] = []
    for _ in range(budget):
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
        token = int(np.argmax(logits))
        margins.append(top2_margin(logits))
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            tokens.append(STOP)
            break
        tokens.append(token)
        llm.eval([token])
    return tokens, margins


def test_agreed_prefix_allows_parting_only_at_a_near_tie():
    assert agreed_prefix([1, 2, 3], [1, 2, 3], [5.0, 5.0, 5.0]) == 3
    assert agreed_prefix([1, 9, 3], [1, 2, 4], [5.0, 0.01, 5.0]) == 1
    assert agreed_prefix([1, STOP, 7], [1, STOP, 8], [5.0, 5.0, 5.0], {STOP}) == 2
    with pytest.raises(AssertionError, match="step 1: token 9 != reference 2"):
        agreed_prefix([1, 9], [1, 2], [5.0, 3.0])
    with pytest.raises(AssertionError, match="lengths"):
        agreed_prefix([1], [1, 2], [5.0, 5.0])


@pytest.mark.slow
def test_several_sequences_at_once_agree_with_one_at_a_time_except_at_near_ties(
    engine, batched_engine
):
    """The multi-sequence path cannot promise the one-sequence path's greedy answers.

    Its rows share a larger KV cache and decode through other kernels, so their logits round
    differently (how, depends on the CPU); a near tie may go the other way. What holds on
    every machine: order, counts, errors and finish reasons; greedy tokens that match the
    single path wherever its choice was not a near tie; the same answers when run again.
    """
    reqs = [
        _ask("a", "What is 2 + 3?", max_tokens=10),
        _ask("b", "Name three prime numbers.", max_tokens=14),
        _ask("c", "Solve 2x = 6.", max_tokens=6, prefill=PREFILL),
        _ask("long", "seven " * 3000),
        _ask("s", "Tell me a fact about circles.", 12, temperature=1.0, seed=5),
    ]
    together = batched_engine.generate(reqs)
    alone = engine.generate(reqs)
    assert [r.custom_id for r in together] == ["a", "b", "c", "long", "s"]
    assert together[3].error.startswith("prompt too long: ")
    assert together[2].text.startswith(PREFILL) and len(together[2].text) > len(PREFILL)
    for mine, single, req in zip(together, alone, reqs, strict=True):
        assert (mine.prompt_tokens, mine.error) == (single.prompt_tokens, single.error)
        if req.custom_id != "long":
            assert mine.text.strip() and 1 <= mine.completion_tokens <= req.max_tokens
            assert mine.finish_reason in {"stop", "length"}
            assert (mine.finish_reason == "length") == (mine.completion_tokens == req.max_tokens)

    # Greedy rows decoded side by side (with a sampled one) against the one-sequence path.
    greedy = [r for r in reqs if r.temperature == 0 and r.custom_id != "long"]
    group = [*greedy, reqs[4]]
    jobs = [(r, engine.encode(r), 1) for r in group]
    outs = batched_engine._batched.run(jobs)
    compared = 0
    for req, (tokens, stopped) in zip(greedy, outs, strict=False):
        ids = engine.encode(req)
        want, margins = _greedy_reference(engine, ids, req.max_tokens)
        compared += agreed_prefix([*tokens, STOP] if stopped else tokens, want, margins, {STOP})
    assert compared >= 3  # each row's first token at least: none of them opens on a near tie
    # The same group again gives the same answers, sampled ones included.
    assert batched_engine._batched.run(jobs) == outs
    assert batched_engine.generate(reqs) == together
