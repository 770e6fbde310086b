"""Training examples as flat token arrays, the length-bucketed batch plan, and collation.

Tokens live in one int32 array with offsets (7.4M examples at ~600 tokens fit in ~18 GB;
lists of Python ints would need ten times that). The batch plan is a pure function of the
lengths, the seed and the epoch count, so a resumed run rebuilds the same plan and needs only
the step number as its data position.

Bucketing: each epoch is a seeded permutation, cut into windows of ``bucket_batches``
batches; a window is sorted by length, cut into batches, and the batches are shuffled. A
batch then holds similar lengths (little padding) while the epoch order stays random. Every
example appears once per epoch; sequences longer than ``max_seq_len`` are cut at the right,
so an example whose prompt fills the whole window keeps no answer tokens (counted).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from jobs.train.chat import encode_pairs

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100  # label of positions without loss (torch cross_entropy's default)
_TOKENIZE_CHUNK = 4096


@dataclass(frozen=True)
class TokenizedSet:
    """Examples as ``tokens[offsets[i]:offsets[i+1]]``, the first ``prompt_lens[i]`` no loss."""

    tokens: np.ndarray  # int32
    offsets: np.ndarray  # int64, len n + 1
    prompt_lens: np.ndarray  # int32
    num_truncated: int = 0
    num_without_answer: int = 0

    def __len__(self) -> int:
        return len(self.prompt_lens)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def answer_lens(self) -> np.ndarray:
        return self.lengths - self.prompt_lens

    def example(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def fingerprint(self) -> str:
        """A digest of the token stream and the masks: resume only onto the same data."""
        h = hashlib.sha256()
        for arr in (self.tokens, self.offsets, self.prompt_lens):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]


def tokenize_examples(
    tokenizer: Any, questions: list[str], answers: list[str], max_seq_len: int
) -> TokenizedSet:
    """Encode question/answer pairs through the chat template, cut at ``max_seq_len``."""
    chunks, lengths, prompt_lens = [], [], []
    truncated = without_answer = 0
    for start in range(0, len(questions), _TOKENIZE_CHUNK):
        stop = start + _TOKENIZE_CHUNK
        prompts, responses = encode_pairs(tokenizer, questions[start:stop], answers[start:stop])
        for prompt, response in zip(prompts, responses, strict=True):
            seq = prompt + response
            if len(seq) > max_seq_len:
                truncated += 1
                seq = seq[:max_seq_len]
            p_len = min(len(prompt), len(seq))
            without_answer += p_len == len(seq)
            chunks.append(np.asarray(seq, dtype=np.int32))
            lengths.append(len(seq))
            prompt_lens.append(p_len)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int32)
    return TokenizedSet(
        tokens, offsets, np.asarray(prompt_lens, dtype=np.int32), truncated, without_answer
    )


def plan_steps(
    lengths: np.ndarray,
    batch_size: int,
    num_epochs: int,
    seed: int,
    bucket_batches: int,
    world_size: int = 1,
) -> list[np.ndarray]:
    """Example indices of every optimizer step, all epochs, in training order."""
    n = len(lengths)
    window = batch_size * bucket_batches
    steps: list[np.ndarray] = []
    for epoch in range(num_epochs):
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(n)
        for start in range(0, n, window):
            chunk = order[start : start + window]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            batches = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
            # Every rank needs at least one micro-batch; a last batch smaller than the world
            # cannot be split (at most world_size - 1 examples per epoch are skipped).
            steps.extend(batches[j] for j in rng.permutation(len(batches)))
    return [s for s in steps if len(s) >= world_size]


def micro_batches(
    step: np.ndarray, micro_batch_size: int, world_size: int = 1, rank: int = 0
) -> list[np.ndarray]:
    """This rank's share of one step, in micro-batches of at most ``micro_batch_size``."""
    count = -(-len(step) // micro_batch_size)
    count = -(-count // world_size) * world_size
    return np.array_split(step, count)[rank::world_size]


def collate(
    data: TokenizedSet, indices: np.ndarray, pad_id: int, pad_multiple: int = 1
) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 off the answers).

    ``pad_multiple`` rounds the width up, bounding the shapes a compiled model sees.
    """
    import torch

    width = int(max(data.lengths[indices]))
    width = -(-width // pad_multiple) * pad_multiple
    input_ids = np.full((len(indices), width), pad_id, dtype=np.int64)
    labels = np.full((len(indices), width), IGNORE_INDEX, dtype=np.int64)
    attention = np.zeros((len(indices), width), dtype=np.int64)
    for row, i in enumerate(indices):
        seq = data.example(int(i))
        input_ids[row, : len(seq)] = seq
        attention[row, : len(seq)] = 1
        p_len = int(data.prompt_lens[i])
        labels[row, p_len : len(seq)] = seq[p_len:]
    return {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(attention),
        "labels": torch.from_numpy(labels),
    }


def step_counts(data: TokenizedSet, step: np.ndarray) -> tuple[int, int]:
    """``(tokens, loss_tokens)`` of one step over all ranks (loss tokens: answer tokens)."""
    return int(data.lengths[step].sum()), int(data.answer_lens[step].sum())
