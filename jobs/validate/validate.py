"""Validate one committed table with its Great Expectations suite.

``python -m jobs.validate.validate --snapshot S --table documents|questions|qa``

Reads ``{run}/{table}/`` in chunks of ``validation.chunk_rows`` rows (and its
``_stats.json`` for the parse-failure rate), runs the suite from
``expectations/{table}.json`` through GX Checkpoints on each chunk, with row count and
uniqueness counted over the whole table (see :mod:`jobs.validate.chunked` for how and why),
uploads the Data Docs site
to ``{reports}/data_docs/{table}/`` and commits the verdict to ``{run}/validation/{table}/``.
A failed critical expectation raises after the verdict is written, so the DAG stops and
publish refuses; non-critical failures are logged as warnings.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import STATS, StageOutput, StageStats, require_committed
from jobs.storage import Storage, join
from jobs.tables import iter_table_batches
from jobs.validate.chunked import validate_chunks
from jobs.validate.data_docs import landing_page, upload_site
from jobs.validate.results import RESULT_FILE, ValidationFailedError, failure_message
from jobs.validate.suites import TABLES, SuiteSpec, load_suite, suite_parameters, suite_path

log = logging.getLogger(__name__)


def validation_uri(ctx_or_run: JobContext | str, table: str) -> str:
    """Where the verdict of ``table`` is committed: ``{run}/validation/{table}``."""
    run = ctx_or_run if isinstance(ctx_or_run, str) else ctx_or_run.layout.run
    return join(run, "validation", table)


def _read_stats(storage: Storage, uri: str) -> dict | None:
    require_committed(storage, uri)
    stats_uri = join(uri, STATS)
    return storage.read_json(stats_uri) if storage.exists(stats_uri) else None


def _chunks(storage: Storage, uri: str, chunk_rows: int) -> Iterator[Any]:
    """The table as pandas frames of at most ``chunk_rows`` rows."""
    for batch in iter_table_batches(storage, uri, chunk_rows):
        yield batch.to_pandas()


def run_suite(
    spec: SuiteSpec,
    table: Any | Iterable[Any],
    stats: dict | None,
    parameters: dict[str, Any],
    site_dir: Path,
    run_name: str,
) -> dict[str, Any]:
    """Run ``spec`` on a pandas frame, or on an iterable of frames (chunks of one table).

    Returns the verdict (see :func:`jobs.validate.results.verdict`); Data Docs are built
    under ``site_dir``.
    """
    import pandas as pd

    chunks = [table] if isinstance(table, pd.DataFrame) else table
    return validate_chunks(spec, chunks, stats, parameters, site_dir, run_name)


def run(ctx: JobContext) -> StageStats:
    """Validate ``--table`` of the snapshot; raise :class:`ValidationFailedError` on failure."""
    table = ctx.args.table
    storage = Storage(ctx.cfg.storage)
    table_uri = ctx.layout.table(table)
    spec = load_suite(suite_path(ctx.cfg, table))
    stats = _read_stats(storage, table_uri)
    chunk_rows = ctx.cfg.validation.chunk_rows
    log.info("validating %s in chunks of %d rows, suite %s", table_uri, chunk_rows, spec.path)
    docs_root = join(ctx.layout.reports, "data_docs")
    with tempfile.TemporaryDirectory(prefix="gx-site-") as tmp:
        site = Path(tmp) / "site"
        chunks = _chunks(storage, table_uri, chunk_rows)
        result = run_suite(spec, chunks, stats, suite_parameters(ctx.cfg), site, ctx.run_id)
        upload_site(storage, site, join(docs_root, table))
    result.update(
        snapshot=ctx.snapshot,
        run_id=ctx.run_id,
        suite_file=Path(spec.path).name,
        input_uri=table_uri,
        data_docs_uri=join(docs_root, table, "index.html"),
    )
    out = StageOutput(storage, validation_uri(ctx, table), ctx.attempt)
    tmp_uri = out.begin()
    storage.write_json(join(tmp_uri, RESULT_FILE), result)
    num_rows = result["metrics"]["row_count"]
    stats_out = StageStats(
        rows_in=num_rows,
        rows_out=num_rows,
        extra={"success": result["success"], **result["statistics"]},
    )
    out.commit(ctx.manifest("validate", [table_uri], table=table, suite=spec.path), stats_out)
    landing_page(storage, docs_root, join(ctx.layout.run, "validation"), ctx.snapshot)
    for warning in result["warnings"]:
        log.warning("non-critical expectation failed: %s", warning)
    if not result["success"]:
        raise ValidationFailedError(failure_message(result))
    log.info(
        "%s passed %d/%d expectations",
        table,
        result["statistics"]["successful"],
        result["statistics"]["evaluated"],
    )
    return stats_out


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser("Validate a committed table with its Great Expectations suite.")
    parser.add_argument("--table", required=True, choices=TABLES, help="table to validate")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_job("validate", argv, run, build_parser())


if __name__ == "__main__":
    raise SystemExit(main())
