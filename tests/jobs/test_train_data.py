"""Tokenization through the chat template, answer-only labels, and the bucketed batch plan."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.train.data import (
    IGNORE_INDEX,
    TokenizedSet,
    collate,
    micro_batches,
    plan_steps,
    step_counts,
    tokenize_examples,
)

QUESTIONS = ["What is 2 + 3?", "Compute $\\frac{1}{2} + \\frac{1}{3}$ and simplify it fully."]
ANSWERS = ["2 + 3 = 5. The final answer is \\boxed{5}", "It is \\boxed{\\frac{5}{6}}"]


@pytest.fixture(scope="module")
def tokenizer():
    from jobs.train.modeling import load_tokenizer

    return load_tokenizer("smollm2-135m-instruct", "var/cache/models")


def test_labels_are_ignored_exactly_on_prompt_and_padding(tokenizer):
    from jobs.train.chat import prompt_text

    data = tokenize_examples(tokenizer, QUESTIONS, ANSWERS, max_seq_len=512)
    pad = tokenizer.pad_token_id
    batch = collate(data, np.array([0, 1]), pad)
    ids, mask, labels = (batch[k].numpy() for k in ("input_ids", "attention_mask", "labels"))
    assert ids.shape == labels.shape == mask.shape == (2, max(data.lengths))
    for row, (question, answer) in enumerate(zip(QUESTIONS, ANSWERS, strict=True)):
        # The prompt is exactly what the generation engine feeds the model.
        prompt = tokenizer(prompt_text(tokenizer, question), add_special_tokens=False)
        p_len, length = len(prompt["input_ids"]), int(data.lengths[row])
        assert data.prompt_lens[row] == p_len
        assert ids[row, :p_len].tolist() == prompt["input_ids"]
        assert (labels[row, :p_len] == IGNORE_INDEX).all()
        assert (labels[row, length:] == IGNORE_INDEX).all()
        assert (mask[row, length:] == 0).all() and (mask[row, :length] == 1).all()
        assert (ids[row, length:] == pad).all()
        # Every answer token (and the end-of-turn token) is a label.
        assert (labels[row, p_len:length] == ids[row, p_len:length]).all()
        assert (labels[row, p_len:length] != IGNORE_INDEX).all()
        decoded = tokenizer.decode(ids[row, p_len:length].tolist())
        assert decoded.startswith(answer) and "<|im_end|>" in decoded
    assert step_counts(data, np.array([0, 1]))[1] == int((labels != IGNORE_INDEX).sum())


def test_long_examples_are_cut_and_counted(tokenizer):
    questions = [QUESTIONS[0], QUESTIONS[0]]
    data = tokenize_examples(tokenizer, questions, ["word " * 400, "short"], max_seq_len=64)
    assert data.lengths[0] == 64 and data.lengths[1] < 64 and data.num_truncated == 1
    assert data.prompt_lens[0] == data.prompt_lens[1] < 64  # the prompt stays, the answer is cut
    tiny = tokenize_examples(tokenizer, QUESTIONS[:1], ANSWERS[:1], max_seq_len=8)
    assert tiny.num_without_answer == 1 and tiny.answer_lens[0] == 0


def _set(lengths: list[int]) -> TokenizedSet:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = np.arange(offsets[-1], dtype=np.int32) % 1000
    return TokenizedSet(tokens, offsets, np.ones(len(lengths), dtype=np.int32))


def test_bucketing_keeps_every_example_once_per_epoch_and_cuts_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 500, size=203)
    steps = plan_steps(lengths, batch_size=8, num_epochs=3, seed=1, bucket_batches=5)
    per_epoch = 5 * 5 + 1  # five full windows of five batches, then one batch of 3
    assert len(steps) == 3 * per_epoch
    flat = np.concatenate(steps)
    assert len(flat) == 3 * 203
    for epoch in range(3):
        seen = np.concatenate(steps[epoch * per_epoch : (epoch + 1) * per_epoch])
        assert sorted(seen.tolist()) == list(range(203))

    def padding(plan):
        return sum(len(s) * lengths[s].max() - lengths[s].sum() for s in plan)

    unbucketed = plan_steps(lengths, batch_size=8, num_epochs=3, seed=1, bucket_batches=1)
    assert padding(steps) < 0.5 * padding(unbucketed)
    again = plan_steps(lengths, batch_size=8, num_epochs=3, seed=1, bucket_batches=5)
    assert all((a == b).all() for a, b in zip(steps, again, strict=True))
    other = plan_steps(lengths, batch_size=8, num_epochs=3, seed=2, bucket_batches=5)
    assert any(len(a) != len(b) or (a != b).any() for a, b in zip(steps, other, strict=False))


def test_micro_batches_split_a_step_over_ranks_without_loss():
    step = np.arange(13)
    single = micro_batches(step, micro_batch_size=4)
    assert [len(m) for m in single] == [4, 3, 3, 3]
    ranks = [micro_batches(step, 4, world_size=3, rank=r) for r in range(3)]
    assert len({len(r) for r in ranks}) == 1  # same accumulation count on every rank
    assert sorted(np.concatenate([m for r in ranks for m in r]).tolist()) == list(range(13))
    assert max(len(m) for r in ranks for m in r) <= 4
    # A last batch smaller than the world cannot be shared out: it is dropped.
    assert all(len(s) >= 4 for s in plan_steps(np.ones(9), 8, 1, 0, 1, world_size=4))


def test_collate_pads_to_a_multiple():
    batch = collate(_set([5, 9]), np.array([0, 1]), pad_id=0, pad_multiple=8)
    assert batch["input_ids"].shape == (2, 16)
    assert (batch["labels"][:, 9:] == IGNORE_INDEX).all()
