"""The numbers of the summary report, computed from committed stats and validation verdicts.

Pure functions over plain dicts: the job reads the files, this module adds them up. A stage
or table that has not run yet is reported as ``"not run"`` instead of failing.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.report.diversity import BIN_WIDTH, LEVELS, MAX_SOURCES, MODEL_NAME
from jobs.validate.suites import TABLES, parse_failure_rate

# Stage outputs in pipeline order, with the job that writes each (for the report's labels).
STAGES = {
    "documents_raw": "ingest",
    "candidates": "filter",
    "documents": "filter.refine",
    "doc_concepts": "concepts.collect",
    "graph": "graph.build",
    "combinations": "graph.combinations",
    "questions": "questions.collect",
    "questions_clean": "questions.clean",
    "qa": "answers.collect",
}
# Stages whose rows come from parsing model output.
PARSED_STAGES = ("doc_concepts", "questions", "qa")
# Tables whose rows carry a generation level (the ``level`` column).
LEVEL_TABLES = ("questions", "questions_clean", "qa")
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


@dataclass(frozen=True)
class TableFigures:
    """What the report reads from the tables themselves rather than from ``_stats.json``.

    ``rows``: rows per table; ``lengths``: character lengths per name of :data:`LENGTHS`;
    ``levels``: rows per level per table of :data:`LEVEL_TABLES`; ``diversity``: the result
    of :func:`jobs.report.diversity.question_diversity`. None marks a table not committed.
    """

    rows: Mapping[str, int] = field(default_factory=dict)
    lengths: Mapping[str, Sequence[int] | None] = field(default_factory=dict)
    levels: Mapping[str, Mapping[str, int] | None] = field(default_factory=dict)
    diversity: Mapping[str, Mapping[str, Any]] | None = None


def level_counts(levels: Iterable[Any]) -> dict[str, int]:
    """Rows per generation level, as ``{"1": n, "2": n, "3": n}`` (plus any other level seen)."""
    counts = Counter(str(int(v)) for v in levels if v is not None and v == v)
    return {lvl: counts.get(lvl, 0) for lvl in sorted(set(LEVELS) | set(counts), key=int)}


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


def _int_keys(counts: Mapping[Any, Any] | None) -> dict[str, Any]:
    return {str(k): v for k, v in (counts or {}).items()}


def graph_summary(stats: Mapping[str, Any] | None) -> dict[str, Any]:
    """The concept graph's figures, copied from the ``"graph"`` key of its ``_stats.json``.

    Adds the totals of vertices and edges over their kinds; figures the graph job did not
    record are left out rather than guessed.
    """
    if stats is None:
        return {"status": NOT_RUN}
    graph = stats.get("graph") or {}
    out: dict[str, Any] = {"status": "committed"}
    for kind in ("vertices", "edges"):
        if kind in graph:
            out[kind] = dict(graph[kind])
            out[f"{kind}_total"] = sum(graph[kind].values())
    for key in ("pruned", "degree", "components"):
        if key in graph:
            out[key] = dict(graph[key])
    return out


def combinations_summary(stats: Mapping[str, Any] | None) -> dict[str, Any]:
    """Combinations per level (all of 1-3, 0 when absent) and the random walks' figures."""
    if stats is None:
        return {"status": NOT_RUN}
    by_level = _int_keys(stats.get("by_level"))
    by_level = {lvl: by_level.get(lvl, 0) for lvl in sorted(set(LEVELS) | set(by_level), key=int)}
    return {
        "status": "committed",
        "by_level": by_level,
        "total": sum(by_level.values()),
        "walks": dict(stats.get("walks") or {}),
    }


def agreement_summary(stats: Mapping[str, Any] | None) -> dict[str, Any]:
    """Answer checking: its settings and the agreement distribution per level (qa stats).

    The distribution covers every question with at least one usable answer, the ones
    quarantined for low agreement included.
    """
    if stats is None:
        return {"status": NOT_RUN}
    by_level = (stats.get("agreement") or {}).get("by_level")
    if by_level is None:
        return {"status": "not recorded"}
    return {
        "status": "committed",
        "settings": dict(stats.get("answer_checking") or {}),
        "by_level": {str(k): dict(v) for k, v in by_level.items()},
    }


def document_filter_summary(stats: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fine-grained filter's rounds and score histograms (``refine`` in documents' stats)."""
    if stats is None:
        return {"status": NOT_RUN}
    refine = stats.get("refine")
    if refine is None:
        return {"status": "not recorded"}
    return {"status": "committed", **dict(refine)}


def _levels_row(counts: Mapping[str, int] | None) -> dict[str, Any]:
    if counts is None:
        return {"status": NOT_RUN}
    return {"status": "committed", "by_level": dict(counts), "total": sum(counts.values())}


def _diversity(levels: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    if levels is None:
        return {"status": NOT_RUN}
    return {
        "status": "computed",
        "model": MODEL_NAME,
        "bin_width": BIN_WIDTH,
        "max_sources_per_level": MAX_SOURCES,
        "levels": {lvl: dict(f) for lvl, f in levels.items()},
    }


def question_funnel(stats: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Any]:
    """Per level, per stage: questions in, out and removed by reason.

    ``questions`` (generation) counts prompts in and questions out, with the reasons prompts
    gave no question; ``clean_questions`` and ``answers`` count questions. A stage that has
    not run is absent from a level's row.
    """
    sources = {
        "clean_questions": stats.get("questions_clean"),
        "answers": stats.get("qa"),
    }
    levels: dict[str, dict[str, Any]] = {}
    gen = ((stats.get("questions") or {}).get("by_level")) or {}
    for lvl, row in gen.items():
        levels.setdefault(str(lvl), {})["generate_questions"] = {
            "in": row.get("combinations", 0),
            "out": row.get("questions", 0),
            "removed": dict(row.get("quarantined") or {}),
            "unit": "prompts in, questions out",
        }
    for stage, st in sources.items():
        for lvl, row in ((st or {}).get("by_level") or {}).items():
            levels.setdefault(str(lvl), {})[stage] = dict(row)
    if not levels:
        return {"status": NOT_RUN}
    return {
        "by_level": {lv: levels[lv] for lv in sorted(levels, key=lambda v: (not v.isdigit(), v))}
    }


def build_summary(
    snapshot: str,
    run_id: str,
    stage_stats: Mapping[str, Mapping[str, Any] | None],
    validations: Mapping[str, Mapping[str, Any] | None],
    links: Mapping[str, str],
    tables: TableFigures | None = None,
) -> dict[str, Any]:
    """Everything ``summary.json`` holds and ``index.html`` shows."""
    stats = {stage: stage_stats.get(stage) for stage in STAGES}
    tables = tables or TableFigures()
    tokens = {s: dict(st.get("tokens") or {}) for s, st in stats.items() if st is not None}
    return {
        "snapshot": snapshot,
        "run_id": run_id,
        "stages": {s: _stage_row(st, tables.rows.get(s)) for s, st in stats.items()},
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
        "lengths": {name: length_stats(tables.lengths.get(name)) for name in LENGTHS},
        "graph": graph_summary(stats["graph"]),
        "combinations": combinations_summary(stats["combinations"]),
        "document_filter": document_filter_summary(stats["documents"]),
        "agreement": agreement_summary(stats["qa"]),
        "levels": {t: _levels_row(tables.levels.get(t)) for t in LEVEL_TABLES},
        "funnel": question_funnel(stats),
        "diversity": _diversity(tables.diversity),
        "links": dict(links),
    }
