"""Declarative expectation suites (``expectations/{table}.json``) and the metrics they check.

A suite file holds two lists of ``{"type", "kwargs", "critical", "notes"}`` items:
``expectations`` run on the table itself, ``metric_expectations`` on a one-row table of
table-level metrics (duplicate rate, parse-failure rate) so that those limits show up in
Data Docs like any other expectation. Values may be ``{"$PARAMETER": name}``; the names are
filled from the config by :func:`suite_parameters`. Nothing here imports Great Expectations.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.config import REPO_ROOT, PipelineConfig
from jobs.errors import PermanentError

TABLES = ("documents", "doc_concepts", "questions", "questions_clean", "qa")
PARAM_KEY = "$PARAMETER"
_TYPE_RE = re.compile(r"^expect_[a-z0-9_]+$")


class SuiteError(PermanentError, ValueError):
    """A suite file is missing or malformed."""


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation as written in a suite file."""

    type: str
    kwargs: dict[str, Any]
    critical: bool
    notes: str | None = None


@dataclass(frozen=True)
class SuiteSpec:
    """A parsed suite file."""

    table: str
    description: str
    duplicate_column: str | None
    expectations: tuple[ExpectationSpec, ...]
    metric_expectations: tuple[ExpectationSpec, ...]
    path: str

    def parameter_names(self) -> set[str]:
        """Names of every ``$PARAMETER`` the suite refers to."""
        names: set[str] = set()
        for exp in (*self.expectations, *self.metric_expectations):
            names.update(_parameters_in(exp.kwargs))
        return names


def _parameters_in(value: Any) -> Iterable[str]:
    if isinstance(value, Mapping):
        if PARAM_KEY in value:
            yield str(value[PARAM_KEY])
        else:
            for item in value.values():
                yield from _parameters_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _parameters_in(item)


def _parse_item(item: Any, where: str) -> ExpectationSpec:
    if not isinstance(item, dict):
        raise SuiteError(f"{where}: expected an object, got {type(item).__name__}")
    unknown = set(item) - {"type", "kwargs", "critical", "notes"}
    if unknown:
        raise SuiteError(f"{where}: unknown keys {sorted(unknown)}")
    etype = item.get("type")
    if not isinstance(etype, str) or not _TYPE_RE.match(etype):
        raise SuiteError(f"{where}.type: expected an expect_* name, got {etype!r}")
    kwargs = item.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise SuiteError(f"{where}.kwargs: expected an object")
    critical = item.get("critical")
    if not isinstance(critical, bool):
        raise SuiteError(f"{where}.critical: expected true or false, got {critical!r}")
    return ExpectationSpec(etype, kwargs, critical, item.get("notes"))


def load_suite(path: str | Path) -> SuiteSpec:
    """Read and check one suite file; errors name the file and the offending key."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"expectation suite not found: {path}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("table"), str):
        raise SuiteError(f"{path}: expected an object with a 'table' name")
    lists = {}
    for key in ("expectations", "metric_expectations"):
        items = raw.get(key, [])
        if not isinstance(items, list):
            raise SuiteError(f"{path}: '{key}' must be a list")
        lists[key] = tuple(_parse_item(it, f"{path}: {key}[{i}]") for i, it in enumerate(items))
    if not lists["expectations"]:
        raise SuiteError(f"{path}: 'expectations' is empty")
    return SuiteSpec(
        table=raw["table"],
        description=str(raw.get("description", "")),
        duplicate_column=raw.get("duplicate_column"),
        expectations=lists["expectations"],
        metric_expectations=lists["metric_expectations"],
        path=str(path),
    )


def suite_path(cfg: PipelineConfig, table: str) -> Path:
    """Where the suite of ``table`` lives (``validation.suites_dir``, repo-relative)."""
    base = Path(cfg.validation.suites_dir)
    return (base if base.is_absolute() else REPO_ROOT / base) / f"{table}.json"


def suite_parameters(cfg: PipelineConfig) -> dict[str, Any]:
    """Values for every ``$PARAMETER`` a suite may use, taken from the run's config."""
    return {
        "max_parse_failure_rate": cfg.validation.max_parse_failure_rate,
        "max_duplicate_rate": cfg.validation.max_duplicate_rate,
        "min_text_chars": cfg.filter.min_chars,
        "max_text_chars": cfg.filter.max_chars,
        "min_question_chars": cfg.clean.min_chars,
        "max_question_chars": cfg.clean.max_chars,
    }


def check_parameters(spec: SuiteSpec, params: Mapping[str, Any]) -> None:
    """Fail before running GX when a suite names a parameter the config does not supply."""
    missing = spec.parameter_names() - set(params)
    if missing:
        raise SuiteError(f"{spec.path}: unknown $PARAMETER names {sorted(missing)}")


def normalise_text(text: str) -> str:
    """Case- and whitespace-insensitive form used to count duplicates."""
    return " ".join(str(text).lower().split())


def duplicate_rate(values: Iterable[Any]) -> float:
    """Share of non-null values whose normalised text repeats an earlier value."""
    seen: set[str] = set()
    total = dupes = 0
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        total += 1
        key = normalise_text(value)
        if key in seen:
            dupes += 1
        seen.add(key)
    return dupes / total if total else 0.0


def parse_failure_rate(stats: Mapping[str, Any] | None) -> float | None:
    """Parse-failure rate of a stage from its ``_stats.json``; None when unknown.

    The collect stages record ``parse_rate`` (share of answered requests that parsed) in
    ``StageStats.extra``; ``parse_failure_rate`` is taken as is. Without either, every
    quarantined row counts as a failure over ``rows_in``: an upper bound, so the limit errs
    on the strict side.
    """
    if not stats:
        return None
    if stats.get("parse_failure_rate") is not None:
        return float(stats["parse_failure_rate"])
    if stats.get("parse_rate") is not None:
        return round(1.0 - float(stats["parse_rate"]), 6)
    rows_in = int(stats.get("rows_in") or 0)
    if rows_in <= 0:
        return None
    return int(stats.get("rows_quarantined") or 0) / rows_in


def table_metrics(
    spec: SuiteSpec, column_values: Iterable[Any] | None, num_rows: int, stats: Mapping | None
) -> dict[str, Any]:
    """The one-row metrics table the suite's ``metric_expectations`` run on."""
    return {
        "row_count": num_rows,
        "duplicate_rate": duplicate_rate(column_values) if column_values is not None else None,
        "parse_failure_rate": parse_failure_rate(stats),
    }
