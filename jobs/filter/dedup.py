"""Duplicate detection: an exact pass on normalised text, then MinHash LSH over shingles.

Exact copies (identical after lower-casing and collapsing whitespace, the same normalisation
the shingles use) are grouped by a SHA-256 of that text first and only one text of each group
goes on to LSH. Without this pass a corpus with k copies of a document gives k**2 candidate
pairs per hash table, and a heavily replicated corpus makes the similarity join quadratic.

Spark's ``approxSimilarityJoin`` computes the exact Jaccard distance of every candidate pair
that shares a MinHash bucket, so a reported pair really is at least ``near_dup_jaccard``
similar (up to HashingTF collisions, made rare by a 2**20-wide feature space). Recall is
probabilistic: a pair of Jaccard similarity J is a candidate with chance 1 - (1 - J)**tables.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

NUM_FEATURES = 1 << 20
# approxSimilarityJoin keeps pairs with distance strictly below its threshold; the slack lets
# a pair exactly at the configured similarity through, and the filter below re-applies "<=".
_SLACK = 1e-9


def shingles(text: str | None, size: int) -> list[str]:
    """Distinct character ``size``-grams of the lower-cased, whitespace-collapsed text.

    Collapsing whitespace makes re-wrapped or re-indented copies of a document match.
    A text shorter than ``size`` has no shingles (MinHash cannot hash an empty set).
    """
    norm = " ".join((text or "").lower().split())
    if len(norm) < size:
        return []
    return sorted({norm[i : i + size] for i in range(len(norm) - size + 1)})


def word_shingles(text: str | None, size: int) -> list[str]:
    """Distinct lower-cased word ``size``-grams (words split on whitespace).

    A text of fewer than ``size`` words has one shingle, the whole text, so a short document
    can still be matched against its exact copies.
    """
    words = (text or "").lower().split()
    if len(words) < size:
        return [" ".join(words)] if words else []
    return sorted({" ".join(words[i : i + size]) for i in range(len(words) - size + 1)})


def shingler(cfg: Any):
    """The shingle function ``text -> list[str]`` that ``cfg.minhash_shingle`` names."""
    if cfg.minhash_shingle == "char":
        size = cfg.minhash_shingle_chars
        return lambda text: shingles(text, size)
    size = cfg.minhash_shingle_words
    return lambda text: word_shingles(text, size)


def jaccard(a: set[str], b: set[str]) -> float:
    """Jaccard similarity of two sets (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def normalised_text(column: Any) -> Any:
    """Spark column: ``column`` lower-cased, trimmed, with whitespace runs made one space."""
    from pyspark.sql import functions as F

    return F.lower(F.trim(F.regexp_replace(column, r"(?U)\s+", " ")))


def exact_duplicates(df: DataFrame, key: str = "_row") -> DataFrame:
    """Rows of ``df`` whose normalised text repeats an earlier row's: ``(key, duplicate_of)``.

    In each group of equal normalised texts the row with the smallest ``(doc_id, key)`` stays
    and every other row names its doc_id in ``duplicate_of``. Empty texts are never grouped.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    hashed = (
        df.select(key, "doc_id", normalised_text(F.col("text")).alias("_norm"))
        .where(F.length("_norm") > 0)
        .select(key, "doc_id", F.sha2("_norm", 256).alias("_text_sha"))
    )
    group = Window.partitionBy("_text_sha")
    ordered = group.orderBy("doc_id", key)
    return (
        hashed.withColumn("duplicate_of", F.first("doc_id").over(ordered))
        .withColumn("_rank", F.row_number().over(ordered))
        .where(F.col("_rank") > 1)
        .select(key, "duplicate_of")
    )


def near_duplicates(df: DataFrame, cfg: Any, key: str = "_row") -> DataFrame:
    """Rows of ``df`` to drop as near-duplicates: ``(key, duplicate_of, dup_similarity)``.

    ``df`` needs ``key`` (unique, orderable), ``doc_id`` and ``text``. In every pair at
    Jaccard similarity >= ``cfg.near_dup_jaccard`` the row with the larger
    ``(doc_id, key)`` is dropped; ``duplicate_of`` is the smallest doc_id it pairs with.
    Rows without shingles (empty texts) are never reported.
    """
    from pyspark.ml.feature import HashingTF, MinHashLSH
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    max_distance = 1.0 - cfg.near_dup_jaccard
    to_shingles = F.udf(shingler(cfg), T.ArrayType(T.StringType()))
    shingled = (
        df.select(key, "doc_id", to_shingles("text").alias("shingles"))
        # MinHash raises on an all-zero vector, so empty shingle sets never reach it.
        .where(F.size("shingles") > 0)
    )
    tf = HashingTF(inputCol="shingles", outputCol="features", numFeatures=NUM_FEATURES)
    vectors = tf.setBinary(True).transform(shingled).select(key, "doc_id", "features")
    vectors = vectors.checkpoint(eager=True)
    lsh = MinHashLSH(
        inputCol="features",
        outputCol="hashes",
        numHashTables=cfg.minhash_num_tables,
        seed=cfg.seed,
    ).fit(vectors)
    pairs = lsh.approxSimilarityJoin(vectors, vectors, max_distance + _SLACK, "distance")
    a_key = F.struct(F.col("datasetA.doc_id"), F.col(f"datasetA.{key}"))
    b_key = F.struct(F.col("datasetB.doc_id"), F.col(f"datasetB.{key}"))
    dropped = (
        pairs.where((a_key < b_key) & (F.col("distance") <= max_distance))
        .select(
            F.col(f"datasetB.{key}").alias(key),
            F.col("datasetA.doc_id").alias("keep_id"),
            (1.0 - F.col("distance")).alias("similarity"),
        )
        .groupBy(key)
        .agg(
            F.min("keep_id").alias("duplicate_of"),
            F.max("similarity").alias("dup_similarity"),
        )
    )
    return dropped


def duplicates(df: DataFrame, cfg: Any, key: str = "_row") -> DataFrame:
    """Rows of ``df`` to drop: ``(key, duplicate_of, dup_similarity, dup_kind)``.

    Exact copies go first (``dup_kind`` "exact", similarity 1.0, ``duplicate_of`` the kept
    copy); MinHash LSH then runs over the one remaining row of each text (``dup_kind``
    "near"). A copy of a text that is itself a near-duplicate names the copy it repeats,
    so every removed row points at a row of the same or a more similar text.
    """
    from pyspark.sql import functions as F

    exact = exact_duplicates(df, key).checkpoint(eager=True)
    distinct = df.join(exact.select(key), key, "left_anti")
    near = near_duplicates(distinct, cfg, key)
    return exact.select(
        key, "duplicate_of", F.lit(1.0).alias("dup_similarity"), F.lit("exact").alias("dup_kind")
    ).unionByName(near.withColumn("dup_kind", F.lit("near")))
