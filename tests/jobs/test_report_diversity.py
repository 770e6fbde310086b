"""Question diversity (paper Figure 5): same-source cosine similarity per level."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from jobs.report.diversity import minilm_embedder, question_diversity, source_groups
from jobs.report.plots import (
    degree_histogram_png,
    degree_label,
    dense_buckets,
    similarity_density_png,
)

# Deliberately not normalised: the cosine must not depend on a vector's length.
VECTORS = {
    "a": [1.0, 0.0],
    "b": [0.0, 2.0],
    "c": [3.0, 3.0],
    "lonely": [5.0, 1.0],
    "e": [1.0, 0.0],
    "f": [-4.0, 0.0],
    "g": [0.0, 1.0],
}


class FakeEmbedder:
    """Looks vectors up by text and records every call."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([self.vectors[t] for t in texts])


def frame(rows: list[tuple[str, int, str | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["combo_id", "level", "question"])


def never_called(texts: list[str]) -> np.ndarray:
    raise AssertionError(f"embed called for {len(texts)} texts")


def test_figures_are_the_hand_computed_cosines():
    questions = frame(
        [
            ("s1", 1, "a"), ("s1", 1, "b"), ("s1", 1, "c"),  # cosines 0, 1/√2, 1/√2
            ("s2", 1, "lonely"),  # one question: no pair, not a source
            ("s3", 2, "e"), ("s3", 2, "f"),  # cosine -1
            ("s4", 2, "g"), ("s4", 2, "g"),  # cosine 1
            ("s5", 2, None),  # no text: ignored
        ]
    )  # fmt: skip
    embed = FakeEmbedder(VECTORS)
    out = question_diversity(questions, embed)
    assert len(embed.calls) == 1 and sorted(embed.calls[0]) == sorted("abcefgg")
    r = 1 / math.sqrt(2)
    level1 = out["1"]
    assert {k: level1[k] for k in ("num_sources", "num_questions", "num_pairs")} == {
        "num_sources": 1, "num_questions": 3, "num_pairs": 3,
    }  # fmt: skip
    assert level1["mean"] == round(2 * r / 3, 4)
    assert level1["median"] == round(r, 4)
    # numpy's linear percentile over [0, r, r]: p10 sits at 0.2 of the way from 0 to r.
    assert level1["p10"] == round(0.2 * r, 4) and level1["p90"] == round(r, 4)
    hist = dict((lo, n) for lo, n in level1["histogram"])
    assert len(hist) == 40 and sum(hist.values()) == 3
    assert hist[0.0] == 1 and hist[0.7] == 2  # 0.7071 falls in [0.70, 0.75)
    level2 = out["2"]
    assert (level2["num_sources"], level2["num_questions"], level2["num_pairs"]) == (2, 4, 2)
    assert (level2["mean"], level2["median"], level2["p10"], level2["p90"]) == (0, 0, -0.8, 0.8)
    hist2 = dict((lo, n) for lo, n in level2["histogram"])
    assert hist2[-1.0] == 1 and hist2[0.95] == 1  # both ends of [-1, 1] are binned
    assert out["3"] == {
        "num_sources": 0, "num_questions": 0, "num_pairs": 0, "mean": None, "median": None,
        "p10": None, "p90": None, "histogram": None,
    }  # fmt: skip


def test_pairs_never_cross_sources_or_levels():
    # Within each source the two questions are identical; across sources orthogonal.
    questions = frame(
        [("x", 1, "a"), ("y", 1, "g"), ("x", 1, "e"), ("y", 1, "b"), ("x", 2, "g"), ("x", 2, "b")]
    )
    out = question_diversity(questions, FakeEmbedder(VECTORS))
    assert (out["1"]["num_sources"], out["1"]["num_pairs"]) == (2, 2)
    assert (out["2"]["num_sources"], out["2"]["num_pairs"]) == (1, 1)
    for level in ("1", "2"):
        assert out[level]["p10"] == out[level]["mean"] == 1.0


def test_no_pairs_means_no_embedding():
    singles = frame([("s1", 1, "a"), ("s2", 2, "b"), ("s3", 3, "c")])
    out = question_diversity(singles, never_called)
    assert [out[lvl]["num_pairs"] for lvl in ("1", "2", "3")] == [0, 0, 0]
    assert question_diversity(frame([]), never_called)["1"]["mean"] is None


def test_source_sample_is_fixed_whatever_the_row_order():
    rows = [(f"s{i}", 1, f"q{i}-{j}") for i in range(6) for j in range(2)]
    first = source_groups(frame(rows), max_sources=2)
    assert len(first["1"]) == 2
    assert source_groups(frame(list(reversed(rows))), max_sources=2)["1"] == [
        list(reversed(group)) for group in first["1"]
    ]


def test_embedder_output_must_match_the_texts():
    with pytest.raises(ValueError, match=r"shape \(1, 2\) for 2 texts"):
        question_diversity(frame([("s", 1, "a"), ("s", 1, "b")]), lambda t: np.ones((1, 2)))


def test_plots_are_pngs_and_labels_name_the_buckets():
    questions = frame([("s", 1, "a"), ("s", 1, "c"), ("t", 2, "e"), ("t", 2, "g")])
    levels = question_diversity(questions, FakeEmbedder(VECTORS))
    assert similarity_density_png(levels)[:8] == b"\x89PNG\r\n\x1a\n"
    assert similarity_density_png({"1": levels["3"]}) is None
    assert [degree_label(lo) for lo in (0, 1, 2, 4, 64)] == ["0", "1", "2–3", "4–7", "64–127"]
    # The graph job leaves empty buckets out; the chart puts them back.
    histogram = [[1, 2], [2, 5], [16, 1]]
    assert dense_buckets(histogram) == [(1, 2), (2, 5), (4, 0), (8, 0), (16, 1)]
    assert dense_buckets([[0, 3]]) == [(0, 3)]
    assert degree_histogram_png(histogram)[:8] == b"\x89PNG\r\n\x1a\n"


def test_minilm_scores_paraphrases_above_unrelated_questions():
    questions = frame(
        [
            ("para", 1, "What is the area of a circle with radius 3 cm?"),
            ("para", 1, "Find the area of a circle whose radius is 3 centimetres."),
            ("apart", 2, "What is the area of a circle with radius 3 cm?"),
            ("apart", 2, "How many ways can 5 books be arranged on a shelf?"),
        ]
    )
    out = question_diversity(questions, minilm_embedder(num_threads=2))
    assert out["1"]["num_pairs"] == out["2"]["num_pairs"] == 1
    assert out["1"]["mean"] > 0.8
    assert out["1"]["mean"] > out["2"]["mean"] + 0.3
