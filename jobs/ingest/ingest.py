"""Ingest: corpus snapshot → ``documents_raw`` + ``quarantine/ingest`` (Spark).

    python -m jobs.ingest.ingest --snapshot S --run-id R --attempt N

Reads every ``*.jsonl``, ``*.jsonl.gz`` and ``*.parquet`` under ``{root}/corpus/{snapshot}/``,
normalises rows to the ``documents_raw`` contract with a stable ``doc_id``, and quarantines
every row it cannot use with a reason: no row fails the job, whatever it holds (``rules``; a
line over ``ingest.max_line_bytes`` is quarantined unparsed). A snapshot that cannot be read as
a whole (no files, a JSON file in which no row has the text field) stops the job with an error
naming the file. A corrupt file (bad gzip stream, not Parquet) or a Parquet file without the
text column follows ``ingest.on_corrupt_file``: ``fail`` stops the job naming it (and, for a
missing column, the columns found); ``quarantine`` writes one ``unreadable_file`` or
``missing_text_column`` quarantine row for it (``raw`` = the error), ingests the other files and
lists it in the stats' ``corrupt_files`` or ``wrong_schema_files``. With
``corpus.require_marker`` the job first waits for the snapshot's completion marker
(``jobs.corpus.marker``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import StageOutput, StageStats
from jobs.config import IngestConfig
from jobs.corpus.marker import wait_for_marker
from jobs.ingest import reader
from jobs.ingest.rules import (
    BLANK,
    DUPLICATE_ID,
    MISSING_TEXT_COLUMN,
    RAW_MAX_CHARS,
    STAGE,
    CorruptFileError,
    Fields,
    IngestInputError,
)
from jobs.storage import Storage, to_spark_uri

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

DOC_COLUMNS = ("doc_id", "text", "url", "source", "snapshot", "meta", "num_chars")
QUARANTINE_COLUMNS = ("stage", "reason", "doc_id", "source_file", "raw", "snapshot")
_ORDER = ("source_file", "block_start", "row_in_block")
_UNREADABLE_SCHEMA = (
    "stage string, reason string, doc_id string, source_file string, raw string, "
    "snapshot string, block_start long, row_in_block long"
)


@dataclass
class Tally:
    """What the one counting pass over the parsed rows found."""

    stats: StageStats
    doc_chars: int
    quarantine_chars: int


def mark_duplicates(parsed: DataFrame) -> DataFrame:
    """Keep the first row per ``doc_id`` in input order; later ones get ``duplicate_id``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    first = Window.partitionBy("doc_id").orderBy(*_ORDER)
    ok = parsed.filter(F.col("reason").isNull())
    ranked = ok.withColumn("reason", F.when(F.row_number().over(first) > 1, F.lit(DUPLICATE_ID)))
    return ranked.unionByName(parsed.filter(F.col("reason").isNotNull()))


def tally(rows: DataFrame) -> Tally:
    """Count rows per file and reason; stop on a JSON file in which no row has the text key."""
    from pyspark.sql import functions as F

    per_file = (
        rows.groupBy("source_file", "reason")
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(F.col("is_object").cast("long")).alias("objects"),
            F.sum(F.col("has_text").cast("long")).alias("with_text"),
            F.sum(F.coalesce("num_chars", F.lit(0))).alias("chars"),
            F.sum(F.length("raw")).alias("raw_chars"),
        )
        .collect()
    )
    stats = StageStats()
    objects: dict[str, int] = {}
    with_text: dict[str, int] = {}
    blank, doc_chars, q_chars = 0, 0, 0
    for r in per_file:
        if r.reason == BLANK:
            blank += r.n
            continue
        stats.rows_in += r.n
        if r.reason is None:
            stats.rows_out += r.n
            doc_chars += r.chars or 0
        else:
            stats.quarantined[r.reason] = stats.quarantined.get(r.reason, 0) + r.n
            q_chars += r.raw_chars or 0
        objects[r.source_file] = objects.get(r.source_file, 0) + (r.objects or 0)
        with_text[r.source_file] = with_text.get(r.source_file, 0) + (r.with_text or 0)
    for source_file in sorted(objects):
        if objects[source_file] and not with_text[source_file]:
            raise IngestInputError(
                f"wrong schema: no row of {source_file} has the text field "
                f"({objects[source_file]} JSON objects read)"
            )
    stats.extra = {"blank_lines": blank, "files": len({r.source_file for r in per_file})}
    return Tally(stats, doc_chars, q_chars)


def num_files(chars: int, file_mb: int) -> int:
    """Output files for ``chars`` characters of text: one per ``file_mb`` MiB, at least one."""
    return max(1, math.ceil(chars / (file_mb * 1024 * 1024)))


def _write(df: DataFrame, out: StageOutput, files: int, columns: tuple[str, ...]) -> None:
    """Write ``columns`` of ``df`` in input order into ``files`` Parquet files under _tmp."""
    tmp = out.begin()
    ordered = df.coalesce(files).sortWithinPartitions(*_ORDER)
    ordered.select(*columns).write.parquet(to_spark_uri(tmp))


def read_parsed(spark: SparkSession, files: list[str], cfg: IngestConfig) -> DataFrame:
    """All input rows of ``files`` parsed by the rules, duplicates marked (lazy)."""
    json_files = [f for f in files if not f.endswith(".parquet")]
    parquet_files = [f for f in files if f.endswith(".parquet")]
    log.info("ingest: %d JSON-lines and %d parquet files", len(json_files), len(parquet_files))
    limit = cfg.max_line_bytes
    frames = [reader.read_json_lines(spark, json_files, limit)] if json_files else []
    if parquet_files:
        frames.append(reader.read_parquet_rows(spark, parquet_files, cfg.text_field, limit))
    lines = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
    fields = Fields(cfg.text_field, cfg.id_field, cfg.max_text_chars, limit)
    return mark_duplicates(reader.parse_rows(lines, fields))


def _count(rows: DataFrame) -> Tally:
    """``tally`` with Spark's reader failures (bad gzip, bad Parquet page) named by file."""
    try:
        return tally(rows)
    except IngestInputError:
        raise
    except Exception as exc:
        corrupt = reader.explain_read_failure(exc)
        if corrupt is None:
            raise
        raise corrupt from exc


def read_counted(
    spark: SparkSession, files: list[str], cfg: IngestConfig
) -> tuple[DataFrame, Tally, dict[str, CorruptFileError]]:
    """Parse and count ``files``; under the quarantine policy, set corrupt files aside.

    Returns the persisted parsed rows, their tally and ``{uri: error}`` of the files set aside.
    Spark finds a corrupt file only while reading it, so each one found costs another pass over
    the remaining files: corrupt files are rare, and the counts of the others stay exact.
    """
    from pyspark import StorageLevel

    unreadable: dict[str, CorruptFileError] = {}
    while True:
        live = [f for f in files if f not in unreadable]
        if not live:
            raise IngestInputError(f"no readable input file: all {len(files)} are corrupt")
        rows = None
        try:
            # Persisted: the Python parser and the duplicate window run once for count and write.
            rows = read_parsed(spark, live, cfg).persist(StorageLevel.MEMORY_AND_DISK)
            return rows, _count(rows), unreadable
        except CorruptFileError as exc:
            if rows is not None:
                rows.unpersist()
            if cfg.on_corrupt_file == "fail" or exc.uri not in live:
                raise
            log.warning("ingest: quarantining file %s (%s): %s", exc.uri, exc.reason, exc.error)
            unreadable[exc.uri] = exc


def add_unreadable(counted: Tally, unreadable: dict[str, CorruptFileError]) -> None:
    """Count each file set aside as one input row quarantined with the file's reason."""
    stats = counted.stats
    for exc in unreadable.values():
        stats.rows_in += 1
        stats.quarantined[exc.reason] = stats.quarantined.get(exc.reason, 0) + 1
        counted.quarantine_chars += len(exc.error)
    listed = sorted(unreadable.items())
    stats.extra["corrupt_files"] = [
        {"file": u, "error": e.error} for u, e in listed if e.reason != MISSING_TEXT_COLUMN
    ]
    stats.extra["wrong_schema_files"] = [
        {"file": u, "error": e.error} for u, e in listed if e.reason == MISSING_TEXT_COLUMN
    ]
    stats.check_balance()
    log.info(
        "ingest: rows_in=%d rows_out=%d quarantined=%s blank_lines=%d corrupt_files=%d",
        stats.rows_in,
        stats.rows_out,
        stats.quarantined,
        stats.extra["blank_lines"],
        len(unreadable),
    )


def unreadable_rows(
    spark: SparkSession, unreadable: dict[str, CorruptFileError], snapshot: str
) -> DataFrame:
    """One quarantine row per file set aside, sorted with the others by ``source_file``."""
    rows: list[tuple[Any, ...]] = [
        (STAGE, exc.reason, None, uri, exc.error[:RAW_MAX_CHARS], snapshot, 0, 0)
        for uri, exc in sorted(unreadable.items())
    ]
    return spark.createDataFrame(rows, _UNREADABLE_SCHEMA)


def run(ctx: JobContext) -> StageStats:
    """Wait for the snapshot, normalise and quarantine its rows, commit both outputs."""
    from jobs.spark import build_session

    storage = Storage(ctx.cfg.storage)
    marker = wait_for_marker(storage, ctx.layout.corpus, ctx.cfg.corpus)
    files = reader.list_inputs(storage, ctx.layout.corpus)
    spark = build_session(ctx.cfg, "synthllm-ingest")
    q_out = StageOutput(storage, ctx.layout.quarantine(STAGE), ctx.attempt)
    d_out = StageOutput(storage, ctx.layout.table("documents_raw"), ctx.attempt)
    with reader.ingest_sql_conf(spark):
        stats = _ingest(ctx, spark, files, q_out, d_out)
    manifest = ctx.manifest(
        "ingest", files, table="documents_raw", columns=list(DOC_COLUMNS), corpus_marker=marker
    )
    q_stats = StageStats(
        rows_in=stats.rows_quarantined,
        rows_out=stats.rows_quarantined,
        extra={"stage": STAGE, "by_reason": dict(sorted(stats.quarantined.items()))},
    )
    # Quarantine first: once documents_raw is committed, its rejects are already readable.
    q_manifest = {**manifest, "table": "quarantine/ingest", "columns": list(QUARANTINE_COLUMNS)}
    q_out.commit(q_manifest, q_stats)
    d_out.commit(manifest, stats)
    return stats


def _ingest(
    ctx: JobContext, spark: SparkSession, files: list[str], q_out: StageOutput, d_out: StageOutput
) -> StageStats:
    """Parse and count ``files``, write both outputs under their ``_tmp``; returns the stats."""
    from pyspark.sql import functions as F

    cfg = ctx.cfg.ingest
    rows, counted, unreadable = read_counted(spark, files, cfg)
    try:
        add_unreadable(counted, unreadable)
        snap = F.lit(ctx.snapshot)
        quarantine = rows.filter(F.col("reason").isNotNull() & (F.col("reason") != BLANK))
        quarantine = quarantine.withColumn("stage", F.lit(STAGE)).withColumn("snapshot", snap)
        if unreadable:
            quarantine = quarantine.select(*QUARANTINE_COLUMNS, *_ORDER[1:]).unionByName(
                unreadable_rows(spark, unreadable, ctx.snapshot)
            )
        docs = rows.filter(F.col("reason").isNull()).withColumn("snapshot", snap)
        q_files = num_files(counted.quarantine_chars, cfg.output_file_mb)
        _write(quarantine, q_out, q_files, QUARANTINE_COLUMNS)
        _write(docs, d_out, num_files(counted.doc_chars, cfg.output_file_mb), DOC_COLUMNS)
    finally:
        rows.unpersist()
    return counted.stats


def _parser():
    return base_parser("ingest: corpus snapshot -> documents_raw + quarantine/ingest")


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (``python -m jobs.ingest.ingest``)."""
    return run_job("ingest", argv, run, _parser())


if __name__ == "__main__":
    raise SystemExit(main())
