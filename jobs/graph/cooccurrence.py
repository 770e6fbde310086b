"""The Level-3 co-occurrence graph over topics and key concepts (paper §1.2, Level-3).

Nodes are the distinct topic and concept ids of ``doc_concepts``; two nodes are linked when
they occur in the same document, whatever topic a concept was listed under (the paper: "u and
v are linked whenever they co-occur in the same document"). So a concept listed under topic A
is also linked to topic B of the same document. ``freq`` is the number of distinct documents
shared by the two ends and ``weight = ln(freq + eps)``, so a softmax over weights draws
neighbours in proportion to ``freq + eps`` (paper §5 item 4).

Edge storage: ``topic_topic`` and ``concept_concept`` edges are undirected and stored once with
``src < dst``; ``topic_concept`` edges are stored with the topic as ``src``.

How it counts: nodes are numbered ``0..`` in id order (:func:`number_nodes`); each document's
node numbers are gathered into one sorted array, every pair ``a < b`` of it is packed into one
long (``a << 32 | b``) by Spark SQL's array functions, and the pairs are counted by that long,
with a partial count before the shuffle. So no document is joined with itself and no string
is shuffled per pair; the ids come back from a broadcast of the numbered vertices at the end.
An id is one node: listed as a topic anywhere, it is a topic (ids carry their kind's prefix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

EDGE_KINDS = ("topic_topic", "topic_concept", "concept_concept")
NODE_KINDS = ("topic", "concept")


@dataclass(frozen=True)
class GraphParams:
    """Knobs of the graph build.

    ``eps``: the paper's ε in ``w = ln(freq + ε)``; the paper gives no value, 0.01 keeps the
    walk within 1% of frequency-proportional. ``min_doc_freq``: nodes seen in fewer documents
    are dropped with their edges. ``max_degree``: each node keeps its ``max_degree``
    strongest edges of each kind (None: no cap), see :func:`build_graph`. ``seed``: salts the
    hash that breaks ties between equally strong edges.
    """

    eps: float = 0.01
    min_doc_freq: int = 1
    max_degree: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"eps: expected a finite number >= 0, got {self.eps!r}")
        if isinstance(self.min_doc_freq, bool) or not isinstance(self.min_doc_freq, int):
            raise ValueError(f"min_doc_freq: expected an int, got {self.min_doc_freq!r}")
        if self.min_doc_freq < 1:
            raise ValueError(f"min_doc_freq: expected >= 1, got {self.min_doc_freq}")
        if self.max_degree is not None and (
            isinstance(self.max_degree, bool)
            or not isinstance(self.max_degree, int)
            or self.max_degree < 1
        ):
            raise ValueError(f"max_degree: expected None or an int >= 1, got {self.max_degree!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed: expected an int, got {self.seed!r}")


# Node numbers fit 32 bits (checked), so a pair of them packs into one long.
_PAIR_BITS = 32


def _doc_nodes(doc_concepts: DataFrame) -> DataFrame:
    """Distinct (doc_id, id, kind, name) over the topic and concept columns."""
    from pyspark.sql import functions as F

    cols = set(doc_concepts.columns)

    def side(id_col: str, name_col: str, kind: str) -> DataFrame:
        # Without a display-name column the id itself is the most useful name.
        name = F.col(name_col) if name_col in cols else F.col(id_col)
        return doc_concepts.filter(F.col(id_col).isNotNull()).select(
            "doc_id",
            F.col(id_col).alias("id"),
            F.lit(kind).alias("kind"),
            name.cast("string").alias("name"),
        )

    return side("topic_id", "topic", "topic").unionByName(side("concept_id", "concept", "concept"))


def node_kind():
    """The aggregate that gives a node its one kind from its rows' kinds: a topic anywhere is
    a topic ("topic" > "concept"; ids carry their kind's prefix, so they rarely differ)."""
    from pyspark.sql import functions as F

    return F.max("kind").alias("kind")


def number_nodes(nodes: DataFrame) -> DataFrame:
    """``nodes`` (one row per distinct ``id``) plus ``n``: 0.. in id order (byte order, as
    Spark sorts strings), the same numbers for the same ids however the input is split.
    One partition numbers them: vertices are few next to the pairs they replace."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # Spark warns that this window moves all rows to one partition: meant, see above.
    return nodes.withColumn("n", F.row_number().over(Window.orderBy("id")).cast("long") - 1)


def _pair_counts(doc_nums: DataFrame) -> DataFrame:
    """``(pair, freq)``: documents per node pair, a pair packed as ``a << 32 | b``, a < b."""
    from pyspark.sql import functions as F

    per_doc = doc_nums.groupBy("doc_id").agg(F.array_sort(F.collect_set("n")).alias("ns"))
    # Element i pairs with every later one: slice(ns, i + 2, ...) is 1-based.
    pairs = F.expr(
        f"flatten(transform(ns, (a, i) -> transform(slice(ns, i + 2, size(ns) - i - 1), "
        f"b -> shiftleft(a, {_PAIR_BITS}) | b)))"
    )
    return (
        per_doc.select(F.explode(pairs).alias("pair"))
        .groupBy("pair")
        .agg(F.count(F.lit(1)).alias("freq"))
    )


def _edge_kind(a_kind, b_kind):
    from pyspark.sql import functions as F

    return (
        F.when((a_kind == "topic") & (b_kind == "topic"), "topic_topic")
        .when((a_kind == "concept") & (b_kind == "concept"), "concept_concept")
        .otherwise("topic_concept")
    )


def _cap_degree(edges: DataFrame, max_degree: int, seed: int) -> DataFrame:
    """``edges`` plus ``best_rank``: the smaller of the edge's ranks at its two ends."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = ["src", "dst", "kind", "freq"]
    # Stored pairs are canonical (module docstring), so both ends see the same tie hash.
    hashed = edges.withColumn("tie", F.xxhash64(F.lit(seed), "src", "dst"))
    ends = hashed.select(*keys, "tie", F.col("src").alias("node"), F.col("dst").alias("nbr"))
    ends = ends.unionByName(
        hashed.select(*keys, "tie", F.col("dst").alias("node"), F.col("src").alias("nbr"))
    )
    # Per (node, kind): the cap applies within each sub-graph, so a topic's many concept
    # edges cannot crowd out its few topic edges (the walk uses each sub-graph on its own).
    # Ties on freq go by the seeded hash, not by id, which would favour early names; nbr
    # only orders a hash collision.
    order = (F.col("freq").desc(), F.col("tie").asc(), F.col("nbr").asc())
    rank = Window.partitionBy("node", "kind").orderBy(*order)
    return (
        ends.withColumn("rank", F.row_number().over(rank))
        .groupBy(*keys)
        .agg(F.min("rank").alias("best_rank"))
    )


def build_graph(doc_concepts: DataFrame, params: GraphParams) -> tuple[DataFrame, DataFrame, dict]:
    """Build ``(vertices, edges, pruned)`` from one row per (document, topic, concept).

    vertices: ``id, name, kind ('topic'|'concept'), doc_freq`` (distinct documents); ``name`` is
    the smallest display name seen (``topic``/``concept`` columns, else the id).
    edges: ``src, dst, kind, freq, weight`` as described in the module docstring, no self loops.
    pruned: ``{"vertices_below_min_doc_freq": n, "edges_over_max_degree": n}``.

    ``max_degree`` (k): every node ranks its edges of each kind by ``freq`` desc, ties by a
    hash of the pair salted with ``seed`` (deterministic, and blind to names); an edge survives
    if EITHER end ranks it within k: the union of every node's k strongest edges. So every
    node keeps min(k, its degree) edges of each kind, and a leaf attached only to a hub keeps
    that edge (keeping only edges both ends rank within k cuts it and strands the leaf). The
    price: k bounds the edges each node chooses, not its degree; a hub keeps its own k plus
    every edge a neighbour chose, at most k * nodes edges of a kind in all. When the cap is
    set the ranked edge table is persisted, because it is both counted and returned. Call it
    inside :func:`jobs.spark.held` and materialise the results there: the scope's end frees
    the persisted numbering and ranking.
    """
    from pyspark.sql import functions as F

    from jobs.spark import persisted

    nodes = _doc_nodes(doc_concepts)
    vertices = nodes.groupBy("id").agg(
        node_kind(),
        F.min("name").alias("name"),
        F.countDistinct("doc_id").alias("doc_freq"),
    )
    pruned = {"vertices_below_min_doc_freq": 0, "edges_over_max_degree": 0}
    if params.min_doc_freq > 1:
        below = F.col("doc_freq") < params.min_doc_freq
        pruned["vertices_below_min_doc_freq"] = vertices.filter(below).count()
        vertices = vertices.filter(~below)
    numbered = persisted(number_nodes(vertices))
    if (top := numbered.agg(F.max("n")).first()[0]) is not None and top >= 2**_PAIR_BITS:
        raise ValueError(f"{top + 1} graph nodes: more than {_PAIR_BITS}-bit numbers hold")
    index = F.broadcast(numbered.select("id", "n"))
    doc_nums = nodes.select("doc_id", "id").join(index, "id").select("doc_id", "n")
    counts = _pair_counts(doc_nums)
    ends = F.broadcast(numbered.select("n", "id", "kind"))
    a = ends.select(F.col("n").alias("a_n"), F.col("id").alias("a"), F.col("kind").alias("ak"))
    b = ends.select(F.col("n").alias("b_n"), F.col("id").alias("b"), F.col("kind").alias("bk"))
    low = F.lit((1 << _PAIR_BITS) - 1).cast("long")
    unpacked = counts.select(
        F.shiftright("pair", _PAIR_BITS).alias("a_n"),
        F.col("pair").bitwiseAND(low).alias("b_n"),
        "freq",
    )
    pairs = unpacked.join(a, "a_n").join(b, "b_n")
    # Numbers follow id order, so a < b holds for the ids too; a topic-concept edge is
    # stored topic first.
    topic_first = (F.col("ak") == "concept") & (F.col("bk") == "topic")
    edges = pairs.select(
        F.when(topic_first, F.col("b")).otherwise(F.col("a")).alias("src"),
        F.when(topic_first, F.col("a")).otherwise(F.col("b")).alias("dst"),
        _edge_kind(F.col("ak"), F.col("bk")).alias("kind"),
        "freq",
    )
    if params.max_degree is not None:
        ranked = persisted(_cap_degree(edges, params.max_degree, params.seed))
        over = F.col("best_rank") > params.max_degree
        pruned["edges_over_max_degree"] = ranked.filter(over).count()
        edges = ranked.filter(~over).drop("best_rank")
    edges = edges.withColumn("weight", F.log(F.col("freq").cast("double") + F.lit(params.eps)))
    vertices = vertices.select(
        "id", "name", "kind", F.col("doc_freq").cast("long").alias("doc_freq")
    )
    return vertices, edges.select("src", "dst", "kind", "freq", "weight"), pruned


def spanning_edges(doc_concepts: DataFrame, vertices: DataFrame) -> DataFrame:
    """``(src, dst)`` edges with the same connected components as the uncapped graph.

    Every document links all its nodes, so the chain of its sorted node ids (kept vertices
    only, as ``min_doc_freq`` leaves them) connects exactly what its clique connects, with
    one edge fewer than its nodes instead of one per pair. Not for a ``max_degree`` graph,
    whose cap removes clique edges. Checkpointed (the session's checkpoint dir): every round
    of the components would otherwise plan it from ``doc_concepts`` again.
    """
    from pyspark.sql import functions as F

    nodes = _doc_nodes(doc_concepts).select("doc_id", "id")
    nodes = nodes.join(vertices.select("id"), "id", "left_semi")
    per_doc = nodes.groupBy("doc_id").agg(F.array_sort(F.collect_set("id")).alias("ids"))
    links = F.expr("arrays_zip(slice(ids, 1, size(ids) - 1), slice(ids, 2, size(ids) - 1))")
    pairs = per_doc.select(F.explode(links).alias("e"))
    return pairs.select(F.col("e")["0"].alias("src"), F.col("e")["1"].alias("dst")).checkpoint()


def _degree_summary(vertices: DataFrame, edges: DataFrame) -> dict:
    from pyspark.sql import functions as F

    ends = edges.select(F.col("src").alias("id")).unionByName(
        edges.select(F.col("dst").alias("id"))
    )
    degree = (
        vertices.select("id")
        .join(ends.groupBy("id").agg(F.count(F.lit(1)).alias("degree")), "id", "left")
        .select(F.coalesce(F.col("degree"), F.lit(0)).cast("long").alias("degree"))
    )
    row = degree.agg(
        F.min("degree").alias("min"),
        F.max("degree").alias("max"),
        F.avg("degree").alias("mean"),
        F.percentile("degree", [0.5, 0.9, 0.99]).alias("p"),
    ).first()
    if row is None or row["min"] is None:
        summary = {k: 0 for k in ("min", "max")} | {k: 0.0 for k in ("mean", "p50", "p90", "p99")}
        return summary | {"histogram": []}
    # Bucket lo = the highest power of two <= degree, from the binary string's length: exact,
    # unlike floor(log2(d)), which can land just below an integer for d = 2^k.
    lo = F.when(F.col("degree") == 0, F.lit(0).cast("long")).otherwise(
        F.pow(F.lit(2.0), F.length(F.bin("degree")) - 1).cast("long")
    )
    buckets = degree.groupBy(lo.alias("lo")).count().orderBy("lo").collect()
    p50, p90, p99 = (float(x) for x in row["p"])
    return {
        "min": int(row["min"]),
        "max": int(row["max"]),
        "mean": float(row["mean"]),
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "histogram": [[int(b["lo"]), int(b["count"])] for b in buckets],
    }


def _components(vertices: DataFrame, links: DataFrame, num_vertices: int) -> dict:
    from graphframes import GraphFrame
    from pyspark.sql import functions as F

    from jobs.spark import persisted

    if num_vertices == 0:
        return {"count": 0, "largest_size": 0, "largest_share": 0.0, "largest_sizes": []}
    # Numbered ids: GraphFrames indexes string ids into a table it persists and never frees;
    # integral ones it takes as they are.
    numbered = persisted(number_nodes(vertices.select("id")))
    index = F.broadcast(numbered)
    nums = links.join(index.toDF("src", "s"), "src").join(index.toDF("dst", "d"), "dst")
    graph = GraphFrame(
        numbered.select(F.col("n").alias("id")),
        nums.select(F.col("s").alias("src"), F.col("d").alias("dst")),
    )
    # Named explicitly: "graphframes", the default, is a deprecated alias of "two_phase";
    # -1 leaves skewed joins to AQE, which GraphFrames 0.11 recommends as much faster.
    cc = graph.connectedComponents(algorithm="two_phase", broadcastThreshold=-1)
    try:  # the result comes back persisted
        sizes = cc.groupBy("component").agg(F.count(F.lit(1)).alias("size"))
        count = sizes.count()
        top = [int(r["size"]) for r in sizes.orderBy(F.col("size").desc()).limit(5).collect()]
    finally:
        cc.unpersist()
    return {
        "count": int(count),
        "largest_size": top[0],
        "largest_share": top[0] / num_vertices,
        "largest_sizes": top,
    }


def graph_stats(vertices: DataFrame, edges: DataFrame, links: DataFrame | None = None) -> dict:
    """JSON-ready summary of a graph from :func:`build_graph` (plain ints and floats).

    ``{"vertices": {kind: n}, "edges": {kind: n}, "degree": {min, max, mean, p50, p90, p99,
    histogram}, "components": {count, largest_size, largest_share, largest_sizes}}``. Degree
    counts edges of every kind, undirected; isolated vertices have degree 0 and fall in the
    histogram bucket ``lo=0``; other buckets are ``[2^k, 2^(k+1))`` as ``[lo, count]``.
    Percentiles are exact (interpolated). Components come from GraphFrames'
    ``connectedComponents`` (needs the session's checkpoint dir) over ``links`` when given
    (edges with the same components, e.g. :func:`spanning_edges`), else over ``edges``;
    ``largest_sizes`` is the top five sizes. An empty graph gives zeros throughout. Pass
    checkpointed tables, as the job does: each round of the components plans its inputs
    again, and a long plan (``build_graph``'s) fills the driver's heap with plan strings.
    """
    by_kind = {r["kind"]: int(r["count"]) for r in vertices.groupBy("kind").count().collect()}
    edge_kinds = {r["kind"]: int(r["count"]) for r in edges.groupBy("kind").count().collect()}
    num_vertices = sum(by_kind.values())
    return {
        "vertices": {k: by_kind.get(k, 0) for k in NODE_KINDS},
        "edges": {k: edge_kinds.get(k, 0) for k in EDGE_KINDS},
        "degree": _degree_summary(vertices, edges),
        "components": _components(vertices, edges if links is None else links, num_vertices),
    }
