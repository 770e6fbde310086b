"""Ground each sampled concept set in reference documents by Jaccard similarity (paper §1.2).

The paper keeps the top-2 documents by Jaccard similarity between the walk's concept set K^g
and each document's concept set. Comparing every walk with every document is a cross join
(walks x 520K documents), and so is an inverted index taken through a hub: one topic held by
16K walks and 80K documents emits 10^9 (walk, document) rows from one task. So the nodes are
split by document frequency ``df`` (the number of documents holding the node):

* an *indexed* node (``df <= num_hub_docs``) is joined to its documents as before -- at most
  ``num_hub_docs`` rows per walk node;
* a *hub* (``df > num_hub_docs``) is never joined to its documents per walk. Write ``H_W`` for
  the hubs of walk ``W``. Each *pattern* -- a non-empty subset ``P`` of some ``H_W`` -- gets
  ``top(P)``: the ``num_refs`` documents holding all of ``P`` with the fewest nodes (ties to
  the smaller ``doc_id``). A walk reads ``top(P)`` for each of its ``2^|H_W| - 1`` patterns.

The references are then the best ``num_refs`` of the candidates -- the documents met through
an indexed node, plus the ``top(P)`` lists -- scored with their exact ``|W ∩ D|``.

Why that is exact. Order documents by ``J = i / (w + d - i)`` descending, then ``doc_id``
ascending (``i = |W ∩ D|``, ``w = |W|``, ``d = |D|``); a total order. ``J`` is strictly
increasing in ``i`` (its derivative is ``(w + d) / (w + d - i)^2``) and strictly decreasing in
``d``. Let ``D*`` be one of the true top ``k`` that shares no indexed node with ``W``, so
``P* = W ∩ D*`` is a non-empty subset of ``H_W``. If ``D*`` were not in ``top(P*)``, then
``top(P*)`` would hold ``k`` other documents ``E ⊇ P*`` with ``(d_E, id_E) < (d*, id*)``.
Each has ``i_E >= |P*| = i*`` and ``d_E <= d*``, so ``J_E >= J*``, with equality only if
``i_E = i*`` and ``d_E = d*``, and then ``id_E < id*``: all ``k`` rank above ``D*``, which is
a contradiction. So every true top-``k`` document is a candidate; candidates are real
documents scored exactly, so the top ``k`` candidates are the true top ``k``, ties included.
A walk sharing no node with any document has no candidate and gets empty arrays. Scores are
doubles, ``i / (w + d - i)`` of exact integers, correctly rounded, so equal fractions compare
equal (as in a brute force) and the order above is the order of the doubles.

``top(P)`` without a walk x document join, and without enumerating each document's hub
subsets (a document with 10 hubs holds ~600 subsets of up to 5 of them, and most are some
walk's pattern): the documents holding a hub are ranked by ``(d, doc_id)``, and each hub
gets the set of those ranks (:class:`HubSets`): a bitmap for a hub in more than 1/32 of the
documents, its sorted ranks for any other. ``top(P)`` is then the ``k`` lowest ranks common
to ``P``'s hubs: for bitmaps alone the lowest set bits of their AND, read from the lowest
ranks upwards in growing windows, so a pattern whose hubs meet often stops after a few
words; otherwise the sparsest hub's ranks tested against the others'. The sets (at most 4
bytes per (document, hub) pair, plus the bitmaps) are broadcast; the distinct walk patterns
are read in a ``mapInArrow``.

Row bound, with ``T = num_hub_docs``, ``k = num_refs``, ``h_W = |H_W|`` and ``S(D)`` the hubs
of ``D`` held by some walk:

* inverted-index join: ``sum_W sum_{n in W, df(n) <= T} df(n) <= T * sum_W |W|``;
* walk patterns: ``sum_W (2^h_W - 1)`` rows, times ``k`` once joined to ``top(P)``;
* hub sets: ``sum_h N_h`` members, ``N_h`` the documents holding hub ``h``; each distinct
  walk pattern reads at most ``|P|`` sets and emits ``k`` rows.

A hub ``h`` held by ``M_h`` walks and ``N_h`` documents costs ``O(M_h * 2^(h_W - 1) * k)``
walk rows and ``N_h`` bits, never ``M_h * N_h`` rows. Walks
here hold at most 8 nodes (``1 + max_topic_steps`` topics, ``1 + max_concept_steps``
concepts), so a walk has at most 255 patterns; a walk with many more hubs would want a larger
``num_hub_docs``. A smaller ``num_hub_docs`` shrinks the index join and grows the patterns.

Decisions (paper §5 item 6): the caller chooses the node sets (walk ``nodes`` and
``doc_nodes``); ties in Jaccard go to the smaller ``doc_id``; the references are distinct
documents (each document appears once per walk); documents are not excluded for having
contributed concepts to the walk -- they are usually the best grounding.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

# A node in at most this many documents is joined through the inverted index (at most this
# many rows per walk node); one in more is a hub, reached through its set. Measured on the
# scale harness's 10^5-document graph (41,615 walks, 2 cores): 30 -> 107 s, 50 -> 83 s,
# 100 -> 82 s, 1000 -> 239 s (the index join's 19.9M rows), the same references each time.
NUM_HUB_DOCS = 100
# A hub in more than this share of the ranked documents is a bitmap, any other its sorted
# ranks: 4 bytes a document against 1/8 byte a document (:class:`HubSets`).
DENSE_SHARE = 1 / 32
# (hub, rank) pairs per chunk brought to the driver for the hubs' sets (8 bytes each).
PAIRS_PER_CHUNK = 1 << 20


def reference_docs(
    walks: DataFrame, doc_nodes: DataFrame, num_refs: int = 2, *, num_hub_docs: int = NUM_HUB_DOCS
) -> DataFrame:
    """Top-``num_refs`` documents per walk by Jaccard similarity, exact and hub-safe.

    ``walks``: ``(walk_id, nodes array<string>)``, duplicates within ``nodes`` ignored.
    ``doc_nodes``: ``(doc_id, node)``, distinct rows (a repeated row would count twice).
    Returns ``(walk_id, ref_doc_ids array<string>, ref_jaccard array<double>)`` for every input
    walk: Jaccard ``|W ∩ D| / |W ∪ D|`` descending, ties by ``doc_id`` ascending; a walk that
    shares no node with any document gets two empty arrays. ``num_hub_docs`` only moves work
    between the index join and the hub patterns (module docstring); the result is the same.
    Runs one job at call time (the hubs' sets, :func:`_pattern_tops`), whose broadcast
    lives until the enclosing :func:`jobs.spark.held` scope ends: evaluate the result in it.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    scored = candidate_pairs(walks, doc_nodes, num_refs, num_hub_docs=num_hub_docs).withColumn(
        "jaccard",
        F.col("inter").cast("double") / (F.col("w_size") + F.col("d_size") - F.col("inter")),
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
        _walk_sets(walks)
        .select("walk_id")
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


def candidate_pairs(
    walks: DataFrame, doc_nodes: DataFrame, num_refs: int = 2, *, num_hub_docs: int = NUM_HUB_DOCS
) -> DataFrame:
    """``(walk_id, doc_id, inter, w_size, d_size)``: every document that can be a reference.

    A superset of each walk's true top ``num_refs`` (module docstring), one row per distinct
    (walk, document), ``inter = |W ∩ D| >= 1`` exact; at most ``num_hub_docs`` documents per
    indexed walk node plus ``num_refs`` per hub pattern of the walk.
    """
    from pyspark.sql import functions as F

    for name, value, low in (("num_refs", num_refs, 1), ("num_hub_docs", num_hub_docs, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")

    walk_sets = _walk_sets(walks)
    df = doc_nodes.groupBy("node").agg(F.count(F.lit(1)).alias("df"))
    walk_nodes = walk_sets.select("walk_id", F.explode("w").alias("node")).join(df, "node")
    is_hub = F.col("df") > num_hub_docs
    # Indexed nodes: at most num_hub_docs documents per walk node.
    indexed = (
        walk_nodes.where(~is_hub)
        .select("walk_id", "node")
        .join(doc_nodes.select("doc_id", "node"), "node")
        .groupBy("walk_id", "doc_id")
        .agg(F.count(F.lit(1)).alias("i_indexed"))
    )
    hubs = walk_nodes.where(is_hub).select("walk_id", "node")
    walk_hubs = hubs.groupBy("walk_id").agg(F.array_sort(F.collect_list("node")).alias("w_hubs"))
    doc_hubs = (
        doc_nodes.select("doc_id", "node")
        .join(hubs.select("node").distinct(), "node")
        .groupBy("doc_id")
        .agg(F.array_sort(F.collect_list("node")).alias("d_hubs"))
    )
    docs = (
        doc_nodes.groupBy("doc_id")
        .agg(F.count(F.lit(1)).alias("d_size"))
        .join(doc_hubs, "doc_id", "left")
    )
    walk_patterns = _walk_patterns(walk_hubs)
    via_hubs = walk_patterns.join(
        _pattern_tops(
            doc_hubs.join(docs.select("doc_id", "d_size"), "doc_id"), walk_patterns, num_refs
        ),
        "pattern",
    ).select("walk_id", "doc_id", F.lit(0).cast("long").alias("i_indexed"))
    pairs = (
        indexed.unionByName(via_hubs)
        .groupBy("walk_id", "doc_id")
        .agg(F.max("i_indexed").alias("i_indexed"))
    )
    shared_hubs = F.coalesce(F.size(F.array_intersect("w_hubs", "d_hubs")), F.lit(0))
    return (
        pairs.join(walk_sets.select("walk_id", "w_size"), "walk_id")
        .join(walk_hubs, "walk_id", "left")
        .join(docs, "doc_id")
        .select(
            "walk_id",
            "doc_id",
            (F.col("i_indexed") + shared_hubs).alias("inter"),
            "w_size",
            "d_size",
        )
    )


def _walk_sets(walks: DataFrame) -> DataFrame:
    """``(walk_id, w, w_size)``: each walk's distinct nodes (a null ``nodes`` is empty)."""
    from pyspark.sql import functions as F

    w = F.array_distinct(F.coalesce("nodes", F.array().cast("array<string>")))
    return walks.select("walk_id", w.alias("w")).withColumn("w_size", F.size("w"))


def _walk_patterns(walk_hubs: DataFrame) -> DataFrame:
    """``(walk_id, pattern)``: every non-empty subset of a walk's sorted hubs, kept sorted."""
    from pyspark.sql import functions as F

    # shiftleft/shiftright with a column shift: the Python wrappers take only an int.
    one = F.lit(1).cast("long")
    masks = F.sequence(one, F.call_function("shiftleft", one, F.size("w_hubs")) - 1)
    subsets = F.transform(
        masks,
        lambda m: F.filter(
            "w_hubs", lambda _, i: F.call_function("shiftright", m, i).bitwiseAND(1) == 1
        ),
    )
    return walk_hubs.select("walk_id", F.explode(subsets).alias("pattern"))


def _pattern_tops(doc_hubs: DataFrame, walk_patterns: DataFrame, num_refs: int) -> DataFrame:
    """``(pattern, doc_id)``: per walk pattern, the ``num_refs`` smallest documents holding it.

    ``doc_hubs``: ``(doc_id, d_hubs, d_size)``, ``d_hubs`` the walks' hubs the document holds.
    Runs Spark jobs at call time: each document's rank in ``(d_size, doc_id)`` order
    (:func:`jobs.spark.dense_ranks`), the hubs' names, and the ``(hub, rank)`` pairs, which
    come to the driver a chunk at a time (:func:`jobs.spark.arrow_chunks`) for the hubs'
    sets. Those are broadcast until the enclosing :func:`jobs.spark.held` scope ends; the
    ranks a pattern finds go back to document ids through a join, so no id or hub list of
    a document reaches the driver.
    """
    import numpy as np
    import pyarrow as pa
    from pyspark.sql import functions as F

    from jobs.spark import arrow_chunks, broadcast, dense_ranks, persisted

    spark = doc_hubs.sparkSession
    ranks = persisted(dense_ranks(doc_hubs.select("doc_id", "d_size"), ["d_size", "doc_id"]))
    hub_names = doc_hubs.select(F.explode("d_hubs").alias("hub")).distinct().collect()
    hub_of = {name: i for i, name in enumerate(sorted(r["hub"] for r in hub_names))}
    index = spark.createDataFrame(list(hub_of.items()), "hub string, h int")
    pairs = (
        doc_hubs.select("doc_id", F.explode("d_hubs").alias("hub"))
        .join(F.broadcast(index), "hub")
        .join(ranks.select("doc_id", F.col("rank").cast("int").alias("r")), "doc_id")
        .select("h", "r")
    )
    hubs, rank_parts = [np.zeros(0, np.int32)], [np.zeros(0, np.int32)]
    for chunk in arrow_chunks(pairs, PAIRS_PER_CHUNK):
        hubs.append(chunk["h"].to_numpy())
        rank_parts.append(chunk["r"].to_numpy())
    hub, rank = np.concatenate(hubs).astype(np.int64), np.concatenate(rank_parts).astype(np.int64)
    del hubs, rank_parts
    num_docs = ranks.count()
    sets = HubSets(hub, rank, len(hub_of), num_docs, DENSE_SHARE)
    log.info(
        "grounding: %d hubs over %d ranked documents (%d as bitmaps), %.1f MB broadcast",
        len(hub_of), num_docs, len(sets.bitmaps), sets.nbytes / 2**20,
    )  # fmt: skip
    shared = broadcast(spark, (hub_of, sets))
    del hub, rank, sets

    def run(batches):
        hub_of, sets = shared.value
        for batch in batches:
            out_p, out_r = [], []
            for p in batch.column(0).to_pylist():
                found = sets.first_common([hub_of[h] for h in p], num_refs)
                out_p += [p] * len(found)
                out_r += found
            yield pa.RecordBatch.from_arrays(
                [pa.array(out_p, pa.list_(pa.string())), pa.array(out_r, pa.int64())],
                names=["pattern", "rank"],
            )

    tops = (
        walk_patterns.select("pattern")
        .distinct()
        .mapInArrow(run, "pattern array<string>, rank long")
    )
    return tops.join(ranks.select("rank", "doc_id"), "rank").select("pattern", "doc_id")


class HubSets:
    """The ranked documents holding each hub: a bitmap, or its sorted ranks where smaller.

    A hub in more than ``dense_share`` of the ``num_docs`` documents is a row of bits
    (``num_docs / 8`` bytes); any other hub is its ranks, ascending, 4 bytes each. A bitmap
    costs less than ``1 / (8 * dense_share)`` bytes per member (4 at 1/32), so the whole
    takes at most 4 bytes per (document, hub) pair: linear in the corpus, where one bitmap
    per hub grows as hubs x documents.
    """

    def __init__(self, hub, rank, num_hubs: int, num_docs: int, dense_share: float):
        import numpy as np

        df = np.bincount(hub, minlength=num_hubs)
        self.dense = df > dense_share * num_docs
        self.row = np.cumsum(self.dense) - 1  # a dense hub's bitmap row
        width = max(1, -(-num_docs // 64))
        dense_pairs = self.dense[hub]
        h, r = hub[dense_pairs], rank[dense_pairs]
        self.bitmaps = np.zeros((int(self.dense.sum()), width), dtype=np.uint64)
        # (hub, rank) pairs are distinct, so adding the bits of one word ORs them.
        np.add.at(
            self.bitmaps,
            (self.row[h], r >> 6),
            np.left_shift(np.uint64(1), (r & 63).astype(np.uint64)),
        )
        h, r = hub[~dense_pairs], rank[~dense_pairs]
        self.ranks = r[np.lexsort((r, h))].astype(np.int32)  # by hub, ranks ascending
        self.ptr = np.zeros(num_hubs + 1, dtype=np.int64)
        np.cumsum(np.where(self.dense, 0, df), out=self.ptr[1:])

    @property
    def nbytes(self) -> int:
        return self.bitmaps.nbytes + self.ranks.nbytes + self.ptr.nbytes

    def first_common(self, hubs: list[int], k: int) -> list[int]:
        """The ``k`` lowest ranks held by every hub in ``hubs`` (fewer if not)."""
        import numpy as np

        sparse = [h for h in hubs if not self.dense[h]]
        if not sparse:
            return first_set_bits(self.bitmaps, [int(self.row[h]) for h in hubs], k)
        # The sparsest hub's ranks, ascending, tested against the others: the first k left.
        base = min(sparse, key=lambda h: self.ptr[h + 1] - self.ptr[h])
        keep = self.ranks[self.ptr[base] : self.ptr[base + 1]].astype(np.int64)
        for h in hubs:
            if h == base or keep.size == 0:
                continue
            if self.dense[h]:
                bits = self.bitmaps[self.row[h], keep >> 6] >> (keep & 63).astype(np.uint64)
                keep = keep[(bits & np.uint64(1)).astype(bool)]
            else:
                theirs = self.ranks[self.ptr[h] : self.ptr[h + 1]]
                at = np.searchsorted(theirs, keep)
                keep = keep[(at < theirs.size) & (theirs[np.minimum(at, theirs.size - 1)] == keep)]
        return keep[:k].tolist()


def first_set_bits(bitmaps, rows: list[int], k: int) -> list[int]:
    """The ``k`` lowest bit positions set in every one of ``bitmaps[rows]`` (fewer if not).

    Reads windows of 64, 128, 256... words from the low end, so bits that come early cost
    little; a word holds bits ``64 * w`` (lowest) to ``64 * w + 63``.
    """
    found: list[int] = []
    words, lo, step = bitmaps.shape[1], 0, 64
    while lo < words and len(found) < k:
        hi = min(words, lo + step)
        acc = bitmaps[rows[0], lo:hi].copy()
        for r in rows[1:]:
            acc &= bitmaps[r, lo:hi]
        for w in acc.nonzero()[0][: k - len(found)]:
            word = int(acc[w])
            while word and len(found) < k:
                low = word & -word
                found.append((lo + int(w)) * 64 + low.bit_length() - 1)
                word ^= low
        lo, step = hi, step * 2
    return found
