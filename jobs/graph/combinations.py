"""Job: the concept combinations of all three levels (``sample_combinations``, Spark).

``python -m jobs.graph.combinations --snapshot S`` commits ``combinations`` with one row per
combination ``(combo_id, level, topic_ids, concept_ids, topics, concepts, ref_doc_ids,
ref_jaccard, walk_end_reason, snapshot)``:

- Level-1 ``l1-{doc_id}``: the ``generation.max_documents`` best documents (the refine job's
  ``fine_score`` descending where documents have one, then ``domain_score``, then doc_id:
  :data:`jobs.questions.prepare.RANK_COLUMNS`), no concepts;
- Level-2 ``l2-{doc_id}``: every document with extracted concepts, its own topics and key
  concepts (:func:`level2`: a topic without concepts counts, a null concept does not);
- Level-3 ``l3-{walk_id}``: the weighted random walks of :mod:`jobs.graph.walks` over the
  committed graph, each grounded in its top ``combinations.num_ref_docs`` documents by Jaccard
  similarity (:mod:`jobs.graph.grounding`).

Walks that cannot make a Level-3 prompt land in ``quarantine/combinations``:
``too_few_concepts`` (fewer than ``combinations.min_walk_concepts`` key concepts),
``duplicate_concept_set`` (the same topics and concepts as a walk with a smaller id) and
``no_reference_document``. Rows balance: documents + walks in = combinations + quarantined.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import StageOutput, StageStats, require_committed
from jobs.storage import Storage, join, to_spark_uri
from jobs.tables import MAX_RAW_CHARS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

STAGE = "combinations"
COLUMNS = (
    "combo_id", "level", "topic_ids", "concept_ids", "topics", "concepts",
    "ref_doc_ids", "ref_jaccard", "walk_end_reason", "snapshot",
)  # fmt: skip


def walk_params(ctx: JobContext):
    """The typed config as the walk module's parameters (eps shared with the graph)."""
    from jobs.graph.walks import WalkParams

    c = ctx.cfg.combinations
    return WalkParams(
        seed=c.seed,
        num_epochs=c.num_epochs,
        topic_steps=(c.min_topic_steps, c.max_topic_steps),
        concept_steps=(c.min_concept_steps, c.max_concept_steps),
        eps=ctx.cfg.graph.eps,
        concept_start=c.concept_start,
    )


def _names(ids: DataFrame, key: str, column: str, names: DataFrame) -> DataFrame:
    """``(key, column_names)``: each id array of ``ids`` mapped to display names, in order."""
    from pyspark.sql import functions as F

    exploded = ids.select(key, F.posexplode(column).alias("pos", "id"))
    named = exploded.join(names, "id", "left").select(
        key, "pos", F.coalesce("name", "id").alias("name")
    )
    return named.groupBy(key).agg(
        F.transform(
            F.array_sort(F.collect_list(F.struct("pos", "name"))), lambda s: s["name"]
        ).alias(column.replace("_ids", "s"))
    )


def level1(documents: DataFrame, max_documents: int) -> DataFrame:
    """One combination per selected document, in ``select_documents``' order."""
    from pyspark.sql import functions as F

    from jobs.questions.prepare import RANK_COLUMNS

    rank = [
        (F.col(c) if c in documents.columns else F.lit(None).cast("double")).desc_nulls_last()
        for c in RANK_COLUMNS
    ]
    best = documents.orderBy(*rank, "doc_id").limit(max_documents)
    empty = F.array().cast("array<string>")
    return best.select(
        F.concat(F.lit("l1-"), "doc_id").alias("combo_id"),
        F.lit(1).alias("level"),
        empty.alias("topic_ids"),
        empty.alias("concept_ids"),
        empty.alias("topics"),
        empty.alias("concepts"),
        F.array("doc_id").alias("ref_doc_ids"),
        F.array().cast("array<double>").alias("ref_jaccard"),
        F.lit(None).cast("string").alias("walk_end_reason"),
    )


def level2(doc_concepts: DataFrame) -> DataFrame:
    """One combination per document of ``doc_concepts``: its own topics and key concepts.

    A topic without key concepts has one row with null concept columns
    (:mod:`jobs.concepts.collect`). It still counts among the document's topics, as in the
    P-L2 prompt (:func:`jobs.questions.prompts.build_l2_messages` lists it), but its null
    concept is no concept: no id or name array holds a null. A document whose topics all lack
    concepts keeps its combination, with topics and no concepts. Ids are sorted and distinct;
    an id listed under two display names (``Roots``, ``roots``) gets the smallest one, like
    its graph vertex.
    """
    from pyspark.sql import functions as F

    def sorted_pairs(id_col: str, name_col: str):
        # collect_set skips null values but keeps a struct of nulls, so a null id gives null.
        pair = F.when(
            F.col(id_col).isNotNull(),
            F.struct(
                F.col(id_col).alias("i"), F.coalesce(name_col, id_col).cast("string").alias("n")
            ),
        )
        return F.array_sort(F.collect_set(pair))  # by id, then name

    def first_per_id(pairs: str):
        # Sorted, so an id's first pair carries its smallest name; get() is null before 0.
        def keep(x, k):
            return F.coalesce(x["i"] != F.get(pairs, k - 1)["i"], F.lit(True))

        return F.filter(pairs, keep)

    per_doc = doc_concepts.groupBy("doc_id").agg(
        sorted_pairs("topic_id", "topic").alias("t"),
        sorted_pairs("concept_id", "concept").alias("c"),
    )
    per_doc = per_doc.select("doc_id", first_per_id("t").alias("t"), first_per_id("c").alias("c"))
    return per_doc.select(
        F.concat(F.lit("l2-"), "doc_id").alias("combo_id"),
        F.lit(2).alias("level"),
        F.transform("t", lambda s: s["i"]).alias("topic_ids"),
        F.transform("c", lambda s: s["i"]).alias("concept_ids"),
        F.transform("t", lambda s: s["n"]).alias("topics"),
        F.transform("c", lambda s: s["n"]).alias("concepts"),
        F.array("doc_id").alias("ref_doc_ids"),
        F.array().cast("array<double>").alias("ref_jaccard"),
        F.lit(None).cast("string").alias("walk_end_reason"),
    )


def doc_nodes(doc_concepts: DataFrame, concept_set: str) -> DataFrame:
    """``(doc_id, node)``: each document's concept set for the Jaccard retrieval."""
    concepts = doc_concepts.where("concept_id IS NOT NULL").selectExpr(
        "doc_id", "concept_id AS node"
    )
    if concept_set == "concepts":
        return concepts.distinct()
    topics = doc_concepts.selectExpr("doc_id", "topic_id AS node")
    return topics.unionByName(concepts).distinct()


def level3(walks: DataFrame, doc_concepts: DataFrame, vertices: DataFrame, cfg: Any) -> DataFrame:
    """Walks with names, reference documents and the reason a walk cannot be used (or null)."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    from jobs.graph.grounding import reference_docs

    c = cfg.combinations
    nodes = F.col("concepts") if c.doc_concept_set == "concepts" else F.concat("topics", "concepts")
    refs = reference_docs(
        walks.select("walk_id", nodes.alias("nodes")),
        doc_nodes(doc_concepts, c.doc_concept_set),
        c.num_ref_docs,
    )
    names = vertices.select("id", "name")
    ids = walks.select(
        "walk_id", F.col("topics").alias("topic_ids"), F.col("concepts").alias("concept_ids")
    )
    named = (
        ids.join(_names(ids, "walk_id", "topic_ids", names), "walk_id", "left")
        .join(_names(ids, "walk_id", "concept_ids", names), "walk_id", "left")
        .join(refs, "walk_id", "left")
        .join(walks.select("walk_id", "epoch", "start_topic", "end_reason"), "walk_id")
    )
    concept_set = F.array_sort(F.array_distinct(F.concat("topic_ids", "concept_ids")))
    first = Window.partitionBy(concept_set).orderBy("walk_id")
    reason = (
        F.when(F.size("concept_ids") < c.min_walk_concepts, "too_few_concepts")
        .when(F.row_number().over(first) > 1, "duplicate_concept_set")
        .when(F.coalesce(F.size("ref_doc_ids"), F.lit(0)) < 1, "no_reference_document")
    )
    empty = F.array().cast("array<string>")
    return named.select(
        F.concat(F.lit("l3-"), "walk_id").alias("combo_id"),
        F.lit(3).alias("level"),
        "topic_ids",
        "concept_ids",
        F.coalesce("topics", empty).alias("topics"),
        F.coalesce("concepts", empty).alias("concepts"),
        F.coalesce("ref_doc_ids", empty).alias("ref_doc_ids"),
        F.coalesce("ref_jaccard", F.array().cast("array<double>")).alias("ref_jaccard"),
        F.col("end_reason").alias("walk_end_reason"),
        "walk_id",
        "epoch",
        "start_topic",
        reason.alias("_reason"),
    )


def walk_stats(l3: DataFrame) -> dict[str, Any]:
    """Counts of the walks as drawn, before any was set aside."""
    from pyspark.sql import functions as F

    row = l3.agg(
        F.count("*").alias("n"),
        F.countDistinct(
            F.array_join(F.array_sort(F.concat("topic_ids", "concept_ids")), "|")
        ).alias("distinct"),
        F.avg(F.size("topic_ids")).alias("topics"),
        F.avg(F.size("concept_ids")).alias("concepts"),
    ).first()
    ends = {
        r["walk_end_reason"]: r["count"] for r in l3.groupBy("walk_end_reason").count().collect()
    }
    return {
        "num_walks": int(row["n"]),
        "distinct_concept_sets": int(row["distinct"]),
        "mean_topics": round(float(row["topics"] or 0), 3),
        "mean_concepts": round(float(row["concepts"] or 0), 3),
        "end_reasons": dict(sorted(ends.items())),
    }


def quarantine_rows(l3: DataFrame, snapshot: str) -> DataFrame:
    """Walks set aside, in the shared quarantine schema (the walk travels in ``raw``)."""
    from pyspark.sql import functions as F

    payload = F.to_json(F.struct("combo_id", "walk_id", "epoch", "start_topic", "topic_ids",
                                 "concept_ids", "ref_doc_ids", "walk_end_reason"))  # fmt: skip
    return l3.where("_reason IS NOT NULL").select(
        F.lit(STAGE).alias("stage"),
        F.col("_reason").alias("reason"),
        F.lit(None).cast("string").alias("doc_id"),
        F.lit(None).cast("string").alias("source_file"),
        F.substring(payload, 1, MAX_RAW_CHARS).alias("raw"),
        F.lit(snapshot).alias("snapshot"),
    )


def _sample_and_commit(
    ctx: JobContext,
    spark: SparkSession,
    inputs: list[str],
    outputs: tuple[StageOutput, StageOutput],
) -> StageStats:
    """The body of :func:`run` inside its checkpoint folder: sample, count, commit."""
    from pyspark.sql import functions as F

    from jobs.graph.walks import sample_walks

    documents = spark.read.parquet(to_spark_uri(inputs[0]))
    doc_concepts = spark.read.parquet(to_spark_uri(inputs[1]))
    vertices = spark.read.parquet(to_spark_uri(join(inputs[2], "vertices")))
    edges = spark.read.parquet(to_spark_uri(join(inputs[2], "edges")))

    started = time.monotonic()
    walks = sample_walks(vertices, edges, walk_params(ctx)).checkpoint(eager=True)
    log.info("walks: %d sampled in %.1f s", walks.count(), time.monotonic() - started)
    started = time.monotonic()
    l3 = level3(walks, doc_concepts, vertices, ctx.cfg).checkpoint(eager=True)
    log.info("level 3: walks grounded in reference documents in %.1f s", time.monotonic() - started)
    started = time.monotonic()
    l1 = level1(documents, ctx.cfg.generation.max_documents)
    l2 = level2(doc_concepts)
    usable = l3.where("_reason IS NULL").select(*COLUMNS[:-1])
    combos = (
        l1.unionByName(l2).unionByName(usable).withColumn("snapshot", F.lit(ctx.snapshot))
    ).checkpoint(eager=True)
    log.info("levels 1 and 2, and the union: %.1f s", time.monotonic() - started)
    by_level = {str(r["level"]): r["count"] for r in combos.groupBy("level").count().collect()}
    reasons = {r["_reason"]: r["count"] for r in l3.groupBy("_reason").count().collect()}
    reasons.pop(None, None)
    n_out = sum(by_level.values())
    stats = StageStats(
        rows_in=n_out + sum(reasons.values()),
        rows_out=n_out,
        quarantined=dict(sorted(reasons.items())),
        extra={
            "by_level": {lv: by_level.get(lv, 0) for lv in ("1", "2", "3")},
            "walks": walk_stats(l3),
            "params": ctx.cfg.combinations.model_dump(),
        },
    )
    stats.check_balance()
    quarantine, table = outputs
    quarantine_rows(l3, ctx.snapshot).write.parquet(to_spark_uri(quarantine.begin()))
    quarantine.commit(ctx.manifest("combinations.quarantine", inputs), None)
    combos.orderBy("combo_id").select(*COLUMNS).write.parquet(to_spark_uri(table.begin()))
    table.commit(ctx.manifest("combinations", inputs), stats)
    return stats


def run(ctx: JobContext) -> StageStats:
    """Read documents, doc_concepts and graph → combinations of all levels → commit."""
    from jobs.spark import build_session, job_checkpoints

    storage = Storage(ctx.cfg.storage)
    layout = ctx.layout
    inputs = [layout.table(t) for t in ("documents", "doc_concepts", "graph")]
    for uri in inputs:
        require_committed(storage, uri)
    outputs = (
        StageOutput(storage, layout.quarantine(STAGE), ctx.attempt),
        StageOutput(storage, layout.table(STAGE), ctx.attempt),
    )
    spark = build_session(ctx.cfg, "synthllm-sample-combinations")
    # Reliable checkpoints: a local one is lost with its executor, and so is the job.
    with job_checkpoints(spark, ctx.cfg, f"{STAGE}-{ctx.snapshot}-{ctx.attempt}"):
        stats = _sample_and_commit(ctx, spark, inputs, outputs)
    log.info(
        "combinations per level %s; walks %s; set aside %s",
        stats.extra["by_level"], stats.extra["walks"], stats.quarantined or "none",
    )  # fmt: skip
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("Sample the Level-1/2/3 concept combinations")
    return run_job("combinations", argv, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
