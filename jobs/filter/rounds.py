"""The fine-grained filter's rounds (paper section 1.1), pure: arrays in, decisions out.

Round t rates a sample of the previous set D^{t-1} plus a random sample D_R of the corpus
(the candidates), trains a random-forest regressor on the MiniLM embeddings to predict the
mean rating, scores every candidate and keeps those above the threshold as D^t. D^0 is the
cold-start classifier's set. A document rated in an earlier round keeps that rating (the
rater is greedy, so asking again would give the same answer). A round keeps the previous set
instead, and says why in its stats (``fallback``), when it gets fewer than
``refine.min_ratings`` readable ratings (``too_few_ratings``), when its regressor keeps
nothing (``none_above_threshold``), or when it keeps less than ``refine.min_keep_share`` of
the previous set (``collapsed``: a regressor fit on a handful of ratings can score all but
one document under the threshold).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jobs.filter.rating import Outcome

log = logging.getLogger(__name__)

# (round, [(doc_id, text)]) -> one outcome per document, in order.
Rater = Callable[[int, Sequence[tuple[str, str]]], list[Outcome]]


@dataclass(frozen=True)
class Candidates:
    """Every document the rounds choose from, aligned by position."""

    doc_ids: list[str]
    texts: list[str]
    embeddings: np.ndarray  # (n, d), the cold-start classifier's MiniLM vectors
    cold_kept: np.ndarray  # bool (n,): in D^0


@dataclass
class RoundsResult:
    """Per document: the final verdict, its rating and the deciding regressor's score."""

    kept: np.ndarray
    fine_score: np.ndarray  # NaN where no regressor decided
    ratings: dict[int, tuple[int, Outcome]] = field(default_factory=dict)  # pos -> (round, out)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    decided_by: int = 0  # the round whose regressor chose the final set; 0: cold start


def sample_positions(doc_ids: Sequence[str], positions: Sequence[int], num: int, salt: str):
    """``num`` of ``positions`` chosen by a seeded hash of the doc_id (order-independent)."""

    def key(pos: int) -> tuple[str, str]:
        return hashlib.sha1(f"{salt}:{doc_ids[pos]}".encode()).hexdigest(), doc_ids[pos]

    return sorted(sorted(positions, key=key)[:num])


def fit_regressor(x: np.ndarray, y: np.ndarray, cfg: Any, seed: int):
    """A seeded random-forest regressor of the rating on the embeddings."""
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(
        n_estimators=cfg.num_trees, max_depth=cfg.max_depth, random_state=seed, n_jobs=1
    )
    return model.fit(x, y)


def _histogram(values: np.ndarray, lo: float, hi: float, bins: int) -> dict[str, Any]:
    values = values[~np.isnan(values)]
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    return {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}


def score_histograms(cold: np.ndarray, result: RoundsResult) -> dict[str, Any]:
    """Distributions for the report: cold-start score (0-1), fine score and rating (1-10)."""
    rated = np.array(
        [o.parsed.rating.score for _, o in result.ratings.values() if o.parsed.rating], float
    )
    return {
        "cold_start": _histogram(np.asarray(cold, float), 0.0, 1.0, 20),
        "fine": _histogram(result.fine_score, 1.0, 10.0, 18),
        "rating": _histogram(rated, 1.0, 10.0, 18),
    }


def _rate_round(t, cand, current, ratings, rate, cfg) -> tuple[list[int], dict[str, Any]]:
    """Rate this round's sample; returns the positions with a readable rating and stats."""
    n = len(cand.doc_ids)
    members = [int(p) for p in np.flatnonzero(current)]
    prev = sample_positions(cand.doc_ids, members, cfg.num_rate_previous, f"p{cfg.seed}:{t}")
    rest = sorted(set(range(n)) - set(prev))
    rand = sample_positions(cand.doc_ids, rest, cfg.num_rate_random, f"r{cfg.seed}:{t}")
    todo = [p for p in prev + rand if p not in ratings]
    outcomes = rate(t, [(cand.doc_ids[p], cand.texts[p]) for p in todo]) if todo else []
    for pos, out in zip(todo, outcomes, strict=True):
        ratings[pos] = (t, out)
    fresh = [ratings[p][1] for p in todo]
    usable = [p for p in prev + rand if ratings[p][1].parsed.rating is not None]
    stats = {
        "round": t,
        "sample_previous": len(prev),
        "sample_random": len(rand),
        "rated": len(todo),
        "reused": len(prev) + len(rand) - len(todo),
        "parsed": sum(o.parsed.rating is not None for o in fresh),
        "repaired": sum(o.attempts > 1 for o in fresh),
        "request_errors": sum(bool(o.response.error) for o in fresh),
        "unparseable": sum(o.parsed.rating is None and not o.response.error for o in fresh),
        "training_rows": len(usable),
    }
    return sorted(usable), stats


def run_rounds(cand: Candidates, rate: Rater, cfg: Any) -> RoundsResult:
    """Run ``cfg.num_iterations`` rounds starting from the cold-start set (see module doc)."""
    n = len(cand.doc_ids)
    current = np.asarray(cand.cold_kept, bool).copy()
    result = RoundsResult(kept=current, fine_score=np.full(n, np.nan))
    for t in range(1, cfg.num_iterations + 1):
        started = time.monotonic()
        usable, stats = _rate_round(t, cand, current, result.ratings, rate, cfg)
        y = np.array([result.ratings[p][1].parsed.rating.score for p in usable], float)
        stats.update(rating_mean=round(float(y.mean()), 3) if y.size else None, fallback=None)
        if len(usable) < cfg.min_ratings:
            stats["fallback"] = "too_few_ratings"
        else:
            model = fit_regressor(cand.embeddings[usable], y, cfg, cfg.seed + t)
            scores = model.predict(cand.embeddings) if n else np.zeros(0)
            selected = scores > cfg.threshold
            share = selected.sum() / max(1, int(current.sum()))
            stats.update(above_threshold=int(selected.sum()), keep_share=round(float(share), 4))
            if not selected.any():
                stats["fallback"] = "none_above_threshold"
            elif share < cfg.min_keep_share:
                stats["fallback"] = "collapsed"
            else:
                current, result.fine_score, result.decided_by = selected, scores, t
        if stats["fallback"]:
            log.warning(
                "fine-grained round %d: %s (%d readable ratings, min %d; %s of %d above the "
                "threshold, min share %g); keeping the previous set of %d documents",
                t, stats["fallback"], len(usable), cfg.min_ratings,
                stats.get("above_threshold", "none"), n, cfg.min_keep_share, int(current.sum()),
            )  # fmt: skip
        stats.update(kept=int(current.sum()), seconds=round(time.monotonic() - started, 2))
        log.info("fine-grained round %d: %s", t, stats)
        result.rounds.append(stats)
    result.kept = current
    return result
