"""The co-occurrence graph (jobs.graph.cooccurrence) on a hand-computed three-document example."""

from __future__ import annotations

import json
import math

import pytest

from jobs.graph.cooccurrence import GraphParams, build_graph, graph_stats

# d1: t:a lists c:x, c:y; t:b lists c:y (again), c:z.  d2: t:a lists c:x; t:c has no concepts.
# d3: t:b lists c:z.  Display names differ in case for t:a so the min choice is visible.
ROWS = [
    ("d1", "t:a", "Algebra", "c:x", "x"),
    ("d1", "t:a", "Algebra", "c:y", "y"),
    ("d1", "t:b", "Bases", "c:y", "y"),
    ("d1", "t:b", "Bases", "c:z", "z"),
    ("d2", "t:a", "algebra", "c:x", "x"),
    ("d2", "t:c", "Calculus", None, None),
    ("d3", "t:b", "Bases", "c:z", "z"),
]
SCHEMA = "doc_id string, topic_id string, topic string, concept_id string, concept string"

# Every pair of nodes sharing a document, with the number of documents they share.
EDGES = {
    ("t:a", "t:b", "topic_topic"): 1,
    ("t:a", "t:c", "topic_topic"): 1,
    ("t:a", "c:x", "topic_concept"): 2,
    ("t:a", "c:y", "topic_concept"): 1,
    ("t:a", "c:z", "topic_concept"): 1,  # c:z is listed under t:b, but shares d1 with t:a
    ("t:b", "c:x", "topic_concept"): 1,
    ("t:b", "c:y", "topic_concept"): 1,
    ("t:b", "c:z", "topic_concept"): 2,
    ("t:c", "c:x", "topic_concept"): 1,
    ("c:x", "c:y", "concept_concept"): 1,
    ("c:x", "c:z", "concept_concept"): 1,
    ("c:y", "c:z", "concept_concept"): 1,
}


@pytest.fixture(scope="module")
def doc_concepts(spark):
    from pyspark.sql import functions as F

    # Extra columns ride along and must be ignored.
    return spark.createDataFrame(ROWS, SCHEMA).withColumn("edu_level", F.lit("College"))


def _edges(df) -> dict:
    return {(r.src, r.dst, r.kind): r.freq for r in df.collect()}


def test_vertices_and_edges_match_hand_count(doc_concepts):
    vertices, edges, pruned = build_graph(doc_concepts, GraphParams(eps=0.5))
    got = {r.id: (r.kind, r.name, r.doc_freq) for r in vertices.collect()}
    assert got == {
        "t:a": ("topic", "Algebra", 2),
        "t:b": ("topic", "Bases", 2),
        "t:c": ("topic", "Calculus", 1),
        "c:x": ("concept", "x", 2),
        "c:y": ("concept", "y", 1),  # listed under two topics of d1, counted once
        "c:z": ("concept", "z", 2),
    }
    assert _edges(edges) == EDGES
    for r in edges.collect():
        assert r.weight == pytest.approx(math.log(r.freq + 0.5))
    assert pruned == {"vertices_below_min_doc_freq": 0, "edges_over_max_degree": 0}
    assert dict(vertices.dtypes) == {"id": "string", "name": "string", "kind": "string",
                                     "doc_freq": "bigint"}  # fmt: skip
    assert edges.dtypes == [("src", "string"), ("dst", "string"), ("kind", "string"),
                            ("freq", "bigint"), ("weight", "double")]  # fmt: skip


def test_pair_counts_match_a_brute_force_count_on_random_documents(spark):
    """Numbered nodes and packed pairs count exactly what a pairwise loop over each
    document counts: random documents, repeated listings, ids that sort apart from their
    kinds, and a node numbered past 2^16 paired with one numbered below it."""
    import itertools
    import random

    rng = random.Random(5)
    topics = [f"topic:{i:03d}" for i in range(12)]
    concepts = [f"concept:{w}" for w in ("Zeta", "alpha", "é-ring", "10", "9", "β", "a b")]
    rows = []
    for d in range(80):
        for t in rng.sample(topics, rng.randint(1, 3)):
            for c in rng.choices(concepts + [None], k=rng.randint(1, 4)):  # repeats, nulls
                rows.append((f"d{d}", t, t, c, c))
    rows.append(("dlast", "topic:zz-last", "z", "concept:alpha", "alpha"))
    pads = 70_000  # one-node documents: their numbers push topic:zz-last's past 2^16
    frame = spark.createDataFrame(rows, SCHEMA).unionByName(
        spark.range(pads).selectExpr(
            "concat('pad', id) AS doc_id",
            "concat('topic:pad', lpad(id, 6, '0')) AS topic_id",
            "'p' AS topic",
            "CAST(NULL AS string) AS concept_id",
            "CAST(NULL AS string) AS concept",
        )
    )
    nodes: dict[str, set] = {f"pad{i}": {f"topic:pad{i:06d}"} for i in range(pads)}
    for doc, t, _, c, _ in rows:
        nodes.setdefault(doc, set()).update(x for x in (t, c) if x)
    want: dict = {}
    for ids in nodes.values():
        for a, b in itertools.combinations(sorted(ids), 2):
            kinds = (a.split(":")[0], b.split(":")[0])
            kind = "topic_concept" if kinds[0] != kinds[1] else f"{kinds[0]}_{kinds[1]}"
            src, dst = (b, a) if kinds == ("concept", "topic") else (a, b)
            want[src, dst, kind] = want.get((src, dst, kind), 0) + 1
    vertices, edges, _ = build_graph(frame, GraphParams())
    assert _edges(edges) == want
    assert vertices.count() == len(set().union(*nodes.values())) > 2**16


def test_names_default_to_ids_without_name_columns(doc_concepts):
    vertices, _, _ = build_graph(doc_concepts.drop("topic", "concept"), GraphParams())
    assert {r.id: r.name for r in vertices.collect()}["t:a"] == "t:a"


def test_min_doc_freq_prunes_nodes_and_their_edges(doc_concepts):
    vertices, edges, pruned = build_graph(doc_concepts, GraphParams(min_doc_freq=2))
    assert sorted(r.id for r in vertices.collect()) == ["c:x", "c:z", "t:a", "t:b"]
    dropped = {"t:c", "c:y"}
    assert _edges(edges) == {k: v for k, v in EDGES.items() if not dropped & set(k[:2])}
    assert pruned["vertices_below_min_doc_freq"] == 2


def _degrees(edges: dict) -> dict:
    """``{(node, kind): degree}`` of an edge dict from :func:`_edges`."""
    out: dict = {}
    for src, dst, kind in edges:
        for node in (src, dst):
            out[node, kind] = out.get((node, kind), 0) + 1
    return out


def test_max_degree_keeps_edges_either_end_ranks_within_the_cap(doc_concepts):
    _, edges, pruned = build_graph(doc_concepts, GraphParams(max_degree=1))
    got = _edges(edges)
    # Each end's strongest edge of each kind, where no tie decides it: t:a's and c:x's
    # (t:a, c:x) and t:b's and c:z's (t:b, c:z), freq 2; t:c has one edge of each kind, and
    # t:b one topic edge. Ranking on both ends would cut (t:c, c:x) and (t:a, t:c): t:a and
    # c:x prefer others, and t:c would be left without edges.
    assert {
        ("t:a", "c:x", "topic_concept"),
        ("t:b", "c:z", "topic_concept"),
        ("t:c", "c:x", "topic_concept"),
        ("t:a", "t:b", "topic_topic"),
        ("t:a", "t:c", "topic_topic"),
    } <= set(got)
    # c:y picks one of its two freq-1 topic edges; t:a and t:b rank it below their freq-2 one.
    assert len({("t:a", "c:y", "topic_concept"), ("t:b", "c:y", "topic_concept")} & set(got)) == 1
    # The concept triangle is all ties: three picks of one edge each cover two or three edges.
    assert 2 <= sum(k == "concept_concept" for *_, k in got) <= 3
    # Every node keeps min(cap, degree) of each kind: its own pick.
    assert all(_degrees(got).get(key, 0) >= 1 for key in _degrees(EDGES))
    assert pruned["edges_over_max_degree"] == len(EDGES) - len(got)


def test_max_degree_keeps_a_leafs_only_edge_to_a_hub(spark):
    # t:h lists c:0..c:5 in two documents (freq 2 each); c:leaf shares only d-leaf with t:h.
    rows = [(d, "t:h", "Hub", f"c:{i}", str(i)) for d in ("h1", "h2") for i in range(6)]
    rows.append(("d-leaf", "t:h", "Hub", "c:leaf", "leaf"))
    _, edges, _ = build_graph(spark.createDataFrame(rows, SCHEMA), GraphParams(max_degree=2))
    got = _edges(edges)
    assert got[("t:h", "c:leaf", "topic_concept")] == 1  # the leaf's top-1, the hub's last
    assert _degrees(got)["c:leaf", "topic_concept"] == 1
    # The hub keeps its own two picks and every edge a neighbour picked: here all seven.
    assert _degrees(got)["t:h", "topic_concept"] == 7


def test_max_degree_breaks_ties_by_a_seeded_hash_not_by_id(spark):
    # One document listing twelve concepts: a clique of equal freq-1 concept edges.
    ids = [f"c:{i:02d}" for i in range(12)]
    rows = [("d1", "t:q", "Q", c, c) for c in ids]
    doc_concepts = spark.createDataFrame(rows, SCHEMA)

    def survivors(**params) -> set:
        _, edges, _ = build_graph(doc_concepts, GraphParams(max_degree=3, **params))
        got = _edges(edges)
        return {(s, d) for s, d, kind in got if kind == "concept_concept"}

    kept = survivors()
    # Ties broken by id keep only edges touching c:00..c:02 (every node picks those three).
    first = set(ids[:3])
    assert any(not ({s, d} & first) for s, d in kept)
    assert sorted(_degrees({(s, d, "cc") for s, d in kept}).values())[0] >= 3  # own picks
    assert len(kept) <= 3 * len(ids)
    assert survivors() == kept  # deterministic at a fixed seed
    assert survivors(seed=1) == survivors(seed=1) != kept  # the seed picks other ties


def test_params_are_validated():
    for bad in ({"eps": -0.1}, {"eps": math.nan}, {"min_doc_freq": 0}, {"max_degree": 0},
                {"max_degree": 2.5}, {"seed": "7"}, {"seed": True}):  # fmt: skip
        with pytest.raises(ValueError):
            GraphParams(**bad)


def test_graph_stats_on_the_example(doc_concepts):
    vertices, edges, _ = build_graph(doc_concepts, GraphParams())
    stats = graph_stats(vertices, edges)
    json.dumps(stats)
    assert stats["vertices"] == {"topic": 3, "concept": 3}
    assert stats["edges"] == {"topic_topic": 2, "topic_concept": 7, "concept_concept": 3}
    # Degrees: t:a 5, t:b 4, t:c 2, c:x 5, c:y 4, c:z 4 -> sorted [2, 4, 4, 4, 5, 5].
    assert stats["degree"] == {"min": 2, "max": 5, "mean": 4.0, "p50": 4.0, "p90": 5.0,
                               "p99": 5.0, "histogram": [[2, 1], [4, 5]]}  # fmt: skip
    assert stats["components"] == {"count": 1, "largest_size": 6, "largest_share": 1.0,
                                   "largest_sizes": [6]}  # fmt: skip


def test_graph_stats_counts_isolated_vertices_and_components(spark):
    vertices = spark.createDataFrame(
        [(i, i, "topic" if i.startswith("t") else "concept", 1)
         for i in ("t:a", "t:b", "c:x", "c:y", "c:z", "c:q")],
        "id string, name string, kind string, doc_freq long",
    )  # fmt: skip
    edges = spark.createDataFrame(
        [("t:a", "t:b", "topic_topic", 1, 0.0), ("t:a", "c:x", "topic_concept", 1, 0.0),
         ("c:y", "c:z", "concept_concept", 1, 0.0)],
        "src string, dst string, kind string, freq long, weight double",
    )  # fmt: skip
    stats = graph_stats(vertices, edges)
    # Degrees: t:a 2, t:b 1, c:x 1, c:y 1, c:z 1, c:q 0 -> sorted [0, 1, 1, 1, 1, 2].
    degree = stats["degree"]
    assert (degree["min"], degree["max"], degree["mean"]) == (0, 2, 1.0)
    assert (degree["p50"], degree["p90"]) == (1.0, 1.5)
    assert degree["p99"] == pytest.approx(1.95)
    assert degree["histogram"] == [[0, 1], [1, 4], [2, 1]]
    assert stats["components"] == {"count": 3, "largest_size": 3, "largest_share": 0.5,
                                   "largest_sizes": [3, 2, 1]}  # fmt: skip


@pytest.mark.parametrize("min_doc_freq", [1, 2])
def test_spanning_edges_give_the_components_of_the_whole_graph(spark, min_doc_freq):
    """Documents over four disjoint groups of nodes, some bridged, some nodes in one
    document only (pruned at min_doc_freq 2, which can split a group): a chain per document
    connects exactly what its clique connects."""
    import random
    from collections import Counter

    from jobs.graph.cooccurrence import spanning_edges

    rng = random.Random(11)
    groups = [[f"c:{g}{i}" for i in range(6)] for g in "pqrs"]
    rows = []
    for d in range(40):
        group = groups[d % 3]  # group s only through the bridges below
        for c in rng.sample(group, rng.randint(1, 3)):
            rows.append((f"d{d}", f"t:{d % 3}", "t", c, c))
    rows += [("b1", "t:0", "t", "c:s0", "s"), ("b2", "t:9", "t", "c:s1", "s")]
    frame = spark.createDataFrame(rows, SCHEMA)
    vertices, edges, _ = build_graph(frame, GraphParams(min_doc_freq=min_doc_freq))
    vertices, edges = vertices.checkpoint(), edges.checkpoint()  # as the job does
    links = spanning_edges(frame, vertices)
    per_doc = Counter(d for d, _ in {(r[0], x) for r in rows for x in (r[1], r[3])})
    assert links.count() == sum(n - 1 for n in per_doc.values()) if min_doc_freq == 1 else True
    whole = graph_stats(vertices, edges)["components"]
    assert whole["count"] >= 2  # t:9's document and the rest, at least
    assert graph_stats(vertices, edges, links)["components"] == whole


def test_graph_stats_on_an_empty_graph(spark):
    vertices = spark.createDataFrame([], "id string, name string, kind string, doc_freq long")
    edges = spark.createDataFrame(
        [], "src string, dst string, kind string, freq long, weight double"
    )
    stats = graph_stats(vertices, edges)
    assert json.loads(json.dumps(stats)) == {
        "vertices": {"topic": 0, "concept": 0},
        "edges": {"topic_topic": 0, "topic_concept": 0, "concept_concept": 0},
        "degree": {"min": 0, "max": 0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0,
                   "histogram": []},
        "components": {"count": 0, "largest_size": 0, "largest_share": 0.0, "largest_sizes": []},
    }  # fmt: skip
