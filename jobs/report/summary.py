"""The numbers of the summary report, computed from committed stats and validation verdicts.

Pure functions over plain dicts: the job reads the files, this module adds them up. A stage
or table that has not run yet is reported as ``"not run"`` instead of failing.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from jobs.validate.suites import TABLES, parse_failure_rate

# Stage outputs in pipeline order, with the job that writes each (for the report's labels).
STAGES = {
    "documents_raw": "ingest",
    "documents": "filter",
    "questions": "questions.collect",
    "qa": "answers.collect",
}
# Stages whose rows come from parsing model output.
PARSED_STAGES = ("questions", "qa")
# Length distributions: name -> (table, column).
LENGTHS = {
    "document_chars": ("documents", "text"),
    "question_chars": ("questions", "question"),
    "answer_chars": ("qa", "answer"),
}
NOT_RUN = "not run"


def length_stats(values: Sequence[int] | None) -> dict[str, float] | None:
    """count/min/median/mean/p90/max of a list of lengths; None when the table is missing."""
    if values is None:
        return None
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {
        "count": len(ordered),
        "min": ordered[0],
        "median": statistics.median(ordered),
        "mean": round(statistics.fmean(ordered), 1),
        "p90": p90,
        "max": ordered[-1],
    }


def _stage_row(stats: Mapping[str, Any] | None, table_rows: int | None) -> dict[str, Any]:
    if stats is None:
        return {"status": NOT_RUN}
    return {
        "status": "committed",
        "rows_in": stats.get("rows_in"),
        "rows_out": stats.get("rows_out"),
        "rows_quarantined": stats.get("rows_quarantined"),
        # rows_in/out count the stage's own units; this counts rows of the table it wrote.
        "table_rows": stats.get("rows_out") if table_rows is None else table_rows,
        "wall_s": stats.get("wall_s"),
    }


def _validation_row(result: Mapping[str, Any] | None) -> dict[str, Any]:
    if result is None:
        return {"status": NOT_RUN}
    stats = result.get("statistics", {})
    return {
        "status": "passed" if result.get("success") else "failed",
        "evaluated": stats.get("evaluated"),
        "failed": stats.get("failed"),
        "critical_failures": list(result.get("critical_failures", [])),
        "warnings": list(result.get("warnings", [])),
        "metrics": dict(result.get("metrics", {})),
    }


def _parse_row(stats: Mapping[str, Any] | None) -> dict[str, Any]:
    rate = parse_failure_rate(stats)
    if rate is None:
        return {"status": NOT_RUN}
    return {"parse_failure_rate": round(rate, 4), "parse_success_rate": round(1 - rate, 4)}


def build_summary(
    snapshot: str,
    run_id: str,
    stage_stats: Mapping[str, Mapping[str, Any] | None],
    validations: Mapping[str, Mapping[str, Any] | None],
    lengths: Mapping[str, Sequence[int] | None],
    links: Mapping[str, str],
    table_rows: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Everything ``summary.json`` holds and ``index.html`` shows."""
    stats = {stage: stage_stats.get(stage) for stage in STAGES}
    table_rows = table_rows or {}
    tokens = {s: dict(st.get("tokens") or {}) for s, st in stats.items() if st is not None}
    return {
        "snapshot": snapshot,
        "run_id": run_id,
        "stages": {s: _stage_row(st, table_rows.get(s)) for s, st in stats.items()},
        "quarantine": {
            stage: dict(st.get("quarantined_by_reason") or {})
            for stage, st in stats.items()
            if st is not None
        },
        "tokens": tokens,
        "total_tokens": sum(
            v for t in tokens.values() for v in t.values() if isinstance(v, int | float)
        ),
        "parse": {stage: _parse_row(stats[stage]) for stage in PARSED_STAGES},
        "validation": {t: _validation_row(validations.get(t)) for t in TABLES},
        "lengths": {name: length_stats(lengths.get(name)) for name in LENGTHS},
        "links": dict(links),
    }
