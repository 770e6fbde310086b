"""Run a suite over a table seen one bounded chunk at a time.

Why chunks of pandas rather than a GX Spark datasource: every stage that feeds validation
already writes plain Parquet that pyarrow reads in batches, the validate task stays a light
Python pod (no JVM, no Spark image, same DAG wiring), and the pandas datasource the suites
were written and tested against keeps its exact semantics on each chunk.

Expectations fall in two kinds:

* row-wise ones (null, set, range, length, regex checks and the column set) run through GX
  on every chunk; their results are merged: success only if every chunk succeeded,
  unexpected and element counts summed, examples from the first chunks;
* whole-table ones (:data:`WHOLE_TABLE`: row count and uniqueness), which a chunk cannot
  answer, are computed in one streaming pass (:class:`~jobs.validate.chunks.TableTally`)
  and checked by GX as range expectations on the one-row metrics table, next to the
  duplicate and parse-failure rates; their results are reported under the table's suite with
  the type and kwargs written in the suite file.

Data Docs: the table's page is the first chunk's run (the site cannot show a merged run);
the metrics page covers the whole table. ``result.json`` always holds the merged verdict.
A table of at most ``chunk_rows`` rows is one chunk and validates exactly as a whole table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jobs.validate.chunks import TableTally
from jobs.validate.results import verdict
from jobs.validate.suites import ExpectationSpec, SuiteSpec, check_parameters, table_metrics

log = logging.getLogger(__name__)

ROW_COUNT = "expect_table_row_count_to_be_between"
UNIQUE = "expect_column_values_to_be_unique"
COMPOUND_UNIQUE = "expect_compound_columns_to_be_unique"
WHOLE_TABLE = (ROW_COUNT, UNIQUE, COMPOUND_UNIQUE)
_BETWEEN = "expect_column_values_to_be_between"
_MAX_EXAMPLES = 10


def _columns(spec: ExpectationSpec) -> tuple[str, ...]:
    return tuple(spec.kwargs.get("column_list") or [spec.kwargs["column"]])


def _metric_name(spec: ExpectationSpec) -> str:
    return "row_count" if spec.type == ROW_COUNT else "+".join(_columns(spec)) + "__non_unique"


def _as_metric(spec: ExpectationSpec) -> ExpectationSpec:
    """The whole-table expectation as a range check on its column of the metrics table."""
    if spec.type == ROW_COUNT:
        bounds = {k: v for k, v in spec.kwargs.items() if k in ("min_value", "max_value")}
    else:
        bounds = {"max_value": 0}
    note = f"Whole-table `{spec.type}` {spec.kwargs}, counted over every chunk."
    return ExpectationSpec(_BETWEEN, {"column": _metric_name(spec), **bounds}, spec.critical, note)


def _merge(chunks: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One result per expectation from per-chunk results in the same order."""
    if len(chunks) == 1:
        return list(chunks[0])
    merged = []
    for per_chunk in zip(*chunks, strict=True):
        first = dict(per_chunk[0])
        failed = [r for r in per_chunk if not r["success"]]
        shown = failed[0] if failed else first

        def total(key: str, rows: Sequence[dict] = per_chunk) -> int | None:
            values = [r[key] for r in rows if r.get(key) is not None]
            return sum(values) if values else None

        unexpected, elements = total("unexpected_count"), total("element_count")
        missing = total("missing_count") or 0
        base = elements if first["type"].endswith("not_be_null") else (elements or 0) - missing
        examples = [e for r in per_chunk for e in r.get("unexpected_examples") or []]
        first.update(
            success=not failed,
            observed_value=shown.get("observed_value"),
            unexpected_count=unexpected,
            unexpected_percent=(100 * unexpected / base) if unexpected is not None and base else
            (0.0 if unexpected is not None else None),
            unexpected_examples=examples[:_MAX_EXAMPLES],
            element_count=elements,
            missing_count=total("missing_count"),
            exception=next((r["exception"] for r in per_chunk if r.get("exception")), None),
        )  # fmt: skip
        merged.append(first)
    return merged


def _whole_table_result(spec: ExpectationSpec, checked: dict, table: str, tally) -> dict:
    """The metric check's result, reported as the suite file's own expectation."""
    out = dict(checked, suite=table, type=spec.type, kwargs=dict(spec.kwargs))
    if spec.type == ROW_COUNT:
        return dict(out, observed_value=tally.num_rows)
    cols = _columns(spec)
    if tally.missing_columns(cols):
        missing = ", ".join(tally.missing_columns(cols))
        return dict(out, success=False, exception=f"column(s) not in the table: {missing}")
    count, examples, present = tally.non_unique(cols)
    percent = 100 * count / present if present else 0.0
    return dict(
        out,
        observed_value=None,
        unexpected_count=count,
        unexpected_percent=percent,
        unexpected_examples=examples,
    )


def validate_chunks(
    spec: SuiteSpec,
    chunks: Iterable[Any],
    stats: Mapping[str, Any] | None,
    parameters: dict[str, Any],
    site_dir: Path,
    run_name: str,
) -> dict[str, Any]:
    """Run ``spec`` over pandas ``chunks``; returns the verdict. Data Docs go to ``site_dir``."""
    import pandas as pd

    from jobs.validate.gx_adapter import GxValidator

    check_parameters(spec, parameters)
    whole = [e for e in spec.expectations if e.type in WHOLE_TABLE]
    row_wise = tuple(e for e in spec.expectations if e.type not in WHOLE_TABLE)
    tally = TableTally([_columns(e) for e in whole if e.type != ROW_COUNT], spec.duplicate_column)
    gx = GxValidator(site_dir)
    per_chunk: list[list[dict[str, Any]]] = []
    for frame in chunks:
        tally.add(frame)
        if row_wise:
            per_chunk.append(gx.run(spec.table, row_wise, frame, parameters, run_name,
                                    docs=not per_chunk))  # fmt: skip
    if row_wise and not per_chunk:  # no rows and no schema: GX still sees the empty table
        per_chunk.append(gx.run(spec.table, row_wise, pd.DataFrame(), parameters, run_name))
    log.info("%s: %d rows in %d chunk(s)", spec.table, tally.num_rows, max(len(per_chunk), 1))
    metrics = table_metrics(spec, None, tally.num_rows, stats)
    metrics["duplicate_rate"] = tally.duplicate_rate()
    frame = {**metrics, **{_metric_name(e): _metric_value(e, tally) for e in whole}}
    metric_specs = (*spec.metric_expectations, *(_as_metric(e) for e in whole))
    checked = gx.run(
        f"{spec.table}_metrics",
        metric_specs,
        pd.DataFrame([frame]).astype("float64"),
        parameters,
        run_name,
    )
    n_plain = len(spec.metric_expectations)
    by_spec = dict(zip((id(e) for e in whole), checked[n_plain:], strict=True))
    table_results = _merge(per_chunk) if per_chunk else []
    row_iter = iter(table_results)
    ordered = [
        _whole_table_result(e, by_spec[id(e)], spec.table, tally)
        if e.type in WHOLE_TABLE
        else next(row_iter)
        for e in spec.expectations
    ]
    return verdict(spec.table, [*ordered, *checked[:n_plain]], metrics, parameters)


def _metric_value(spec: ExpectationSpec, tally: TableTally) -> float | None:
    if spec.type == ROW_COUNT:
        return tally.num_rows
    cols = _columns(spec)
    # A missing column fails through _whole_table_result; NaN keeps the metric row numeric.
    return None if tally.missing_columns(cols) else tally.non_unique(cols)[0]
