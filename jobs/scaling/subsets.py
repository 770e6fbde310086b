"""Nested training subsets by token count (pure functions; the I/O is in ``study.py``).

Order: rows are sorted by ``sha256(f"{seed}:{question_id}")`` (ties by question_id), so
the order is the same on every run and machine and does not depend on the file's row order.

Subsets: subset K is the shortest prefix of that order holding at least ``target_K``
tokens, with ``target_K = total / growth^(n-1-K)`` (the largest is the whole dataset) or,
when ``min_tokens`` is set, ``min_tokens * growth^K``. Prefixes of one order, so every
subset contains all smaller ones; each has ``growth`` times the tokens of the last, to
within one row.

Tokens per row (what D counts: the training text, question + answer):
- answer: ``num_tokens`` of the qa table (the generator's completion tokens; a repaired
  answer counts both turns), or the character estimate below where it is missing;
- question: ``ceil(characters / chars_per_token)``, with chars_per_token calibrated on the
  dataset itself (answer characters / answer tokens, clipped to 2-8), 4 when there is
  nothing to calibrate on. Cheap, needs no tokenizer, and any constant bias scales every
  subset alike (beta and the held-out test do not change; B and D_l are in these units).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jobs.errors import PermanentError

DEFAULT_CHARS_PER_TOKEN = 4.0
CHARS_PER_TOKEN_RANGE = (2.0, 8.0)


class SubsetError(PermanentError, ValueError):
    """The dataset cannot be cut into the requested nested subsets."""


@dataclass(frozen=True)
class RowTokens:
    """Tokens per row and how they were counted."""

    question: np.ndarray
    answer: np.ndarray
    chars_per_token: float

    @property
    def total(self) -> np.ndarray:
        return self.question + self.answer


@dataclass(frozen=True)
class Subset:
    """Subset K: the first ``rows`` rows of the order, holding ``tokens`` tokens."""

    k: int
    rows: int
    tokens: int
    target_tokens: float


def subset_ids(num_subsets: int) -> list[str]:
    """The subset ids ``["0", ..., "n-1"]``, smallest subset first (what a DAG maps over)."""
    if num_subsets < 1:
        raise SubsetError(f"num_subsets must be >= 1, got {num_subsets}")
    return [str(k) for k in range(num_subsets)]


def hash_order(question_ids: Sequence[str], seed: int) -> np.ndarray:
    """Row indices sorted by the seeded hash of each question_id (ties: question_id)."""
    ids = np.array([str(q) for q in question_ids], dtype=str)
    keys = np.array(
        [int.from_bytes(hashlib.sha256(f"{seed}:{q}".encode()).digest()[:8], "big") for q in ids],
        dtype=np.uint64,
    )
    return np.lexsort((ids, keys))


def row_tokens(
    question_chars: np.ndarray, answer_chars: np.ndarray, answer_tokens: np.ndarray
) -> RowTokens:
    """Question + answer tokens per row (see the module docstring); NaN/<=0 answer tokens
    are estimated from characters."""
    q_chars = np.asarray(question_chars, dtype=float)
    a_chars = np.asarray(answer_chars, dtype=float)
    a_tokens = np.asarray(answer_tokens, dtype=float)
    known = np.isfinite(a_tokens) & (a_tokens > 0)
    ratio = DEFAULT_CHARS_PER_TOKEN
    if known.any() and a_chars[known].sum() > 0:
        ratio = float(np.clip(a_chars[known].sum() / a_tokens[known].sum(), *CHARS_PER_TOKEN_RANGE))
    answer = np.where(known, a_tokens, np.ceil(a_chars / ratio))
    question = np.ceil(q_chars / ratio)
    return RowTokens(question.astype(np.int64), answer.astype(np.int64), ratio)


def nested_subsets(
    tokens_in_order: np.ndarray, num_subsets: int, growth: float, min_tokens: int | None = None
) -> list[Subset]:
    """Nested prefixes of ``tokens_in_order`` whose token totals grow by ``growth``.

    Raises :class:`SubsetError` when the dataset is empty, smaller than the largest target,
    or too small for ``num_subsets`` distinct subsets.
    """
    tokens = np.asarray(tokens_in_order, dtype=np.int64)
    if len(tokens) == 0 or tokens.sum() <= 0:
        raise SubsetError("the dataset has no rows (or no tokens) to cut into subsets")
    cum = np.cumsum(tokens)
    total = int(cum[-1])
    if min_tokens is None:
        targets = [total / growth ** (num_subsets - 1 - k) for k in range(num_subsets)]
    else:
        targets = [float(min_tokens) * growth**k for k in range(num_subsets)]
        if targets[-1] > total:
            raise SubsetError(
                f"the largest subset needs {targets[-1]:.0f} tokens (min_tokens {min_tokens} x "
                f"{growth}^{num_subsets - 1}) but the dataset has {total}"
            )
    subsets = []
    for k, target in enumerate(targets):
        rows = int(np.searchsorted(cum, target, side="left")) + 1
        if min_tokens is None and k == num_subsets - 1:
            rows = len(tokens)  # the whole dataset, trailing zero-token rows included
        rows = min(rows, len(tokens))
        if subsets and rows <= subsets[-1].rows:
            raise SubsetError(
                f"{len(tokens)} rows ({total} tokens) are too few for {num_subsets} subsets "
                f"growing {growth}x: subset {k} would equal subset {k - 1}; lower "
                "scaling.num_subsets or publish a larger dataset"
            )
        subsets.append(Subset(k, rows, int(cum[rows - 1]), target))
    return subsets
