"""Ground each sampled concept set in reference documents by Jaccard similarity (paper §1.2).

The paper keeps the top-2 documents by Jaccard similarity between the walk's concept set K^g
and each document's concept set. Comparing every walk with every document is a cross join
(walks x 520K documents); an inverted index only touches documents that share at least one
node with the walk, and a document sharing none has Jaccard 0 and could never be a reference.

Decisions (paper §5 item 6): the caller chooses the node sets (walk ``nodes`` and
``doc_nodes``); ties in Jaccard go to the smaller ``doc_id``; the references are distinct
documents (each document appears once per walk); documents are not excluded for having
contributed concepts to the walk -- they are usually the best grounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def reference_docs(walks: DataFrame, doc_nodes: DataFrame, num_refs: int = 2) -> DataFrame:
    """Top-``num_refs`` documents per walk by Jaccard similarity, via an inverted index.

    ``walks``: ``(walk_id, nodes array<string>)``, duplicates within ``nodes`` ignored.
    ``doc_nodes``: ``(doc_id, node)``, distinct rows (a repeated row would count twice).
    Returns ``(walk_id, ref_doc_ids array<string>, ref_jaccard array<double>)`` for every input
    walk: Jaccard ``|W ∩ D| / |W ∪ D|`` descending, ties by ``doc_id`` ascending; a walk that
    shares no node with any document gets two empty arrays.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if isinstance(num_refs, bool) or not isinstance(num_refs, int) or num_refs < 1:
        raise ValueError(f"num_refs: expected an int >= 1, got {num_refs!r}")

    walk_sets = walks.select(
        "walk_id", F.array_distinct(F.coalesce("nodes", F.array().cast("array<string>"))).alias("w")
    ).select("walk_id", "w", F.size("w").alias("w_size"))
    doc_sizes = doc_nodes.groupBy("doc_id").agg(F.count(F.lit(1)).alias("d_size"))
    # The inverted index: one row per (walk node, document holding it), equi-joined on node.
    shared = (
        walk_sets.select("walk_id", F.explode("w").alias("node"))
        .join(doc_nodes.select("doc_id", "node"), "node")
        .groupBy("walk_id", "doc_id")
        .agg(F.count(F.lit(1)).alias("inter"))
    )
    scored = (
        shared.join(walk_sets.select("walk_id", "w_size"), "walk_id")
        .join(doc_sizes, "doc_id")
        .withColumn(
            "jaccard",
            F.col("inter").cast("double") / (F.col("w_size") + F.col("d_size") - F.col("inter")),
        )
    )
    # row_number <= k becomes a per-partition group limit (Spark 3.5+) before the shuffle.
    order = Window.partitionBy("walk_id").orderBy(F.col("jaccard").desc(), F.col("doc_id").asc())
    top = (
        scored.withColumn("rank", F.row_number().over(order))
        .filter(F.col("rank") <= num_refs)
        .groupBy("walk_id")
        .agg(F.array_sort(F.collect_list(F.struct("rank", "doc_id", "jaccard"))).alias("refs"))
    )
    return (
        walk_sets.select("walk_id")
        .join(top, "walk_id", "left")
        .select(
            "walk_id",
            F.coalesce(
                F.transform("refs", lambda r: r["doc_id"]), F.array().cast("array<string>")
            ).alias("ref_doc_ids"),
            F.coalesce(
                F.transform("refs", lambda r: r["jaccard"]), F.array().cast("array<double>")
            ).alias("ref_jaccard"),
        )
    )
