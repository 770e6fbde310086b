"""Filter job: documents_raw → candidates (+ quarantine/filter), paper section 1.1.

Three stages: quality heuristics (``heuristics.py``, prompt injection included: its quarantine
row names the phrase in ``injection_phrase``) and duplicate removal (``dedup.py``:
exact copies of the normalised text, then near-duplicates with MinHash LSH) quarantine what
they remove, with the reason; the cold-start domain classifier (``classifier.py``) scores
every remaining document. ``candidates`` holds those documents with their scores, the
cold-start verdict in ``filter_reason`` (``kept``: in D^0, or ``off_domain``) and the MiniLM
``embedding``; the fine-grained rounds (``refine.py``, a GPU job) turn it into
``documents``. Removed rows keep their scores inside the quarantine ``raw`` JSON (duplicates
also name the kept document in ``duplicate_of``). The positives are the seed file
``filter.positives_uri``, or the LLM-written documents of ``positives.py`` when
``filter.positive_topics`` is set.
``_stats.json`` adds the classifier's training counts and held-out accuracy, keep rates per
``meta['domain_hint']`` where the corpus has one, and the seconds spent per stage.

    python -m jobs.filter.filter --snapshot 2026-11-25 [--set filter.num_trees=20]
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from jobs.cli import JobContext, run_job
from jobs.commit import StageOutput, StageStats, require_committed
from jobs.filter.heuristics import score_text
from jobs.storage import Storage, to_spark_uri
from jobs.tables import MAX_RAW_CHARS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

STAGE = "filter"
OUTPUT = "candidates"
# filter_reason values of the rows that reach candidates: the cold-start verdict.
CANDIDATE_REASONS = ("kept", "off_domain")
DOC_COLUMNS = ("doc_id", "text", "url", "source", "snapshot", "meta", "num_chars")
SCORE_COLUMNS = ("alpha_ratio", "symbol_ratio", "dup_line_fraction", "domain_score")
# JSON escaping can double a text's length; this leaves room for the other fields.
MAX_RAW_TEXT_CHARS = 4_000


def number_rows(raw: DataFrame) -> DataFrame:
    """``raw`` with ``_row``: each document's rank in doc_id order (0, 1, ...).

    The number depends only on the doc_ids, never on file layout or on the order a shuffle
    delivers rows, so the classifier's sample and training order, and hence every score, are
    the same on every run over the same documents. doc_id is unique in documents_raw (ingest
    quarantines repeats); a repeat would duplicate rows and fail the job's row-count check.
    """
    ranks = (
        raw.select("doc_id")
        .rdd.map(lambda r: r[0])
        .sortBy(lambda doc_id: doc_id)
        .zipWithIndex()  # a global rank: the sort is total, so partition bounds don't matter
        .toDF("doc_id string, _row long")
    )
    return raw.join(ranks, "doc_id")


def apply_heuristics(raw: DataFrame, cfg: Any) -> DataFrame:
    """Add the heuristic score columns and ``heuristic_reason`` (null = passed)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    thresholds = SimpleNamespace(**cfg.model_dump())  # plain object: cheap to ship to workers
    schema = T.StructType(
        [
            T.StructField("num_chars", T.IntegerType()),
            T.StructField("alpha_ratio", T.DoubleType()),
            T.StructField("symbol_ratio", T.DoubleType()),
            T.StructField("dup_line_fraction", T.DoubleType()),
            T.StructField("injection_phrase", T.StringType()),
            T.StructField("reason", T.StringType()),
        ]
    )
    scores = F.udf(lambda text: score_text(text, thresholds), schema)
    return (
        raw.withColumn("_h", scores("text"))
        .withColumn("alpha_ratio", F.col("_h.alpha_ratio"))
        .withColumn("symbol_ratio", F.col("_h.symbol_ratio"))
        .withColumn("dup_line_fraction", F.col("_h.dup_line_fraction"))
        .withColumn("injection_phrase", F.col("_h.injection_phrase"))
        .withColumn("heuristic_reason", F.col("_h.reason"))
        .drop("_h")
    )


def decide(scored: DataFrame, dups: DataFrame, scores: DataFrame | None, cfg: Any) -> DataFrame:
    """One row per input document with its final ``filter_reason`` ("kept" or a removal)."""
    from pyspark.sql import functions as F

    out = scored.join(dups, "_row", "left")
    if scores is None:
        out = out.withColumn("domain_score", F.lit(None).cast("double"))
        out = out.withColumn("features", F.lit(None).cast("array<float>"))
    else:
        out = out.join(scores, "_row", "left")
    reason = F.coalesce(
        F.col("heuristic_reason"),
        F.when(F.col("dup_kind") == "exact", F.lit("exact_duplicate")),
        F.when(F.col("dup_kind") == "near", F.lit("near_duplicate")),
        F.when(F.col("domain_score") < cfg.domain_threshold, F.lit("off_domain")),
        F.lit("kept"),
    )
    return out.withColumn("filter_reason", reason)


def quarantine_rows(decided: DataFrame) -> DataFrame:
    """Removed rows in the shared quarantine schema; scores travel inside ``raw``."""
    from pyspark.sql import functions as F

    # Scores first and the text cut short, so a long document still gives valid JSON; the
    # final cut to MAX_RAW_CHARS only bites on pathological rows (a huge meta map).
    fields = [c for c in DOC_COLUMNS if c != "text"]
    payload = [*fields, *SCORE_COLUMNS, "duplicate_of", "dup_similarity", "injection_phrase"]
    text = F.substring("text", 1, MAX_RAW_TEXT_CHARS).alias("text")
    truncated = (F.length("text") > MAX_RAW_TEXT_CHARS).alias("text_truncated")
    raw = F.substring(F.to_json(F.struct(*payload, truncated, text)), 1, MAX_RAW_CHARS)
    return decided.where(~F.col("filter_reason").isin(*CANDIDATE_REASONS)).select(
        F.lit(STAGE).alias("stage"),
        F.col("filter_reason").alias("reason"),
        F.col("doc_id").cast("string"),
        F.col("source").cast("string").alias("source_file"),
        raw.alias("raw"),
        F.col("snapshot").cast("string"),
    )


def keep_rate_by_hint(decided: DataFrame) -> dict[str, Any]:
    """Keep rates per ``meta['domain_hint']`` (the sample corpus labels math vs not)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if not isinstance(decided.schema["meta"].dataType, T.MapType):
        return {}
    rows = (
        decided.select(
            F.col("meta").getItem("domain_hint").alias("hint"), "filter_reason", "domain_score"
        )
        .where(F.col("hint").isNotNull())
        .groupBy("hint")
        .agg(
            F.count("*").alias("docs"),
            F.sum((F.col("filter_reason") == "kept").cast("int")).alias("kept"),
            F.count("domain_score").alias("classified"),
            F.sum((F.col("filter_reason") == "off_domain").cast("int")).alias("off_domain"),
        )
        .collect()
    )
    return {
        r["hint"]: {
            "docs": r["docs"],
            "kept": r["kept"],
            "keep_rate": round(r["kept"] / r["docs"], 4),
            "classified": r["classified"],
            "off_domain": r["off_domain"],
            "classifier_keep_rate": (
                round(1 - r["off_domain"] / r["classified"], 4) if r["classified"] else None
            ),
        }
        for r in sorted(rows, key=lambda r: r["hint"])
    }


def write_outputs(
    ctx: JobContext, outputs: tuple[StageOutput, StageOutput], decided: DataFrame, stats: StageStats
) -> None:
    """Commit quarantine/filter first, then candidates (readers follow its _SUCCESS)."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    quarantine, candidates = outputs
    inputs = [ctx.layout.table("documents_raw")]
    quarantine_rows(decided).write.parquet(to_spark_uri(quarantine.begin()))
    quarantine.commit(ctx.manifest("filter.quarantine", inputs), None)

    kept = decided.where(F.col("filter_reason").isin(*CANDIDATE_REASONS))
    vector = not isinstance(decided.schema["features"].dataType, T.ArrayType)
    emb = vector_to_array("features", "float32") if vector else F.col("features")
    kept.select(
        *DOC_COLUMNS, *SCORE_COLUMNS, "filter_reason", emb.alias("embedding")
    ).write.parquet(to_spark_uri(candidates.begin()))
    candidates.commit(ctx.manifest("filter", inputs), stats)


def filter_documents(
    raw: DataFrame, positives: list[str], cfg: Any
) -> tuple[DataFrame, dict[str, Any]]:
    """Run the three stages over ``raw`` (documents_raw rows plus a unique ``_row``).

    Returns every row with its ``filter_reason`` (checkpointed) and statistics for
    ``_stats.json``: classifier training counts and seconds spent per stage.
    """
    from pyspark.sql import functions as F

    from jobs.filter.classifier import domain_scores
    from jobs.filter.dedup import duplicates

    clock = time.monotonic()
    seconds: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        seconds[name] = round(now - clock, 2)
        clock = now

    scored = apply_heuristics(raw, cfg).checkpoint(eager=True)
    passed = scored.where(F.col("heuristic_reason").isNull())
    lap("heuristics")
    dups = duplicates(passed, cfg).checkpoint(eager=True)
    unique = passed.join(dups.select("_row"), "_row", "left_anti")
    num_unique = unique.count()
    lap("duplicates")
    kinds = dict(dups.groupBy("dup_kind").count().collect())
    log.info(
        "filter: %d pass heuristics; %d exact and %d near duplicates removed, %d unique left",
        passed.count(), kinds.get("exact", 0), kinds.get("near", 0), num_unique,
    )  # fmt: skip

    clf_stats: dict[str, Any] = {}
    scores = None
    if num_unique:
        keyed = unique.select(F.col("_row").alias("key"), "text")
        pool = scored.select(F.col("_row").alias("key"), "text")
        key_scores, clf_stats = domain_scores(keyed, pool, positives, cfg)
        scores = key_scores.withColumnRenamed("key", "_row")
    decided = decide(scored, dups, scores, cfg).checkpoint(eager=True)
    lap("classifier")
    return decided, {"classifier": clf_stats, "seconds": seconds}


def run(ctx: JobContext) -> StageStats:
    """Filter one snapshot's documents_raw into documents."""

    from jobs.filter.positives import positives_for
    from jobs.spark import build_session, job_checkpoints

    cfg = ctx.cfg.filter
    storage = Storage(ctx.cfg.storage)
    source = ctx.layout.table("documents_raw")
    require_committed(storage, source)
    positives = positives_for(storage, ctx.layout, cfg)  # fail before starting Spark
    # Created now so that the wall time in _stats.json covers the whole job.
    outputs = (
        StageOutput(storage, ctx.layout.quarantine(STAGE), ctx.attempt),
        StageOutput(storage, ctx.layout.table(OUTPUT), ctx.attempt),
    )
    spark = build_session(ctx.cfg, "synthllm-filter")
    # Reliable checkpoints: a local one is lost with its executor, and so is the job.
    with job_checkpoints(spark, ctx.cfg, f"{STAGE}-{ctx.snapshot}-{ctx.attempt}"):
        return _filter_and_commit(ctx, spark, source, positives, outputs)


def _filter_and_commit(
    ctx: JobContext,
    spark: SparkSession,
    source: str,
    positives: list[str],
    outputs: tuple[StageOutput, StageOutput],
) -> StageStats:
    """The body of :func:`run` inside its checkpoint folder: filter, count, commit."""
    cfg = ctx.cfg.filter
    # Ingest may write a single file; spread the Python UDF work over every core.
    raw = number_rows(spark.read.parquet(to_spark_uri(source))).repartition(
        max(1, spark.sparkContext.defaultParallelism)
    )
    decided, extra = filter_documents(raw, positives, cfg)
    by_reason = decided.groupBy("filter_reason").count().collect()
    counts = {r["filter_reason"]: r["count"] for r in by_reason}
    cold_start = {r: counts.pop(r, 0) for r in CANDIDATE_REASONS}
    rows_out = sum(cold_start.values())
    extra["cold_start"] = cold_start
    extra["keep_rate_by_domain_hint"] = keep_rate_by_hint(decided)
    stats = StageStats(rows_out + sum(counts.values()), rows_out, counts, extra=extra)
    stats.check_balance()
    raw_rows = spark.read.parquet(to_spark_uri(source)).count()
    if raw_rows != stats.rows_in:  # the input changed under us, or rows were lost
        raise RuntimeError(f"{source}: {raw_rows} rows, but {stats.rows_in} were filtered")
    write_outputs(ctx, outputs, decided, stats)
    log.info(
        "filter: %d of %d candidates (cold start: %s); removed %s",
        rows_out, stats.rows_in, cold_start, counts,
    )  # fmt: skip
    return stats


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m jobs.filter.filter --snapshot S``."""
    return run_job("filter", argv, run)


if __name__ == "__main__":
    raise SystemExit(main())
