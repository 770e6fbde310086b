"""The Level-3 walk sampler (jobs.graph.walks) and the benchmark's Python reference walker."""

from __future__ import annotations

import importlib.util
import random
from collections import Counter
from pathlib import Path

import pytest
from scipy.stats import chisquare

from jobs.graph.walks import WalkParams, sample_walks

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
RACE_PARAMS = dict(num_epochs=1500, topic_steps=(1, 1), concept_steps=(0, 0),
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
    assert len(walks) == 3 * 1500
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
    params = WalkParams(seed=11, num_epochs=3, concept_start="random")
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
    assert len(base) == 3 * len(topics)
    reseeded = sample_walks(vertices, edge_df, WalkParams(seed=12, num_epochs=3)).collect()
    assert sorted((r.topics, r.concepts) for r in reseeded) != sorted(
        (r.topics, r.concepts) for r in base
    )


def test_walks_follow_edges_and_never_revisit(spark):
    edges, topics = _random_graph()
    rows = _walks(spark, edges, topics, seed=5, num_epochs=4, topic_steps=(2, 6),
                  concept_steps=(4, 12), concept_start="random")  # fmt: skip
    linked = {(s, d) for s, d, _, _ in edges} | {(d, s) for s, d, _, _ in edges}
    for r in rows:
        assert len(set(r.topics)) == len(r.topics) and len(set(r.concepts)) == len(r.concepts)
        assert r.topics[0] == r.start_topic and all(t.startswith("t:") for t in r.topics)
        assert all(pair in linked for pair in zip(r.topics, r.topics[1:], strict=False))
        assert all(pair in linked for pair in zip(r.concepts, r.concepts[1:], strict=False))
        if r.concepts:
            assert any((t, r.concepts[0]) in linked for t in r.topics)
    assert {r.end_reason for r in rows} >= {"complete", "no_concept", "concept_dead_end"}


def test_a_small_clique_is_walked_exhaustively_without_revisits(spark):
    topics, concepts = ["t:0", "t:1", "t:2", "t:3"], ["c:0", "c:1", "c:2", "c:3", "c:4", "c:5"]
    edges = [(a, b, "topic_topic", 1) for i, a in enumerate(topics) for b in topics[i + 1 :]]
    edges += [
        (a, b, "concept_concept", 1) for i, a in enumerate(concepts) for b in concepts[i + 1 :]
    ]
    edges += [(t, "c:0", "topic_concept", 1) for t in topics]
    rows = _walks(spark, edges, num_epochs=3, topic_steps=(3, 3), concept_steps=(5, 5))
    for r in rows:  # visiting every node needs every step to avoid all visited ones
        assert sorted(r.topics) == topics and sorted(r.concepts) == concepts
        assert r.end_reason == "complete"
    rows = _walks(spark, edges, num_epochs=1, topic_steps=(4, 4), concept_steps=(6, 6))
    assert {(len(r.topics), len(r.concepts), r.end_reason) for r in rows} == {
        (4, 6, "topic_dead_end")  # the topic dead end is met first and kept
    }


def test_dead_ends(spark):
    edges = [
        ("t:lonely", "c:l1", "topic_concept", 1),  # no topic neighbour, a 5-concept chain
        ("c:l1", "c:l2", "concept_concept", 1),
        ("c:l2", "c:l3", "concept_concept", 1),
        ("c:l3", "c:l4", "concept_concept", 1),
        ("c:l4", "c:l5", "concept_concept", 1),
        ("t:p", "t:q", "topic_topic", 1),  # neither has a concept
        ("t:r", "t:s", "topic_topic", 1),
        ("t:r", "c:d1", "topic_concept", 1),  # only t:r has a concept, a 2-concept chain
        ("c:d1", "c:d2", "concept_concept", 1),
    ]
    rows = _walks(spark, edges, ["t:iso"], num_epochs=2, topic_steps=(1, 1))
    got = {(r.start_topic, tuple(r.topics), tuple(r.concepts)[:4], r.end_reason) for r in rows}
    assert got == {
        ("t:lonely", ("t:lonely",), ("c:l1", "c:l2", "c:l3", "c:l4"), "topic_dead_end"),
        ("t:iso", ("t:iso",), (), "topic_dead_end"),
        ("t:p", ("t:p", "t:q"), (), "no_concept"),
        ("t:q", ("t:q", "t:p"), (), "no_concept"),
        ("t:s", ("t:s", "t:r"), ("c:d1", "c:d2"), "concept_dead_end"),
        ("t:r", ("t:r", "t:s"), (), "no_concept"),  # 'last': the step starts from t:s
    }
    start = _walks(spark, edges, num_epochs=1, topic_steps=(1, 1), concept_start="start")
    assert {r.start_topic: r.concepts for r in start}["t:r"] == ["c:d1", "c:d2"]


def test_step_counts_cover_the_configured_ranges(spark):
    topics = [f"t:{i}" for i in range(8)]
    concepts = [f"c:{i}" for i in range(12)]
    edges = [(a, b, "topic_topic", 2) for i, a in enumerate(topics) for b in topics[i + 1 :]]
    edges += [
        (a, b, "concept_concept", 1) for i, a in enumerate(concepts) for b in concepts[i + 1 :]
    ]
    edges += [(t, c, "topic_concept", 3) for t in topics for c in concepts[:3]]
    rows = _walks(spark, edges, num_epochs=8)
    assert {r.end_reason for r in rows} == {"complete"}
    assert Counter(len(r.topics) - 1 for r in rows).keys() == {1, 2}
    assert Counter(len(r.concepts) - 1 for r in rows).keys() == {3, 4}


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
