r"""k-sample agreement: cluster the final answers of one question, keep the majority.

Rules (the paper gives none; these follow self-consistency voting):

- two final answers are in one cluster when ``equivalent(first member, answer)`` holds
  (math_verify in the job: ``1/2``, ``0.5`` and ``\frac{1}{2}`` agree); an answer joins the
  first cluster, in order of creation, whose first member it equals, else starts a new one.
  Identical strings agree without asking. A comparison that times out counts as unequal;
- samples are visited in sample-index order, so clusters are numbered by their first sample;
  the majority is the largest cluster, ties going to the one with the lowest first sample;
- ``agreement`` = size of the majority cluster / number of samples requested for the question.
  Samples without a usable final answer (unparseable, engine error, no response) count in the
  denominator, never in a cluster: 2 agreeing answers out of 4 requests is 0.5, not 1.0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Equivalence = Callable[[str, str], bool]


def exact_match(a: str, b: str) -> bool:
    """Equivalence by identical strings (normalised final answers): the test default."""
    return a == b


@dataclass(frozen=True)
class Agreement:
    """The clusters of one question's samples and the winning one.

    ``clusters`` holds sample indices (positions in the input), each cluster in index order;
    ``majority`` is the winning cluster (empty when no sample had an answer).
    """

    num_samples: int
    clusters: tuple[tuple[int, ...], ...]
    majority: tuple[int, ...]

    @property
    def agreement(self) -> float:
        return len(self.majority) / self.num_samples if self.num_samples else 0.0

    @property
    def representative(self) -> int | None:
        """Index of the sample whose answer is kept: the majority cluster's first."""
        return self.majority[0] if self.majority else None


def score_agreement(finals: Sequence[str | None], equivalent: Equivalence) -> Agreement:
    """Cluster ``finals`` (None: a sample without a usable answer) and pick the majority."""
    clusters: list[list[int]] = []
    for index, answer in enumerate(finals):
        if answer is None:
            continue
        for cluster in clusters:
            first = finals[cluster[0]]
            if answer == first or equivalent(answer, first):
                cluster.append(index)
                break
        else:
            clusters.append([index])
    majority = max(clusters, key=len) if clusters else []  # max keeps the first of equals
    return Agreement(len(finals), tuple(tuple(c) for c in clusters), tuple(majority))


def agreement_by_level(scored: Iterable[tuple[int, float, bool]]) -> dict[str, dict[str, Any]]:
    """Per level: questions scored, kept, below the minimum, mean agreement and a histogram.

    ``scored`` yields (level, agreement, kept) for every question with at least one answer;
    histogram keys are agreements with two decimals (``"0.75"``), ascending.
    """
    levels: dict[str, list[tuple[float, bool]]] = {}
    for level, agreement, kept in scored:
        levels.setdefault(str(int(level)), []).append((agreement, kept))
    out: dict[str, dict[str, Any]] = {}
    for level in sorted(levels, key=int):
        values = levels[level]
        histogram: dict[str, int] = {}
        for agreement, _ in sorted(values):
            key = f"{agreement:.2f}"
            histogram[key] = histogram.get(key, 0) + 1
        kept = sum(k for _, k in values)
        out[level] = {
            "questions": len(values),
            "kept": kept,
            "low_agreement": len(values) - kept,
            "mean": round(sum(a for a, _ in values) / len(values), 4),
            "histogram": histogram,
        }
    return out
