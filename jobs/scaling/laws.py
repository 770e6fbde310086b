"""The two data scaling laws and their least-squares fits (paper section 3.1).

Power law      ``L(D) = B / D^beta + E``
Rectified law  ``L(D) = B / (D_l + D^beta) + E``  (Lin et al. without the outer exponent)

Conditioning: D enters as ``x = ln(D / D_ref)`` with ``D_ref`` the geometric mean of the fit
tokens, and the positive scales are fitted as logs (``b = ln B'``, ``d = ln D_l'`` in those
units), so every start is finite and the Jacobian is well scaled whether D is 1e3 or 1e12.
``raw_params`` converts back to token units. Residuals are in the metric's own units
(percentage points of error), so the fit minimises the error one reads off the plot.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from jobs.errors import PermanentError

# Bounds of the internal parameters. beta > 0 but capped: past 5 a doubling changes D^beta
# 32-fold and the law is a step, not a trend. The log-scales get room far beyond any data.
BETA_MIN, BETA_MAX = 1e-3, 5.0
LOG_SCALE = 60.0


class FitError(PermanentError, ValueError):
    """The points cannot support a fit (too few, non-finite, out of range, not decreasing)."""


def _power(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    b, beta, e = theta
    return e + np.exp(b - beta * x)


def _rectified(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    b, beta, d, e = theta
    return e + np.exp(b - np.logaddexp(d, beta * x))


def _power_jac(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    b, beta, _ = theta
    f = np.exp(b - beta * x)
    return np.column_stack([f, -x * f, np.ones_like(x)])


def _rectified_jac(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    b, beta, d, _ = theta
    s = np.logaddexp(d, beta * x)
    f = np.exp(b - s)
    share = np.exp(beta * x - s)  # D^beta / (D_l + D^beta), computed without overflow
    return np.column_stack([f, -x * f * share, -f * (1 - share), np.ones_like(x)])


@dataclass(frozen=True)
class Law:
    """One functional form: its internal parameters and how to evaluate it."""

    name: str
    formula: str
    internal: tuple[str, ...]
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]
    jac: Callable[[np.ndarray, np.ndarray], np.ndarray]

    @property
    def num_params(self) -> int:
        return len(self.internal)

    def bounds(self, value_max: float) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds; E lies in [0, the largest observed value]."""
        lo = {"b": -LOG_SCALE, "beta": BETA_MIN, "d": -LOG_SCALE, "E": 0.0}
        hi = {"b": LOG_SCALE, "beta": BETA_MAX, "d": LOG_SCALE, "E": max(value_max, 1e-9)}
        return np.array([lo[p] for p in self.internal]), np.array([hi[p] for p in self.internal])

    def starts(self, x: np.ndarray, y: np.ndarray, num: int = 4) -> list[np.ndarray]:
        """The ``num`` best points of a grid over the nonlinear parameters (beta, and the
        rectified law's knee), each with its best linear ones (B', E): for fixed beta and
        knee the law is ``E + B' g(x)``, a two-column least-squares problem solved in closed
        form for the whole grid at once (variable projection). Local refinement starts there.
        """
        betas = np.geomspace(0.02, 3.0, 40)
        if self.name == "power":
            shapes = np.exp(-betas[:, None] * x[None, :])
            nonlinear = [(beta,) for beta in betas]
        else:
            knees = np.linspace(x.min() - 4, x.max() + 4, 25)
            grid = [(beta, beta * k) for beta in betas for k in knees]
            beta_d = np.array(grid)
            shapes = np.exp(-np.logaddexp(beta_d[:, 1:2], beta_d[:, 0:1] * x[None, :]))
            nonlinear = grid
        scale, floor, sse = _linear_fit(shapes, y)
        order = [i for i in np.argsort(sse) if np.isfinite(sse[i])][:num]
        out = []
        for i in order:
            b = math.log(max(scale[i], 1e-25))
            if self.name == "power":
                out.append(np.array([b, nonlinear[i][0], floor[i]]))
            else:
                out.append(np.array([b, nonlinear[i][0], nonlinear[i][1], floor[i]]))
        return out


def _linear_fit(shapes: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per row g of ``shapes``: min ||y - E - c g|| with 0 <= E <= max(y); c, E and the SSE."""
    g_mean = shapes.mean(axis=1)
    g_var = ((shapes - g_mean[:, None]) ** 2).sum(axis=1)
    cov = ((shapes - g_mean[:, None]) * (y - y.mean())[None, :]).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = cov / g_var
        e = y.mean() - c * g_mean
        gg = (shapes**2).sum(axis=1)
        for bound in (0.0, float(y.max())):
            out = (e < 0) if bound == 0.0 else (e > bound)
            c = np.where(out, (shapes @ (y - bound)) / gg, c)
            e = np.where(out, bound, e)
    sse = ((y[None, :] - e[:, None] - c[:, None] * shapes) ** 2).sum(axis=1)
    sse = np.where((c > 0) & (g_var > 1e-300), sse, np.inf)
    return c, e, sse


POWER = Law("power", "L(D) = B / D^beta + E", ("b", "beta", "E"), _power, _power_jac)
RECTIFIED = Law(
    "rectified",
    "L(D) = B / (D_l + D^beta) + E",
    ("b", "beta", "d", "E"),
    _rectified,
    _rectified_jac,
)
LAWS = {law.name: law for law in (POWER, RECTIFIED)}


@dataclass(frozen=True)
class LawFit:
    """A fitted law: internal parameters, the token unit they refer to, and fit quality."""

    law: Law
    theta: np.ndarray
    d_ref: float
    num_points: int
    rmse: float

    def predict(self, tokens: Any, theta: np.ndarray | None = None) -> np.ndarray:
        """The law at ``tokens`` (any array-like), with ``theta`` (default: the fit's)."""
        x = np.log(np.asarray(tokens, dtype=float) / self.d_ref)
        return self.law.fn(self.theta if theta is None else theta, x)

    @property
    def dof(self) -> int:
        return self.num_points - self.law.num_params

    def at_bounds(self, value_max: float) -> list[str]:
        """Internal parameters that ended on a bound (the optimum may lie beyond it)."""
        lo, hi = self.law.bounds(value_max)
        span = hi - lo
        near = (self.theta - lo < 1e-6 * span) | (hi - self.theta < 1e-6 * span)
        return [name for name, flag in zip(self.law.internal, near, strict=True) if flag]

    def raw_params(self, theta: np.ndarray | None = None) -> dict[str, float]:
        """Parameters in token units: B, beta, E (+ D_l, the knee D_l^(1/beta) in tokens and
        L0 = B/D_l + E, the metric before fine-tuning, for the rectified law)."""
        th = self.theta if theta is None else theta
        ln_ref = math.log(self.d_ref)
        if self.law.name == "power":
            b, beta, e = th
            return {"B": _exp(b + beta * ln_ref), "beta": float(beta), "E": float(e)}
        b, beta, d, e = th
        return {
            "B": _exp(b + beta * ln_ref),
            "beta": float(beta),
            "D_l": _exp(d + beta * ln_ref),
            "E": float(e),
            "D_l_tokens": _exp(d / beta + ln_ref),
            "L0": _exp(b - d) + float(e),
        }


def _exp(v: float) -> float:
    """exp that gives inf instead of raising (reported as null)."""
    return math.exp(v) if v < 700 else math.inf


def _solve(law: Law, x: np.ndarray, y: np.ndarray, start: np.ndarray):
    from scipy.optimize import least_squares

    lo, hi = law.bounds(float(np.max(y)))
    margin = 1e-9 * (hi - lo)
    x0 = np.clip(start, lo + margin, hi - margin)
    return least_squares(
        lambda th: law.fn(th, x) - y,
        x0,
        jac=lambda th: law.jac(th, x),
        bounds=(lo, hi),
        method="trf",
        x_scale="jac",
    )


def fit_law(law: Law, tokens: Any, values: Any) -> LawFit:
    """Least-squares fit of ``law`` from every start of its grid; the lowest cost wins.

    Raises :class:`FitError` with fewer distinct token counts than parameters.
    """
    tokens = np.asarray(tokens, dtype=float)
    values = np.asarray(values, dtype=float)
    distinct = len(np.unique(tokens))
    if distinct < law.num_params:
        raise FitError(
            f"the {law.name} law has {law.num_params} parameters but only {distinct} distinct "
            f"token counts to fit them on: it needs at least {law.num_params}"
        )
    d_ref = float(np.exp(np.mean(np.log(tokens))))
    x = np.log(tokens / d_ref)
    best = None
    for start in law.starts(x, values):
        res = _solve(law, x, values, start)
        if np.isfinite(res.cost) and (best is None or res.cost < best.cost):
            best = res
    if best is None:
        raise FitError(f"the {law.name} law did not converge from any start")
    rmse = float(np.sqrt(np.mean(best.fun**2)))
    return LawFit(law, best.x, d_ref, len(tokens), rmse)


def bootstrap(fit: LawFit, tokens: Any, values: Any, num: int, seed: int) -> np.ndarray | None:
    """Residual bootstrap: refit ``num`` times to fitted values plus resampled residuals.

    Residuals are centred and inflated by sqrt(n / (n - p)) (least squares shrinks them).
    Each refit starts from the point estimate. None when there are no residual degrees of
    freedom (an exact fit has nothing to resample) or ``num`` is 0.
    """
    if num <= 0 or fit.dof < 1:
        return None
    tokens = np.asarray(tokens, dtype=float)
    values = np.asarray(values, dtype=float)
    x = np.log(tokens / fit.d_ref)
    fitted = fit.law.fn(fit.theta, x)
    resid = values - fitted
    resid = (resid - resid.mean()) * math.sqrt(fit.num_points / fit.dof)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(num):
        sample = fitted + rng.choice(resid, size=len(resid), replace=True)
        res = _solve(fit.law, x, sample, fit.theta)
        if res.success and np.isfinite(res.cost):
            draws.append(res.x)
    return np.array(draws) if draws else None


def plateau_tokens(
    predict: Callable[[np.ndarray], np.ndarray], gain: float, lo: float = 1.0, hi: float = 1e20
) -> tuple[float | None, str]:
    """The token count past which one more doubling of D gains less than ``gain``.

    ``gain(D) = L(D) - L(2D)`` falls towards 0 as D grows (for the rectified law it first
    rises up to the knee), so this is the last crossing of ``gain`` on a log grid, refined by
    bisection. Returns (tokens, note); tokens is None when no doubling ever gains that much
    or the crossing lies beyond ``hi``.
    """
    from scipy.optimize import brentq

    def gained(log_d: np.ndarray) -> np.ndarray:
        d = np.exp(log_d)
        return predict(d) - predict(2 * d) - gain

    grid = np.linspace(math.log(lo), math.log(hi), 4001)
    above = np.flatnonzero(gained(grid) >= 0)
    if len(above) == 0:
        return None, f"no doubling between {lo:.0e} and {hi:.0e} tokens gains {gain} or more"
    last = above[-1]
    if last == len(grid) - 1:
        return None, f"doublings still gain {gain} or more at {hi:.0e} tokens"
    root = brentq(lambda v: float(gained(np.array([v]))[0]), grid[last], grid[last + 1])
    return float(math.exp(root)), "ok"
