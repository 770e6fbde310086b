"""Which points a scaling law may be fitted to: :func:`check_points` refuses the rest.

A refused fit is better than a silent bad one: every check names what it found.
"""

from __future__ import annotations

import math

import numpy as np

from jobs.scaling.laws import LAWS, FitError


def check_points(tokens: np.ndarray, values: np.ndarray, metric: str) -> None:
    """Refuse points no scaling law should be fitted to, with the reason.

    Refused: no points; non-finite tokens or values; tokens <= 0; an error rate outside
    0-100 or a negative loss; fewer distinct token counts than the smallest law's 3
    parameters; and a metric that does not go down with D, i.e. Spearman's rho between
    tokens and metric >= 0 (or undefined, all values equal), or the mean value at the
    largest D >= the mean value at the smallest D.
    """
    if len(tokens) == 0:
        raise FitError("no points to fit")
    bad = [
        i for i in range(len(tokens)) if not (math.isfinite(tokens[i]) and math.isfinite(values[i]))
    ]
    if bad:
        raise FitError(f"non-finite tokens or {metric} at points {bad}")
    if np.any(tokens <= 0):
        raise FitError(f"token counts must be positive, got {sorted(set(tokens[tokens <= 0]))}")
    if metric == "error_rate" and np.any((values < 0) | (values > 100)):
        raise FitError(f"error_rate is a percentage (0-100), got {sorted(values)}")
    if metric == "heldout_loss" and np.any(values < 0):
        raise FitError(f"heldout_loss cannot be negative, got {sorted(values)}")
    distinct = len(np.unique(tokens))
    smallest = min(law.num_params for law in LAWS.values())
    if distinct < smallest:
        raise FitError(f"{distinct} distinct token counts: a scaling law needs at least {smallest}")
    rho = spearman(tokens, values)
    first = float(values[tokens == tokens.min()].mean())
    last = float(values[tokens == tokens.max()].mean())
    if not rho < 0 or last >= first:
        raise FitError(
            f"the {metric} does not go down with more data (Spearman rho {rho:+.2f} between "
            f"tokens and {metric}; {first:.4g} at {tokens.min():.3g} tokens, {last:.4g} at "
            f"{tokens.max():.3g}): refusing to fit a decreasing law; check the runs"
        )


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    order = np.argsort(a, kind="mergesort")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(a))
    ordered = a[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    dense = starts.cumsum()[inverse]
    bounds = np.r_[np.flatnonzero(starts), len(a)]
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation; NaN when either side is constant (plain numpy: importing
    scipy.stats costs seconds)."""
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])
