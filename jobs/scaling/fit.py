"""Fit both scaling laws to measured points and build the report; also a CLI of its own.

``python -m jobs.scaling.fit POINTS [--out DIR_OR_URI] [--metric error_rate|heldout_loss]``

POINTS is a CSV file (columns ``tokens`` and ``error``) or JSON (a list of
``{"tokens", "error"}`` or ``{"points": [...]}``) measured anywhere. The report (report.json,
report.html, fit.png) is committed to ``--out`` (default: ``<stem>_fit/`` next to POINTS).
Exit code 2, with the reason on stderr, when the points cannot support a fit.

What is fitted: L = the metric (error rate in %, or held-out loss), D = training tokens.
The largest token count is held out and each law is fitted to the rest, when that leaves
it as many distinct points as parameters; its error on the held-out point is the test.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jobs.scaling.checks import check_points
from jobs.scaling.config import ScalingConfig
from jobs.scaling.laws import (
    LAWS,
    POWER,
    FitError,
    LawFit,
    bootstrap,
    fit_law,
    plateau_tokens,
)

__all__ = ["FitError", "Point", "ScalingFit", "check_points", "fit_scaling", "main"]

METRIC_LABELS = {"error_rate": "error rate (%)", "heldout_loss": "held-out loss"}


@dataclass(frozen=True)
class Point:
    """One measurement: training tokens, the metric, and extra fields for the report."""

    tokens: float
    value: float
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScalingFit:
    """The JSON report and, per fitted law, a curve to draw: (tokens, values)."""

    report: dict[str, Any]
    curves: dict[str, tuple[np.ndarray, np.ndarray]]


def tokens_label(tokens: float) -> str:
    """``1e10`` -> ``10B``, ``2.5e11`` -> ``250B``, ``4e12`` -> ``4T``; ``3e15`` past 1000T."""
    if tokens >= 1e15:
        return f"{tokens:.2g}"
    for unit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if tokens >= unit:
            return f"{tokens / unit:.3g}{suffix}"
    return f"{tokens:.3g}"


def fit_scaling(
    points: Sequence[Point], cfg: ScalingConfig, metric: str | None = None
) -> ScalingFit:
    """Fit both laws, test them on the held-out point and build the report.

    Raises :class:`FitError` for degenerate points; a law that alone cannot be fitted (too
    few points for its parameters) is reported as refused, with the reason.
    """
    metric = metric or cfg.metric
    tokens = np.array([p.tokens for p in points], dtype=float)
    values = np.array([p.value for p in points], dtype=float)
    check_points(tokens, values, metric)
    held = tokens == tokens.max() if cfg.holdout else np.zeros(len(tokens), dtype=bool)
    if len(np.unique(tokens[~held])) < POWER.num_params:
        held[:] = False  # no law could be tested on it: every law fits every point
    laws, curves = {}, {}
    span = np.geomspace(tokens.min() / 2, max([tokens.max() * 2, *cfg.predict_tokens]), 200)
    for offset, law in enumerate(LAWS.values()):
        use_held = held.any() and len(np.unique(tokens[~held])) >= law.num_params
        fit_mask = ~held if use_held else np.ones(len(tokens), dtype=bool)
        try:
            fit = fit_law(law, tokens[fit_mask], values[fit_mask])
        except FitError as exc:
            laws[law.name] = {"status": "refused", "formula": law.formula, "reason": str(exc)}
            continue
        draws = bootstrap(fit, tokens[fit_mask], values[fit_mask], cfg.bootstrap, cfg.seed + offset)
        fitted = _Fitted(fit, draws, held if use_held else None, cfg.ci_level)
        laws[law.name] = _law_report(fitted, tokens, values, cfg)
        curves[law.name] = (span, fit.predict(span))
    report = {
        "metric": metric,
        "metric_label": METRIC_LABELS[metric],
        "tokens": "training tokens of the subset (question + answer)",
        "num_points": len(points),
        "points": [
            {**dict(p.info), "tokens": p.tokens, "value": p.value, "role": role}
            for p, role in zip(points, np.where(held, "heldout", "fit"), strict=True)
        ],
        "laws": laws,
        "best_law": _best_law(laws),
        "method": _method(cfg),
        "config": cfg.model_dump(mode="json"),
    }
    report["summary"] = _summary(report, tokens)
    return ScalingFit(json_safe(report), curves)


def _interval(samples: np.ndarray | None, level: float) -> list[float] | None:
    if samples is None:
        return None
    finite = samples[np.isfinite(samples)]
    if len(finite) < 0.9 * len(samples) or len(finite) < 10:
        return None
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return [float(lo), float(hi)]


@dataclass(frozen=True)
class _Fitted:
    """One law's fit, its bootstrap draws (None: no intervals) and the fit-set policy."""

    fit: LawFit
    draws: np.ndarray | None
    held: np.ndarray | None  # mask of the held-out points; None: fitted on every point
    level: float

    def interval(self, samples: list[float] | None) -> list[float] | None:
        return None if samples is None else _interval(np.array(samples, dtype=float), self.level)

    def at(self, tokens: float) -> dict[str, Any]:
        """The law's value at ``tokens`` with its bootstrap interval."""
        draws = (
            None if self.draws is None else [self.fit.predict([tokens], th)[0] for th in self.draws]
        )
        return {"value": float(self.fit.predict([tokens])[0]), "ci": self.interval(draws)}

    def params(self) -> dict[str, dict[str, Any]]:
        raw = self.fit.raw_params()
        draws = None if self.draws is None else [self.fit.raw_params(th) for th in self.draws]
        return {
            k: {"value": v, "ci": self.interval(None if draws is None else [d[k] for d in draws])}
            for k, v in raw.items()
        }

    def plateau(self, gain: float) -> dict[str, Any]:
        point, note = plateau_tokens(self.fit.predict, gain)
        draws = None
        if self.draws is not None:
            draws = [
                plateau_tokens(lambda d, th=th: self.fit.predict(d, th), gain)[0] or np.nan
                for th in self.draws
            ]
        value = float(self.fit.predict([point])[0]) if point else None
        return {
            "gain_per_doubling": gain,
            "tokens": point,
            "value": value,
            "ci": self.interval(draws),
            "note": note,
        }

    def heldout(self, tokens: np.ndarray, values: np.ndarray) -> dict[str, Any] | None:
        if self.held is None:
            return None
        at, observed = float(tokens[self.held][0]), float(values[self.held].mean())
        predicted = self.at(at)
        error = predicted["value"] - observed
        return {
            "tokens": at,
            "observed": observed,
            "predicted": predicted["value"],
            "predicted_ci": predicted["ci"],
            "error": error,
            "abs_error": abs(error),
        }


def _law_report(
    fitted: _Fitted, tokens: np.ndarray, values: np.ndarray, cfg: ScalingConfig
) -> dict[str, Any]:
    fit = fitted.fit
    return {
        "status": "ok",
        "formula": fit.law.formula,
        "fitted_on": _fitted_on(fitted, cfg),
        "num_fit_points": fit.num_points,
        "dof": fit.dof,
        "fit_rmse": fit.rmse,
        "params": fitted.params(),
        "at_bounds": fit.at_bounds(float(values.max())),
        "heldout": fitted.heldout(tokens, values),
        "predictions": [
            {"tokens": t, "label": tokens_label(t), **fitted.at(t)} for t in cfg.predict_tokens
        ],
        "plateau": fitted.plateau(cfg.plateau_gain),
        "bootstrap": {
            "resamples": cfg.bootstrap,
            "succeeded": 0 if fitted.draws is None else len(fitted.draws),
            "note": None if fitted.draws is not None else _no_bootstrap(cfg, fit),
        },
    }


def _fitted_on(fitted: _Fitted, cfg: ScalingConfig) -> str:
    if fitted.held is not None:
        return "every point but the held-out one"
    if not cfg.holdout:
        return "every point (scaling.holdout = false)"
    return "every point (holding one out would leave fewer points than parameters)"


def _no_bootstrap(cfg: ScalingConfig, fit: LawFit) -> str:
    if cfg.bootstrap == 0:
        return "scaling.bootstrap = 0"
    if fit.dof < 1:
        return (
            f"{fit.num_points} points for {fit.law.num_params} parameters: an exact fit has "
            "no residuals to resample"
        )
    return "every bootstrap refit failed"


def _best_law(laws: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    tested = {n: r["heldout"]["abs_error"] for n, r in laws.items() if r.get("heldout")}
    if len(tested) < len(LAWS):
        return {
            "law": None,
            "by": None,
            "note": "not every law could be tested on a held-out point",
        }
    best = min(tested, key=tested.get)
    return {"law": best, "by": "abs_error on the held-out point", "abs_errors": tested}


def _method(cfg: ScalingConfig) -> dict[str, Any]:
    return {
        "fit": "least squares on the metric (scipy least_squares, trf, bounds), in x = ln(D/D_ref) "
        "with log-scale parameters; starts: best 4 points of a grid over beta (and the knee) "
        "with B' and E solved in closed form",
        "bounds": "B > 0, 1e-3 <= beta <= 5, D_l > 0, 0 <= E <= max observed value",
        "holdout": "the largest token count, when the rest still has >= parameters points"
        if cfg.holdout
        else "none (scaling.holdout = false)",
        "intervals": f"{cfg.ci_level:.0%} percentile intervals of a residual bootstrap "
        f"({cfg.bootstrap} refits, seed {cfg.seed})",
        "plateau": f"tokens past which doubling D gains less than {cfg.plateau_gain} "
        "(metric units)",
    }


def _summary(report: Mapping[str, Any], tokens: np.ndarray) -> str:
    """One plain sentence per fact: the metric, the points, and what each law was fitted on."""
    head = (
        f"Fitted {report['metric_label']} against training tokens on "
        f"{report['num_points']} points ({tokens_label(float(tokens.min()))} to "
        f"{tokens_label(float(tokens.max()))} tokens)."
    )
    parts = [head]
    for name, law in report["laws"].items():
        if law["status"] != "ok":
            parts.append(f"{name.capitalize()} law: not fitted, {law['reason']}.")
        elif law["heldout"] is None:
            parts.append(f"{name.capitalize()} law: fitted on {law['fitted_on']}, not tested.")
        else:
            n = law["num_fit_points"]
            parts.append(f"{name.capitalize()} law: fitted on {n} points, tested on the largest.")
    return " ".join(parts)


def json_safe(value: Any) -> Any:
    """Plain JSON types; non-finite floats become None (JSON has no Infinity)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer | int):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value) if math.isfinite(value) else None
    return value


# -- the CLI ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.scaling.fit", description="Fit the scaling laws to points."
    )
    parser.add_argument("points", help="CSV (tokens,error) or JSON file of points (path or URI)")
    parser.add_argument("--out", default=None, help="report folder or URI; default <stem>_fit/")
    parser.add_argument("--metric", choices=sorted(METRIC_LABELS), default=None)
    parser.add_argument("--profile", default=None, help="config profile (storage settings)")
    parser.add_argument("--config", default=None, help="TOML overlay ([scaling] section)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    return parser


def main(argv: list[str] | None = None) -> int:
    from jobs.cli import EXIT_CONFIG, code_version, setup_logging
    from jobs.config import ConfigError, load_config
    from jobs.scaling.points import PointsError, default_out, parse_points
    from jobs.scaling.report import commit_report
    from jobs.storage import Storage, resolve_uri

    args = _parser().parse_args(argv)
    setup_logging()
    try:
        cfg = load_config(args.profile, args.config, args.overrides)
        storage = Storage(cfg.storage)
        uri = resolve_uri(args.points)
        body = storage.read_bytes(uri)
        points = parse_points(body.decode("utf-8"), uri)
        result = fit_scaling(points, cfg.scaling, args.metric)
    except (ConfigError, PointsError, FitError, OSError) as exc:
        print(f"scaling.fit: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    out = resolve_uri(args.out) if args.out else default_out(uri)
    manifest = {
        "job": "scaling.fit",
        "inputs": [uri],
        "input_sha256": hashlib.sha256(body).hexdigest(),
        "code_version": code_version(),
        "config": cfg.scaling.model_dump(mode="json"),
    }
    html_uri = commit_report(storage, out, result, manifest, attempt="1")
    print(result.report["summary"])
    print(f"report: {html_uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
