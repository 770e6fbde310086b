"""The walks' graph streamed from Spark to the driver (jobs.graph.entries)."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from jobs.graph import entries
from jobs.graph.adjacency import KINDS, build_adjacency
from jobs.graph.entries import walk_adjacency

VSCHEMA = "id string, name string, kind string, doc_freq long"
ESCHEMA = "src string, dst string, kind string, freq long, weight double"


def _graph(seed: int = 5, n_topics: int = 12, n_concepts: int = 30):
    rng = random.Random(seed)
    topics = [f"t:{i:02d}" for i in range(n_topics)]
    concepts = [f"c:{i:02d}" for i in range(n_concepts)]
    edges = []
    for pool, kind, count in ((topics, "topic_topic", 25), (concepts, "concept_concept", 90)):
        for _ in range(count):
            a, b = sorted(rng.sample(pool, 2))
            edges.append((a, b, kind, rng.randint(1, 9)))
    edges += [
        (t, c, "topic_concept", rng.randint(1, 9)) for t in topics for c in rng.sample(concepts, 3)
    ]
    edges.append(edges[0])  # a parallel edge: merged, its freqs summed
    edges.append(("t:00", "t:01", "mentions", 4))  # a kind the walks do not take
    return sorted(topics + concepts), edges


def _reference(ids, edges, eps):
    """build_adjacency on the same graph numbered in Python: ids in byte order."""
    number = {i: n for n, i in enumerate(ids)}
    kept = [e for e in edges if e[2] in KINDS]
    nodes = pa.table({"id": ids, "topic": [i.startswith("t:") for i in ids]})
    table = pa.table({
        "s": pa.array([number[e[0]] for e in kept], pa.int32()),
        "d": pa.array([number[e[1]] for e in kept], pa.int32()),
        "k": pa.array([KINDS.index(e[2]) for e in kept], pa.int8()),
        "freq": [float(e[3]) for e in kept],
    })  # fmt: skip
    return build_adjacency(nodes, table, eps)


@pytest.mark.parametrize(
    ("collect", "records", "chunk", "partition"),
    [(1 << 25, 10_000, 1 << 20, 1 << 22), (0, 10_000, 1 << 20, 1 << 22), (0, 3, 5, 40)],
    ids=["collected", "streamed", "streamed-in-small-pieces"],
)
def test_streamed_graph_equals_the_one_built_in_memory(
    spark, monkeypatch, collect, records, chunk, partition
):
    # The last case: Arrow batches of 3 rows, chunks of 5+, a partition per ~40 entries.
    ids, edges = _graph()
    monkeypatch.setattr(entries, "COLLECT_MAX_ENTRIES", collect)
    monkeypatch.setattr(entries, "CHUNK_ENTRIES", chunk)
    monkeypatch.setattr(entries, "PARTITION_ENTRIES", partition)
    vertices = spark.createDataFrame(
        [(i, i, "topic" if i[0] == "t" else "concept", 1) for i in ids], VSCHEMA
    )
    edge_df = spark.createDataFrame([(*e, 0.0) for e in edges], ESCHEMA).repartition(3)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(records))
    try:
        got = walk_adjacency(vertices, edge_df, 0.5)
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    want = _reference(ids, edges, 0.5)
    assert got.ids.to_pylist() == ids and got.topics.tolist() == want.topics.tolist()
    for kind in KINDS:
        g, w = got.csr[kind], want.csr[kind]
        assert g.indptr.tolist() == w.indptr.tolist(), kind
        assert g.nbr.tolist() == w.nbr.tolist(), kind
        assert g.cum.tolist() == w.cum.tolist(), kind  # halves: exact sums either way
    pairs = {(e[0], e[1]) for e in edges if e[2] == "topic_topic"}
    assert got.csr["topic_topic"].nbr.size == 2 * len(pairs) < 2 * 26  # parallel ones merged


@pytest.mark.parametrize("collect", [1 << 25, 0], ids=["collected", "streamed"])
def test_an_empty_graph_gives_empty_csrs(spark, monkeypatch, collect):
    monkeypatch.setattr(entries, "COLLECT_MAX_ENTRIES", collect)
    vertices = spark.createDataFrame([("t:a", "a", "topic", 1)], VSCHEMA)
    adj = walk_adjacency(vertices, spark.createDataFrame([], ESCHEMA), 0.01)
    assert adj.ids.to_pylist() == ["t:a"] and adj.topics.tolist() == [0]
    for csr in adj.csr.values():
        assert csr.nbr.size == 0 and csr.cum.tolist() == [0.0] and csr.indptr.tolist() == [0, 0]
