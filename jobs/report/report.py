"""Write the snapshot's summary report: ``{reports}/index.html`` and ``summary.json``.

``python -m jobs.report.report --snapshot S``

Reads each committed stage output's ``_stats.json`` (the concept graph's and the
combinations' figures among them), the validation verdicts, and a few columns of documents,
questions and qa: lengths, rows per level, and the questions' diversity (same-source cosine
similarity, paper Figure 5). Any of them may be missing (the page then says "not run"). The
page is one file with the plots inlined, beside the Data Docs that the validate jobs
uploaded to ``{reports}/data_docs/``. The report prefix is not committed with
StageOutput because that would replace the Data Docs; each file is written whole instead.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import STATS, SUCCESS, StageStats
from jobs.layout import Layout
from jobs.report.diversity import Embedder, minilm_embedder, question_diversity
from jobs.report.plots import (
    binned_png,
    data_uri,
    degree_histogram_png,
    histogram_png,
    similarity_density_png,
)
from jobs.report.render import render_html
from jobs.report.summary import (
    LENGTHS,
    LEVEL_TABLES,
    STAGES,
    TableFigures,
    build_summary,
    level_counts,
)
from jobs.storage import Storage, join
from jobs.tables import read_table
from jobs.validate.results import RESULT_FILE
from jobs.validate.suites import TABLES

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
# The document filter's score histograms (refine stats) -> figure titles.
FILTER_HISTOGRAMS = {
    "cold_start": "cold-start classifier score (all candidates)",
    "fine": "fine-grained score (all candidates)",
    "rating": "LLM rating (rated documents)",
}
INDEX_FILE = "index.html"
# The columns read of each table: lengths, rows per level, and the diversity's sources.
READ_COLUMNS = {
    "documents": ["text"],
    "questions": ["combo_id", "level", "question"],
    "questions_clean": ["level"],
    "qa": ["level", "answer"],
}


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


def read_tables(storage: Storage, layout: Layout) -> dict[str, pd.DataFrame | None]:
    """The columns the report needs of each table in :data:`READ_COLUMNS`, read once each.

    None for a table that is not committed.
    """
    frames: dict[str, pd.DataFrame | None] = {}
    for table, columns in READ_COLUMNS.items():
        uri = layout.table(table)
        committed = _committed(storage, uri)
        frames[table] = read_table(storage, uri, columns=columns) if committed else None
    return frames


def table_figures(frames: dict[str, pd.DataFrame | None], embed: Embedder) -> TableFigures:
    """Row counts, lengths, rows per level and question diversity from the tables.

    Row counts come from the tables themselves: a stage's ``rows_out`` counts its own units
    (questions.collect counts documents, not questions). ``embed`` is called only when the
    questions table has two questions from one source.
    """
    lengths: dict[str, list[int] | None] = {}
    for name, (table, column) in LENGTHS.items():
        frame = frames.get(table)
        lengths[name] = (
            None if frame is None else [len(v) for v in frame[column] if isinstance(v, str)]
        )
    present = {t: f for t, f in frames.items() if f is not None}
    questions = present.get("questions")
    return TableFigures(
        rows={t: len(f) for t, f in present.items()},
        lengths=lengths,
        levels={t: level_counts(present[t]["level"]) for t in LEVEL_TABLES if t in present},
        diversity=None if questions is None else question_diversity(questions, embed),
    )


def make_plots(
    summary: dict[str, Any], lengths: dict[str, list[int] | None]
) -> dict[str, str | None]:
    """Every figure of the page as a data URI (None where there is nothing to draw).

    Keys: the names of :data:`LENGTHS`, ``graph_degree`` and ``diversity``.
    """
    plots: dict[str, str | None] = {}
    for name, values in lengths.items():
        png = histogram_png(values, name.replace("_", " "), "characters") if values else None
        plots[name] = data_uri(png)
    histogram = summary["graph"].get("degree", {}).get("histogram")
    plots["graph_degree"] = data_uri(degree_histogram_png(histogram)) if histogram else None
    histograms = summary["document_filter"].get("histograms") or {}
    for key, label in FILTER_HISTOGRAMS.items():
        h = histograms.get(key)
        png = (
            binned_png(h["edges"], h["counts"], label, "score") if h and sum(h["counts"]) else None
        )
        plots[f"filter_{key}"] = data_uri(png)
    levels = summary["diversity"].get("levels")
    plots["diversity"] = data_uri(similarity_density_png(levels)) if levels else None
    return plots


def write_report(storage: Storage, reports_uri: str, summary: dict[str, Any], html: str) -> str:
    """Write summary.json, then index.html (the entry point last); returns the page's URI."""
    storage.write_json(join(reports_uri, SUMMARY_FILE), summary)
    uri = join(reports_uri, INDEX_FILE)
    storage.write_text(uri, html, "text/html")
    return uri


def run(ctx: JobContext, embed: Embedder | None = None) -> StageStats:
    """Gather the snapshot's numbers and write the report.

    ``embed`` defaults to the bundled MiniLM (``filter.embed_model_path`` when set), loaded
    only if the questions table has pairs to compare.
    """
    storage = Storage(ctx.cfg.storage)
    layout = ctx.layout
    stats = read_stage_stats(storage, layout)
    embed = embed or minilm_embedder(
        ctx.cfg.filter.embed_model_path, ctx.cfg.filter.embed_batch_size
    )
    tables = table_figures(read_tables(storage, layout), embed)
    links = {"data_docs": "data_docs/index.html", "dataset": layout.dataset}
    validations = read_validations(storage, layout)
    summary = build_summary(ctx.snapshot, ctx.run_id, stats, validations, links, tables)
    plots = make_plots(summary, dict(tables.lengths))
    uri = write_report(storage, layout.reports, summary, render_html(summary, plots))
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
