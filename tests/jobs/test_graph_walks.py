"""The Level-3 walk sampler (jobs.graph.walks) and the benchmark's Python reference walker."""

from __future__ import annotations

import importlib.util
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from scipy.stats import chisquare

from jobs.graph.walks import END_REASONS, WalkParams, sample_walks

REPO = Path(__file__).resolve().parents[2]
VSCHEMA = "id string, name string, kind string, doc_freq long"
ESCHEMA = "src string, dst string, kind string, freq long, weight double"

# Start topic t:z: topic neighbours t:a (freq 2) and t:b (freq 5), stored with t:z as dst so
# the walk must use the reverse direction; concept neighbours with freq 1, 3, 6.
RACE_EDGES = [
    ("t:a", "t:z", "topic_topic", 2),
    ("t:b", "t:z", "topic_topic", 5),
    ("t:z", "c:1", "topic_concept", 1),
    ("t:z", "c:3", "topic_concept", 3),
    ("t:z", "c:6", "topic_concept", 6),
]
RACE_PARAMS = dict(num_epochs=1000, topic_steps=(1, 1), concept_steps=(0, 0),
                   concept_start="start", eps=0.01)  # fmt: skip


def _graph(spark, edges, extra_topics=()):
    ids = sorted({e[0] for e in edges} | {e[1] for e in edges} | set(extra_topics))
    vertices = [(i, i, "topic" if i.startswith("t:") else "concept", 1) for i in ids]
    rows = [(s, d, k, f, 0.0) for s, d, k, f in edges]
    return spark.createDataFrame(vertices, VSCHEMA), spark.createDataFrame(rows, ESCHEMA)


def _walks(spark, edges, extra_topics=(), **params):
    vertices, edge_df = _graph(spark, edges, extra_topics)
    return sample_walks(vertices, edge_df, WalkParams(**params)).collect()


def _first_steps(walks):
    """Counts of the first topic step and the first concept of the walks from t:z."""
    from_z = [(w[2], w[3]) for w in walks if w[1] == "t:z"]
    return Counter(t[1] for t, _ in from_z), Counter(c[0] for _, c in from_z)


def _check_proportional(topic_counts, concept_counts):
    for counts, freqs in ((topic_counts, {"t:a": 2, "t:b": 5}),
                          (concept_counts, {"c:1": 1, "c:3": 3, "c:6": 6})):  # fmt: skip
        observed = [counts[k] for k in freqs]
        assert sum(observed) == sum(counts.values())  # nothing outside the neighbours
        total = sum(observed)
        weights = [f + 0.01 for f in freqs.values()]
        expected = [total * w / sum(weights) for w in weights]
        assert chisquare(observed, expected).pvalue > 0.001, (observed, expected)
        # The test can fail: the same counts reject a uniform choice.
        assert chisquare(observed, [total / len(freqs)] * len(freqs)).pvalue < 0.001


def test_steps_are_drawn_in_proportion_to_freq_plus_eps(spark):
    rows = _walks(spark, RACE_EDGES, **RACE_PARAMS)
    walks = [(r.epoch, r.start_topic, r.topics, r.concepts) for r in rows]
    assert len(walks) == 3 * 1000
    assert len({r.walk_id for r in rows}) == len(rows)
    _check_proportional(*_first_steps(walks))


def _random_graph(seed=3, n_topics=15, n_concepts=40):
    rng = random.Random(seed)
    topics = [f"t:{i:02d}" for i in range(n_topics)]
    concepts = [f"c:{i:02d}" for i in range(n_concepts)]
    edges = set()
    for pool, kind, count in ((topics, "topic_topic", 30), (concepts, "concept_concept", 120)):
        while sum(1 for e in edges if e[2] == kind) < count:
            a, b = sorted(rng.sample(pool, 2))
            edges.add((a, b, kind))
    for t in topics[:-2]:  # the last two topics have no concept edge
        for c in rng.sample(concepts, 4):
            edges.add((t, c, "topic_concept"))
    return [(s, d, k, rng.randint(1, 9)) for s, d, k in sorted(edges)], topics


def test_same_seed_same_walks_whatever_the_partitioning(spark):
    edges, topics = _random_graph()
    params = WalkParams(
        seed=11, num_epochs=2, topic_steps=(1, 1), concept_steps=(1, 1), concept_start="random"
    )
    vertices, edge_df = _graph(spark, edges, topics)
    base = sorted(sample_walks(vertices.coalesce(1), edge_df.coalesce(1), params).collect())

    shuffled = edges[:]
    random.Random(0).shuffle(shuffled)
    vertices2, edge_df2 = _graph(spark, shuffled, topics[::-1])
    old = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "7")
    try:
        other = sample_walks(vertices2.repartition(7), edge_df2.repartition(7), params).collect()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", old)
    assert base == sorted(other)
    assert len(base) == 2 * len(topics)
    reseeded = sample_walks(vertices, edge_df, replace(params, seed=12)).collect()
    assert sorted((r.topics, r.concepts) for r in reseeded) != sorted(
        (r.topics, r.concepts) for r in base
    )


def _clique(prefix: str, kind: str, n: int, freq: int = 1) -> list[tuple]:
    nodes = [f"{prefix}{i}" for i in range(n)]
    return [(a, b, kind, freq) for i, a in enumerate(nodes) for b in nodes[i + 1 :]]


CLIQUE_T = [f"t:k{i}" for i in range(4)]
CLIQUE_C = [f"c:k{i}" for i in range(6)]


@pytest.fixture(scope="module")
def long_walks(spark):
    """Long walks on the random graph plus a 4-topic, 6-concept clique."""
    edges, topics = _random_graph()
    clique = _clique("t:k", "topic_topic", 4) + _clique("c:k", "concept_concept", 6)
    clique += [(t, "c:k0", "topic_concept", 1) for t in CLIQUE_T]
    params = dict(seed=5, num_epochs=3, topic_steps=(3, 4), concept_steps=(5, 6))
    rows = _walks(spark, edges + clique, topics, concept_start="random", **params)
    return edges + clique, rows


def test_walks_follow_edges_and_never_revisit(long_walks):
    edges, rows = long_walks
    linked = {(s, d) for s, d, _, _ in edges} | {(d, s) for s, d, _, _ in edges}
    for r in rows:
        assert len(set(r.topics)) == len(r.topics) and len(set(r.concepts)) == len(r.concepts)
        assert r.topics[0] == r.start_topic and all(t.startswith("t:") for t in r.topics)
        assert all(c.startswith("c:") for c in r.concepts)
        assert all(pair in linked for pair in zip(r.topics, r.topics[1:], strict=False))
        assert all(pair in linked for pair in zip(r.concepts, r.concepts[1:], strict=False))
        if r.concepts:  # the first concept hangs off one of the walk's topics
            assert any((t, r.concepts[0]) in linked for t in r.topics)
    assert {r.end_reason for r in rows} <= set(END_REASONS)


def test_a_clique_is_walked_exhaustively(long_walks):
    _, rows = long_walks
    clique = [r for r in rows if r.start_topic in CLIQUE_T]
    assert len(clique) == 4 * 3
    for r in clique:  # 3+ topic steps and 5+ concept steps, never onto a visited node
        assert sorted(r.topics) == CLIQUE_T and sorted(r.concepts) == CLIQUE_C
    # A 4th topic step dead-ends; that reason is kept although the concept part then runs.
    assert "topic_dead_end" in {r.end_reason for r in clique}


DEAD_ENDS = [
    ("t:lonely", "c:l1", "topic_concept", 1),  # no topic neighbour; a 5-concept chain
    ("c:l1", "c:l2", "concept_concept", 1),
    ("c:l2", "c:l3", "concept_concept", 1),
    ("c:l3", "c:l4", "concept_concept", 1),
    ("c:l4", "c:l5", "concept_concept", 1),
    ("t:p", "t:q", "topic_topic", 1),  # a topic chain without any concept
    ("t:q", "t:r", "topic_topic", 1),
    ("t:s", "t:u", "topic_topic", 1),  # a topic chain; t:u and t:v reach a 2-concept chain
    ("t:u", "t:v", "topic_topic", 1),
    ("t:u", "c:e1", "topic_concept", 1),
    ("t:v", "c:e1", "topic_concept", 1),
    ("c:e1", "c:e2", "concept_concept", 1),
]


@pytest.fixture(scope="module")
def default_walks(spark):
    """Default parameters on a dense component and the dead-end shapes above."""
    dense = _clique("t:d", "topic_topic", 8, 2) + _clique("c:d", "concept_concept", 12)
    dense += [(f"t:d{i}", f"c:d{j}", "topic_concept", 3) for i in range(8) for j in range(3)]
    return _walks(spark, dense + DEAD_ENDS, ["t:iso"], num_epochs=6)


def test_dead_ends(default_walks):
    by_start: dict[str, set] = {}
    for r in default_walks:
        by_start.setdefault(r.start_topic, set()).add(
            (tuple(r.topics[:2]), tuple(r.concepts[:4]), r.end_reason)
        )
    assert by_start["t:lonely"] == {
        (("t:lonely",), ("c:l1", "c:l2", "c:l3", "c:l4"), "topic_dead_end")
    }
    assert by_start["t:iso"] == {(("t:iso",), (), "topic_dead_end")}
    assert by_start["t:p"] == {(("t:p", "t:q"), (), "no_concept")}
    assert by_start["t:r"] == {(("t:r", "t:q"), (), "no_concept")}
    assert by_start["t:s"] == {(("t:s", "t:u"), ("c:e1", "c:e2"), "concept_dead_end")}


def test_step_counts_cover_the_configured_ranges(default_walks):
    dense = [r for r in default_walks if r.start_topic.startswith("t:d")]
    assert len(dense) == 8 * 6
    assert {r.end_reason for r in dense} == {"complete"}
    assert Counter(len(r.topics) - 1 for r in dense).keys() == {1, 2}
    assert Counter(len(r.concepts) - 1 for r in dense).keys() == {3, 4}


def test_walk_params_are_validated():
    for bad in ({"num_epochs": 0}, {"topic_steps": (2, 1)}, {"concept_steps": (-1, 2)},
                {"concept_start": "first"}, {"eps": -1.0}, {"seed": 1.5}):  # fmt: skip
        with pytest.raises(ValueError):
            WalkParams(**bad)
    assert WalkParams(topic_steps=[1, 3]).topic_steps == (1, 3)


def _bench():
    spec = importlib.util.spec_from_file_location("bench_walks", REPO / "benchmarks" / "walks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_walker_draws_in_proportion_too():
    bench = _bench()
    edges = {k: [e[i] for e in RACE_EDGES] for i, k in enumerate(("src", "dst", "kind", "freq"))}
    walks = bench.reference_walks(edges, ["t:a", "t:b", "t:z"], WalkParams(**RACE_PARAMS))
    _check_proportional(*_first_steps(walks))


def test_benchmark_graph_is_deterministic_and_heavy_tailed():
    bench = _bench()
    vertices, edges = bench.generate_graph(3000, seed=1)
    assert bench.generate_graph(3000, seed=1)[1] == edges
    assert len(edges["src"]) == 3000 == len(set(zip(edges["src"], edges["dst"], strict=True)))
    assert set(edges["kind"]) == {"topic_topic", "topic_concept", "concept_concept"}
    degree = Counter(edges["src"]) + Counter(edges["dst"])
    assert max(degree.values()) > 10 * (2 * 3000 / len(vertices["id"]))
