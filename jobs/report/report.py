"""Write the snapshot's summary report: ``{reports}/index.html`` and ``summary.json``.

``python -m jobs.report.report --snapshot S``

Reads each committed stage output's ``_stats.json``, the validation verdicts and the length
columns of documents, questions and qa; any of them may be missing (the page then says
"not run"). The page is one file with the histograms inlined, beside the Data Docs that the
validate jobs uploaded to ``{reports}/data_docs/``. The report prefix is not committed with
StageOutput because that would replace the Data Docs; each file is written whole instead.
"""

from __future__ import annotations

import logging
from typing import Any

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import STATS, SUCCESS, StageStats
from jobs.layout import Layout
from jobs.report.plots import data_uri, histogram_png
from jobs.report.render import render_html
from jobs.report.summary import LENGTHS, STAGES, build_summary
from jobs.storage import Storage, join
from jobs.tables import read_table
from jobs.validate.results import RESULT_FILE
from jobs.validate.suites import TABLES

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
INDEX_FILE = "index.html"


def _committed(storage: Storage, uri: str) -> bool:
    return storage.exists(join(uri, SUCCESS))


def read_stage_stats(storage: Storage, layout: Layout) -> dict[str, dict | None]:
    """``_stats.json`` of every committed stage output; None for stages not run."""
    out: dict[str, dict | None] = {}
    for stage in STAGES:
        uri = layout.table(stage)
        out[stage] = storage.read_json(join(uri, STATS)) if _committed(storage, uri) else None
    return out


def read_validations(storage: Storage, layout: Layout) -> dict[str, dict | None]:
    """Committed validation verdicts per table; None where validation has not run."""
    out: dict[str, dict | None] = {}
    for table in TABLES:
        uri = join(layout.run, "validation", table)
        out[table] = storage.read_json(join(uri, RESULT_FILE)) if _committed(storage, uri) else None
    return out


def read_tables(storage: Storage, layout: Layout) -> tuple[dict, dict]:
    """Row counts and character lengths of the committed tables, one column read per table.

    Row counts come from the tables themselves: a stage's ``rows_out`` counts its own units
    (questions.collect counts documents, not questions).
    """
    rows: dict[str, int] = {}
    lengths: dict[str, list[int] | None] = {}
    for name, (table, column) in LENGTHS.items():
        uri = layout.table(table)
        if not _committed(storage, uri):
            lengths[name] = None
            continue
        values = read_table(storage, uri, columns=[column])[column]
        rows[table] = len(values)
        lengths[name] = [len(v) for v in values if isinstance(v, str)]
    return rows, lengths


def make_plots(lengths: dict[str, list[int] | None]) -> dict[str, str | None]:
    """One histogram (as a data URI) per length list that has values."""
    plots: dict[str, str | None] = {}
    for name, values in lengths.items():
        if values:
            plots[name] = data_uri(histogram_png(values, name.replace("_", " "), "characters"))
        else:
            plots[name] = None
    return plots


def write_report(storage: Storage, reports_uri: str, summary: dict[str, Any], html: str) -> str:
    """Write summary.json, then index.html (the entry point last); returns the page's URI."""
    storage.write_json(join(reports_uri, SUMMARY_FILE), summary)
    uri = join(reports_uri, INDEX_FILE)
    storage.write_text(uri, html, "text/html")
    return uri


def run(ctx: JobContext) -> StageStats:
    """Gather the snapshot's numbers and write the report."""
    storage = Storage(ctx.cfg.storage)
    layout = ctx.layout
    stats = read_stage_stats(storage, layout)
    table_rows, lengths = read_tables(storage, layout)
    links = {"data_docs": "data_docs/index.html", "dataset": layout.dataset}
    validations = read_validations(storage, layout)
    summary = build_summary(
        ctx.snapshot, ctx.run_id, stats, validations, lengths, links, table_rows
    )
    uri = write_report(storage, layout.reports, summary, render_html(summary, make_plots(lengths)))
    missing = [s for s, st in stats.items() if st is None]
    if missing:
        log.warning("report written without stages that have not run: %s", ", ".join(missing))
    log.info("report: %s", uri)
    print(f"report: {uri}")
    return StageStats()


def main(argv: list[str] | None = None) -> int:
    return run_job("report", argv, run, base_parser("Write the snapshot's summary report."))


if __name__ == "__main__":
    raise SystemExit(main())
