"""Question diversity per level: cosine similarity of question pairs from the same source.

The paper's Figure 5 (SynthLLM §4.4): embed the questions with all-MiniLM-L6-v2 and
histogram the cosine similarity of every pair of questions generated from the same
document; Level-2 questions come out less similar to each other than Level-1 ones. Here a
source is a combination (``combo_id``): one document for Levels 1 and 2, one random walk
for Level 3. Pairs never cross sources or levels.

The computation is a pure function of a questions frame and an injected ``embed(texts)``;
:func:`minilm_embedder` is the default, which loads the bundled model on its first call only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

Embedder = Callable[[list[str]], np.ndarray]

MODEL_NAME = "all-MiniLM-L6-v2"
LEVELS = ("1", "2", "3")
# Fixed bins of width 0.05 over the whole cosine range, so levels and runs share one x axis;
# edges as i / 20, so 0 and 0.5 are exact edges.
BINS_PER_UNIT = 20
BIN_WIDTH = 1 / BINS_PER_UNIT
BIN_EDGES = np.arange(-BINS_PER_UNIT, BINS_PER_UNIT + 1) / BINS_PER_UNIT
# The paper sampled 2,000 documents; more sources cost embedding time and add no information.
MAX_SOURCES = 2000
# MiniLM truncates at 256 word pieces (~1,000 characters); this only bounds tokenizer work.
MAX_QUESTION_CHARS = 2000


def _sample_order(combo_id: str) -> str:
    return hashlib.sha1(combo_id.encode("utf-8")).hexdigest()


def source_groups(
    frame: pd.DataFrame, max_sources: int | None = MAX_SOURCES
) -> dict[str, list[list[str]]]:
    """Per level (``"1"``...), the question texts of every source with at least two questions.

    A level with more than ``max_sources`` such sources keeps the first ``max_sources`` in
    sha1(combo_id) order: a fixed pseudo-random sample, the same for the same table.
    """
    rows = frame.dropna(subset=["combo_id", "level", "question"])
    by_level: dict[str, dict[str, list[str]]] = {}
    for (level, combo_id), texts in rows.groupby(["level", "combo_id"])["question"]:
        if len(texts) >= 2:
            by_level.setdefault(str(int(level)), {})[str(combo_id)] = [str(t) for t in texts]
    out = {}
    for level, sources in by_level.items():
        kept = sorted(sources, key=_sample_order)[:max_sources]
        out[level] = [sources[c] for c in kept]
    return out


def _normalised(vectors: Any, expected: int) -> np.ndarray:
    vecs = np.asarray(vectors, dtype=np.float64)
    if vecs.ndim != 2 or vecs.shape[0] != expected:
        raise ValueError(f"embed returned shape {vecs.shape} for {expected} texts")
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.where(norms == 0, 1.0, norms)


def pair_similarities(groups: Sequence[Sequence[str]], vectors: np.ndarray) -> np.ndarray:
    """Cosine of every pair within each group; ``vectors`` holds the groups' texts in order."""
    sims, start = [], 0
    for group in groups:
        block = vectors[start : start + len(group)]
        start += len(group)
        upper_i, upper_j = np.triu_indices(len(group), k=1)
        sims.append((block @ block.T)[upper_i, upper_j])
    if not sims:
        return np.empty(0)
    # Rounding can put a normalised self-similar pair a hair past 1.
    return np.clip(np.concatenate(sims), -1.0, 1.0)


def similarity_stats(sims: np.ndarray, num_sources: int, num_questions: int) -> dict[str, Any]:
    """The per-level figures; ``histogram`` is ``[[bin_lo, count], ...]`` over ``BIN_EDGES``."""
    figures: dict[str, Any] = {
        "num_sources": num_sources,
        "num_questions": num_questions,
        "num_pairs": int(sims.size),
    }
    if sims.size == 0:
        return figures | dict.fromkeys(("mean", "median", "p10", "p90", "histogram"))
    counts, _ = np.histogram(sims, bins=BIN_EDGES)
    p10, p50, p90 = np.percentile(sims, [10, 50, 90])
    return figures | {
        "mean": round(float(sims.mean()), 4),
        "median": round(float(p50), 4),
        "p10": round(float(p10), 4),
        "p90": round(float(p90), 4),
        "histogram": [
            [round(float(lo), 2), int(n)] for lo, n in zip(BIN_EDGES[:-1], counts, strict=True)
        ],
    }


def question_diversity(
    frame: pd.DataFrame, embed: Embedder, max_sources: int | None = MAX_SOURCES
) -> dict[str, dict[str, Any]]:
    """Figure-5 figures per level (1, 2, 3 always, plus any other level in the table).

    ``frame`` needs ``combo_id``, ``level`` and ``question``. ``num_sources`` counts sources
    with at least two questions and ``num_questions`` the questions in them. All texts go to
    ``embed`` in one call, and only when some pair exists: no pairs, no model load.
    """
    groups = source_groups(frame, max_sources)
    levels = sorted(set(LEVELS) | set(groups), key=int)
    texts = [t for level in levels for group in groups.get(level, []) for t in group]
    vectors = _normalised(embed(texts), len(texts)) if texts else np.empty((0, 0))
    out, start = {}, 0
    for level in levels:
        level_groups = groups.get(level, [])
        num_questions = sum(len(g) for g in level_groups)
        sims = pair_similarities(level_groups, vectors[start : start + num_questions])
        start += num_questions
        out[level] = similarity_stats(sims, len(level_groups), num_questions)
    return out


def minilm_embedder(
    model_path: str | None = None, batch_size: int = 64, num_threads: int | None = None
) -> Embedder:
    """The bundled all-MiniLM-L6-v2 (or the model at ``model_path``) as an :data:`Embedder`.

    Building it is free: the model is loaded on the first call, once.
    """
    model: Any = None

    def embed(texts: list[str]) -> np.ndarray:
        nonlocal model
        # Looked up at call time: jobs.filter.embed owns finding and loading the model.
        from jobs.filter import embed as minilm

        if model is None:
            model = minilm.load_model(minilm.resolve_model_path(model_path), num_threads)
        return minilm.embed_texts(model, list(texts), MAX_QUESTION_CHARS, batch_size)

    return embed
