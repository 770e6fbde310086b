"""Job: ``clean_questions`` (Spark): the questions of every level, cleaned before answering.

``python -m jobs.questions.clean --snapshot S`` reads the committed ``questions`` table and
commits ``questions_clean`` (same schema) and ``quarantine/clean_questions``. The checks run
in this order, each on the questions the previous ones kept, so every removed question has
exactly one reason:

1. length and format (:mod:`jobs.questions.cleaning`): ``empty``, ``too_short``,
   ``too_long``, ``leftover_markup`` (tags, field labels or instructions of a prompt),
   ``no_math_content``;
2. ``prompt_echo``: a copy or close paraphrase of a worked example of any prompt version
   (:mod:`jobs.llm.prompt_examples`; similarity >= ``clean.echo_similarity``, see
   :func:`jobs.questions.cleaning.echo_of`); the row names the example and the similarity;
3. ``contaminated``: a word n-gram shared with an evaluation item (``clean.ngram_n``-grams,
   ``clean.short_ngram_n``-grams when either text is short) of the sets in
   ``clean.eval_sets`` and the trainer's evaluation set; the quarantine row names the
   benchmark, the item id and the n-gram;
4. ``published_duplicate``: the normalised question is in the published-question index of
   another snapshot (:mod:`jobs.questions.index`); the row names that snapshot and question;
5. ``duplicate_exact`` / ``duplicate_near``: the same normalised text, or MinHash LSH Jaccard
   similarity >= ``clean.near_dup_jaccard`` on word shingles, as a question with a smaller
   question_id, which is kept and named in ``duplicate_of``.

Rows balance: questions in = questions_clean + quarantined. ``_stats.json`` also counts every
level's questions in, out and removed by reason, and names the evaluation sets used.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import LevelFunnel, StageOutput, StageStats, require_committed
from jobs.errors import PermanentError
from jobs.jsonl import json_objects
from jobs.llm.prompt_examples import prompt_examples
from jobs.questions.cleaning import (
    PROMPT_ECHO,
    echo_grams,
    echo_of,
    format_problem,
    key_text,
    reference_ngrams,
    tagged_ngrams,
)
from jobs.questions.index import indexed_snapshots
from jobs.storage import Storage, to_spark_uri
from jobs.tables import MAX_RAW_CHARS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

STAGE = "clean_questions"
OUTPUT = "questions_clean"
CONTAMINATED = "contaminated"
PUBLISHED = "published_duplicate"
REF_FIELDS = (
    "benchmark", "item_id", "ngram", "published_snapshot", "published_question_id",
    "duplicate_of", "similarity", "example",
)  # fmt: skip


class EvalSetError(PermanentError, ValueError):
    """A configured evaluation set cannot be read."""


def parse_eval_set(text: str, name: str, uri: str, question_field: str, id_field: str):
    """Items ``{benchmark, id, question}`` of one JSONL evaluation set; errors name the line."""
    items = []
    try:
        rows = list(json_objects(text, uri))
    except ValueError as exc:
        raise EvalSetError(str(exc)) from None
    for lineno, row in rows:
        question = row.get(question_field)
        if not isinstance(question, str) or not question.strip():
            raise EvalSetError(f"{uri}:{lineno}: no {question_field!r} text")
        items.append(
            {"benchmark": name, "id": str(row.get(id_field, lineno)), "question": question}
        )
    if not items:
        raise EvalSetError(f"{uri}: evaluation set {name!r} is empty")
    return items


def eval_items(storage: Storage, cfg: Any) -> tuple[list[dict], list[dict]]:
    """Every decontamination item and a summary ``[{name, uri, items}]`` of the sets."""
    from jobs.evaluation.evalset import eval_set_name, load_eval_set

    items: list[dict] = []
    sets: list[dict] = []
    if cfg.clean.include_train_eval_set:
        name = eval_set_name(cfg)
        train = load_eval_set(storage, cfg)
        items += [{"benchmark": name, "id": str(it["id"]), "question": it["question"]}
                  for it in train]  # fmt: skip
        sets.append({"name": name, "uri": cfg.evaluation.eval_set_uri or "builtin",
                     "items": len(train)})  # fmt: skip
    for ref in cfg.clean.eval_sets:
        try:
            text = storage.read_text(ref.uri)
        except (OSError, UnicodeDecodeError) as exc:
            raise EvalSetError(
                f"evaluation set {ref.name!r}: cannot read {ref.uri}: {exc}"
            ) from exc
        got = parse_eval_set(text, ref.name, ref.uri, ref.question_field, ref.id_field)
        items += got
        sets.append({"name": ref.name, "uri": ref.uri, "items": len(got)})
    return items, sets


def _reference(**fields: Any):
    """The quarantine row's ``reference`` struct: the given fields, the rest null."""
    from pyspark.sql import functions as F

    cols = []
    for name in REF_FIELDS:
        value = fields.get(name)
        col = F.lit(None) if value is None else value
        kind = "double" if name == "similarity" else "string"
        cols.append(col.cast(kind).alias(name))
    return F.struct(*cols)


def contamination(questions: DataFrame, ref: DataFrame) -> DataFrame:
    """``(question_id, benchmark, item_id, ngram)``: each question's first overlapping item."""
    from pyspark.sql import functions as F

    grams = questions.select(
        "question_id",
        F.explode("_grams.grams").alias("gram"),
        F.col("_grams.is_short").alias("q_short"),
    )
    hit = overlaps_expr(F.col("gram"), F.col("q_short"), F.col("item_short"))
    return (
        grams.join(F.broadcast(ref), "gram")
        .where(hit)
        .groupBy("question_id")
        .agg(F.min(F.struct("benchmark", "item_id", "gram")).alias("h"))
        .select(
            "question_id", "h.benchmark", "h.item_id", F.substring("h.gram", 3, 1000).alias("ngram")
        )
    )


def overlaps_expr(gram: Any, q_short: Any, item_short: Any) -> Any:
    """:func:`jobs.questions.cleaning.overlaps` as a Spark expression."""
    return gram.startswith("L:") | q_short | item_short


def prompt_echoes(questions: DataFrame, threshold: float) -> DataFrame:
    """``(question_id, _echo)`` of the questions echoing a prompt example (``_echo``: its
    ``example`` name and ``similarity``; :func:`jobs.questions.cleaning.echo_of`)."""
    from pyspark.sql import functions as F

    examples = [(e.name, echo_grams(e.text)) for e in prompt_examples()]
    echo_type = "struct<example: string, similarity: double>"
    echo_udf = F.udf(lambda t: echo_of(t, examples, threshold), echo_type)
    return questions.select("question_id", echo_udf("question").alias("_echo")).where(
        "_echo IS NOT NULL"
    )


def published_matches(spark: SparkSession, questions: DataFrame, uris: list[str]) -> DataFrame:
    """``(question_id, published_snapshot, published_question_id)`` for questions in the index."""
    from pyspark.sql import functions as F

    index = spark.read.parquet(*[to_spark_uri(u) for u in uris])
    first = index.groupBy("question_key").agg(F.min(F.struct("snapshot", "question_id")).alias("p"))
    return (
        questions.select("question_id", F.col("_key").alias("question_key"))
        .join(first, "question_key")
        .select(
            "question_id",
            F.col("p.snapshot").alias("published_snapshot"),
            F.col("p.question_id").alias("published_question_id"),
        )
    )


def clean(
    spark: SparkSession, questions: DataFrame, items: list[dict], index_uris: list[str], cfg: Any
) -> DataFrame:
    """Every question with ``_reason`` (null when kept) and its ``_ref`` struct."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from jobs.filter.dedup import duplicates

    c = cfg.clean
    fmt_udf = F.udf(lambda t: format_problem(t, c.min_chars, c.max_chars), T.StringType())
    key_udf = F.udf(lambda t: key_text(t), T.StringType())
    gram_type = T.StructType(
        [
            T.StructField("grams", T.ArrayType(T.StringType())),
            T.StructField("is_short", T.BooleanType()),
        ]
    )
    gram_udf = F.udf(lambda t: tagged_ngrams(t, c.ngram_n, c.short_ngram_n), gram_type)
    base = (
        questions.withColumn("_fmt", fmt_udf("question"))
        .withColumn("_key_text", key_udf("question"))
        .withColumn("_key", F.sha2("_key_text", 256))
        .checkpoint(eager=True)
    )
    removed = [
        base.where("_fmt IS NOT NULL").select(
            "question_id", F.col("_fmt").alias("_reason"), _reference().alias("_ref")
        )
    ]
    kept = base.where("_fmt IS NULL")

    echoes = prompt_echoes(kept, c.echo_similarity).checkpoint(eager=True)
    removed.append(
        echoes.select(
            "question_id",
            F.lit(PROMPT_ECHO).alias("_reason"),
            _reference(example=F.col("_echo.example"), similarity=F.col("_echo.similarity")).alias(
                "_ref"
            ),
        )
    )
    kept = kept.join(echoes.select("question_id"), "question_id", "left_anti")

    if items:
        ref_rows = [
            (g, s, b, i) for g, s, b, i in reference_ngrams(items, c.ngram_n, c.short_ngram_n)
        ]
        ref = spark.createDataFrame(
            ref_rows, "gram string, item_short boolean, benchmark string, item_id string"
        )
        hits = contamination(kept.withColumn("_grams", gram_udf("question")), ref).checkpoint(
            eager=True
        )
        removed.append(
            hits.select(
                "question_id",
                F.lit(CONTAMINATED).alias("_reason"),
                _reference(
                    benchmark=F.col("benchmark"), item_id=F.col("item_id"), ngram=F.col("ngram")
                ).alias("_ref"),
            )
        )
        kept = kept.join(hits.select("question_id"), "question_id", "left_anti")

    if index_uris:
        pub = published_matches(spark, kept, index_uris).checkpoint(eager=True)
        removed.append(
            pub.select(
                "question_id",
                F.lit(PUBLISHED).alias("_reason"),
                _reference(
                    published_snapshot=F.col("published_snapshot"),
                    published_question_id=F.col("published_question_id"),
                ).alias("_ref"),
            )
        )
        kept = kept.join(pub.select("question_id"), "question_id", "left_anti")

    kept = kept.checkpoint(eager=True)
    if not kept.isEmpty():
        texts = kept.select(
            F.col("question_id").alias("_row"),
            F.col("question_id").alias("doc_id"),
            F.col("_key_text").alias("text"),
        )
        dups = duplicates(texts, c).checkpoint(eager=True)
        removed.append(
            dups.select(
                F.col("_row").alias("question_id"),
                F.concat(F.lit("duplicate_"), "dup_kind").alias("_reason"),
                _reference(
                    duplicate_of=F.col("duplicate_of"), similarity=F.col("dup_similarity")
                ).alias("_ref"),
            )
        )
    reasons = removed[0]
    for part in removed[1:]:
        reasons = reasons.unionByName(part)
    return base.drop("_fmt", "_key_text", "_key").join(reasons, "question_id", "left")


def quarantine_rows(flagged: DataFrame, snapshot: str) -> DataFrame:
    """Removed questions in the shared quarantine schema; the question travels in ``raw``."""
    from pyspark.sql import functions as F

    payload = F.to_json(
        F.struct(
            "question_id",
            "combo_id",
            "level",
            "question",
            "source_doc_ids",
            F.col("_ref").alias("reference"),
        )
    )
    return flagged.where("_reason IS NOT NULL").select(
        F.lit(STAGE).alias("stage"),
        F.col("_reason").alias("reason"),
        F.element_at("source_doc_ids", 1).alias("doc_id"),
        F.lit(None).cast("string").alias("source_file"),
        F.substring(payload, 1, MAX_RAW_CHARS).alias("raw"),
        F.lit(snapshot).alias("snapshot"),
    )


def level_counts(flagged: DataFrame) -> dict[str, dict[str, Any]]:
    """``{level: {in, out, removed: {reason: n}}}`` for the report's per-level funnel."""
    funnel = LevelFunnel()
    for row in flagged.groupBy("level", "_reason").count().collect():
        funnel.add(row["level"], row["_reason"], row["count"])
    return funnel.as_dict()


def run(ctx: JobContext) -> StageStats:
    """Read questions → format, decontamination, published and in-snapshot duplicates → commit."""
    from jobs.spark import build_session, job_checkpoints

    storage = Storage(ctx.cfg.storage)
    layout = ctx.layout
    questions_uri = layout.table("questions")
    require_committed(storage, questions_uri)
    items, eval_sets = eval_items(storage, ctx.cfg)
    index_uris = indexed_snapshots(storage, layout.question_index, exclude=ctx.snapshot)
    log.info(
        "decontamination: %d items from %s; published index: %d other snapshots",
        len(items), [s["name"] for s in eval_sets], len(index_uris),
    )  # fmt: skip
    outputs = (
        StageOutput(storage, layout.quarantine(STAGE), ctx.attempt),
        StageOutput(storage, layout.table(OUTPUT), ctx.attempt),
    )
    spark = build_session(ctx.cfg, "synthllm-clean-questions")
    # Reliable checkpoints: a local one is lost with its executor, and so is the job.
    with job_checkpoints(spark, ctx.cfg, f"{STAGE}-{ctx.snapshot}-{ctx.attempt}"):
        return _clean_and_commit(ctx, spark, (items, eval_sets), index_uris, outputs)


def _clean_and_commit(
    ctx: JobContext,
    spark: SparkSession,
    evals: tuple[list[dict], list[dict]],
    index_uris: list[str],
    outputs: tuple[StageOutput, StageOutput],
) -> StageStats:
    """The body of :func:`run` inside its checkpoint folder: flag, count, commit."""
    items, eval_sets = evals
    questions_uri = ctx.layout.table("questions")
    questions = spark.read.parquet(to_spark_uri(questions_uri))
    columns = questions.columns
    flagged = clean(spark, questions, items, index_uris, ctx.cfg).checkpoint(eager=True)
    by_level = level_counts(flagged)
    reasons: dict[str, int] = {}
    for entry in by_level.values():
        for reason, n in entry["removed"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    stats = StageStats(
        rows_in=sum(e["in"] for e in by_level.values()),
        rows_out=sum(e["out"] for e in by_level.values()),
        quarantined=dict(sorted(reasons.items())),
        extra={
            "by_level": by_level,
            "eval_sets": eval_sets,
            "prompt_examples": [e.name for e in prompt_examples()],
            "index_snapshots": [u.rstrip("/").rsplit("/", 1)[-1] for u in index_uris],
            "params": ctx.cfg.clean.model_dump(mode="json"),
        },
    )
    stats.check_balance()
    inputs = [questions_uri]
    quarantine, table = outputs
    quarantine_rows(flagged, ctx.snapshot).write.parquet(to_spark_uri(quarantine.begin()))
    quarantine.commit(ctx.manifest(f"{STAGE}.quarantine", inputs), None)
    kept = flagged.where("_reason IS NULL").select(*columns).orderBy("question_id")
    kept.coalesce(1).write.parquet(to_spark_uri(table.begin()))
    table.commit(ctx.manifest(STAGE, inputs, eval_sets=eval_sets), stats)
    log.info(
        "clean_questions: %d in, %d kept, removed %s; by level %s",
        stats.rows_in, stats.rows_out, reasons or "none",
        {lv: (e["in"], e["out"]) for lv, e in by_level.items()},
    )  # fmt: skip
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = base_parser("Deduplicate, decontaminate and format-check the generated questions")
    return run_job(STAGE, argv, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
