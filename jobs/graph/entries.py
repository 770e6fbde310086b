"""The walks' graph brought to the driver: its nodes, then its entries streamed in CSR order.

Spark numbers the vertices in id order (:func:`jobs.graph.cooccurrence.number_nodes`), puts
the numbers on the edges, adds the reverse of every ``topic_topic`` and ``concept_concept``
edge, range-partitions the directed entries by ``(k, s, d)`` and sorts each partition. The
partitions come back one at a time through ``toLocalIterator``, each as Arrow IPC chunks of
up to :data:`CHUNK_ENTRIES` entries, which :func:`jobs.graph.adjacency.stream_adjacency`
appends to the CSRs. So the JVM driver holds one partition (about :data:`PARTITION_ENTRIES`
entries) and the Python driver the finished CSRs (~12 bytes per directed entry) plus one
chunk, where collecting the edge table whole and sorting it takes ~100 bytes per edge. A
graph of up to :data:`COLLECT_MAX_ENTRIES` entries is still collected whole: the range
partitioning samples and sorts in Spark, ~10 s more on 2 cores whatever the size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs.graph.adjacency import KINDS, Adjacency

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# Entries per Arrow IPC chunk (~17 MB) and per Spark partition (~70 MB in the JVM driver).
CHUNK_ENTRIES = 1 << 20
PARTITION_ENTRIES = 1 << 22
# Up to this many directed entries the edges come in one collect and numpy sorts them: two
# Spark jobs fewer and no Spark sort, at a peak of ~50 bytes per entry (~1.7 GB here).
COLLECT_MAX_ENTRIES = 1 << 25


def walk_adjacency(
    vertices: DataFrame, edges: DataFrame, eps: float, folder: str | None = None
) -> Adjacency:
    """The numbered graph of ``vertices`` and ``edges`` (graph tables) with a CSR per kind.

    Edges of another kind are left out; an edge whose end is not a vertex, a null ``freq``
    or a weight ``freq + eps`` that is not > 0 raises ``ValueError``. Runs Spark jobs for the
    nodes, the edges per kind (the CSRs' sizes), and then either one collect of the numbered
    edges (up to :data:`COLLECT_MAX_ENTRIES` directed entries) or the sorted entries'
    range partitions, one at a time. Both give the same CSRs; the streamed ones are built
    in files in ``folder`` when one is given (:func:`jobs.graph.adjacency.stream_adjacency`).
    """
    from pyspark.sql import functions as F

    from jobs.graph.adjacency import build_adjacency, stream_adjacency
    from jobs.graph.cooccurrence import node_kind, number_nodes
    from jobs.spark import arrow_chunks

    numbered = number_nodes(vertices.groupBy("id").agg(node_kind()))
    nodes = numbered.select("id", (F.col("kind") == "topic").alias("topic"), "n").toArrow()
    nodes = nodes.sort_by("n").select(["id", "topic"])
    code = F.lit(None).cast("byte")
    for k, kind in enumerate(KINDS):
        code = F.when(F.col("kind") == kind, F.lit(k).cast("byte")).otherwise(code)
    kinds = edges.select(
        "src", "dst", code.alias("k"), F.col("freq").cast("double").alias("freq")
    ).filter(F.col("k").isNotNull())
    counts = {r["k"]: r["count"] for r in kinds.groupBy("k").count().collect()}
    capacity = {
        kind: counts.get(c, 0) * (1 if kind == "topic_concept" else 2)
        for c, kind in enumerate(KINDS)
    }
    index = F.broadcast(numbered.select("id", F.col("n").cast("int").alias("n")))
    forward = kinds.join(index.toDF("src", "s"), "src", "left").join(
        index.toDF("dst", "d"), "dst", "left"
    )
    if sum(capacity.values()) <= COLLECT_MAX_ENTRIES:
        return build_adjacency(nodes, forward.select("s", "d", "k", "freq").toArrow(), eps)

    def way(a: str, b: str):
        return F.struct(F.col(a).alias("s"), F.col(b).alias("d"))

    one_way = F.col("k") == KINDS.index("topic_concept")
    ways = F.when(one_way, F.array(way("s", "d"))).otherwise(F.array(way("s", "d"), way("d", "s")))
    entries = forward.select("k", "freq", F.inline(ways)).select("s", "d", "k", "freq")
    spark = edges.sparkSession
    parts = max(
        spark.sparkContext.defaultParallelism, -(-sum(capacity.values()) // PARTITION_ENTRIES)
    )
    ordered = entries.repartitionByRange(parts, "k", "s", "d").sortWithinPartitions("k", "s", "d")
    return stream_adjacency(nodes, arrow_chunks(ordered, CHUNK_ENTRIES), capacity, eps, folder)
