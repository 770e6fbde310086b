"""The Level-3 walk sampler (jobs.graph.walks) and the benchmark's Python reference walker."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from benchscripts import load_benchmark
from scipy.stats import chisquare

from jobs.graph.walks import (
    CONCEPT_STARTS,
    END_REASONS,
    WalkParams,
    sample_walks,
    uniform_int,
    unit_interval,
)

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
    from jobs.spark import held

    vertices, edge_df = _graph(spark, edges, extra_topics)
    with held():  # its own: the module's fixtures call it before a test's scope opens
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


def test_the_walk_graph_s_files_are_mapped_by_the_workers_and_removed_after(
    spark, monkeypatch, tmp_path
):
    from jobs.spark import held

    monkeypatch.setenv("SPARK_LOCAL_DIRS", str(tmp_path))
    vertices, edges = _graph(spark, RACE_EDGES)
    with held():
        walks = sample_walks(vertices, edges, WalkParams(**RACE_PARAMS))
        (folder,) = tmp_path.iterdir()
        assert folder.name.startswith("synthllm-walk-graph-")
        # Three CSRs of three arrays each; the driver kept no copy to broadcast.
        assert len(list(folder.glob("*.npy"))) == 9
        assert len(walks.collect()) == 3 * 1000
    assert list(tmp_path.iterdir()) == []


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


def test_reference_walker_draws_in_proportion_too():
    bench = load_benchmark("walks")
    edges = {k: [e[i] for e in RACE_EDGES] for i, k in enumerate(("src", "dst", "kind", "freq"))}
    walks = bench.reference_walks(edges, ["t:a", "t:b", "t:z"], WalkParams(**RACE_PARAMS))
    _check_proportional(*_first_steps(walks))


def test_benchmark_graph_is_deterministic_and_heavy_tailed():
    bench = load_benchmark("walks")
    vertices, edges = bench.generate_graph(3000, seed=1)
    assert bench.generate_graph(3000, seed=1)[1] == edges
    assert len(edges["src"]) == 3000 == len(set(zip(edges["src"], edges["dst"], strict=True)))
    assert set(edges["kind"]) == {"topic_topic", "topic_concept", "concept_concept"}
    degree = Counter(edges["src"]) + Counter(edges["dst"])
    assert max(degree.values()) > 10 * (2 * 3000 / len(vertices["id"]))


# A tiny weighted graph with every shape a walk meets: t:d has no concept (no_concept when
# the walk starts its concepts there), t:e no topic neighbour (topic_dead_end), c:5 no concept
# neighbour and c:6 a leaf (concept_dead_end).
TINY = [
    ("t:a", "t:b", "topic_topic", 3), ("t:a", "t:c", "topic_topic", 1),
    ("t:b", "t:c", "topic_topic", 6), ("t:c", "t:d", "topic_topic", 2),
    ("t:a", "c:1", "topic_concept", 1), ("t:a", "c:2", "topic_concept", 4),
    ("t:b", "c:2", "topic_concept", 2), ("t:b", "c:3", "topic_concept", 8),
    ("t:c", "c:4", "topic_concept", 3), ("t:e", "c:5", "topic_concept", 1),
    ("c:1", "c:2", "concept_concept", 2), ("c:2", "c:3", "concept_concept", 7),
    ("c:1", "c:3", "concept_concept", 1), ("c:3", "c:4", "concept_concept", 3),
    ("c:4", "c:6", "concept_concept", 1),
]  # fmt: skip
TINY_TOPICS = ["t:a", "t:b", "t:c", "t:d", "t:e"]
TINY_PARAMS = dict(seed=3, num_epochs=4000, topic_steps=(1, 2), concept_steps=(1, 2))


def _paths(adj, kind, path, n):
    """``(path, dead_end, p)`` of every no-revisit continuation of ``path`` by ``n`` steps."""
    if n == 0:
        yield path, False, 1.0
        return
    options = {v: w for v, w in adj[kind].get(path[-1], {}).items() if v not in path}
    if not options:
        yield path, True, 1.0
        return
    total = sum(options.values())
    for v, w in options.items():
        for rest, dead, p in _paths(adj, kind, (*path, v), n - 1):
            yield rest, dead, p * w / total


def exact_distribution(edges, params: WalkParams, weighted=True) -> dict[tuple, float]:
    """P(start, topics, concepts, end_reason | start) under the module's rules, enumerated."""
    adj = {k: {} for k in ("topic_topic", "topic_concept", "concept_concept")}
    for s, d, kind, f in edges:
        w = f + params.eps if weighted else 1.0
        for a, b in [(s, d)] if kind == "topic_concept" else [(s, d), (d, s)]:
            adj[kind].setdefault(a, {})[b] = adj[kind].get(a, {}).get(b, 0.0) + w
    (t_lo, t_hi), (c_lo, c_hi) = params.topic_steps, params.concept_steps
    out: Counter = Counter()
    for start in TINY_TOPICS:
        for n_t in range(t_lo, t_hi + 1):
            for topics, t_dead, p_t in _paths(adj, "topic_topic", (start,), n_t):
                origins = {"last": topics[-1:], "start": topics[:1]}.get(
                    params.concept_start, topics
                )
                for origin in origins:
                    p = p_t / (t_hi - t_lo + 1) / len(origins)
                    entry = adj["topic_concept"].get(origin, {})
                    if not entry:
                        reason = "topic_dead_end" if t_dead else "no_concept"
                        out[(start, topics, (), reason)] += p
                    total = sum(entry.values())
                    for first, w in entry.items():
                        for n_c in range(c_lo, c_hi + 1):
                            for concepts, c_dead, p_c in _paths(
                                adj, "concept_concept", (first,), n_c
                            ):
                                reason = ("topic_dead_end" if t_dead else
                                          "concept_dead_end" if c_dead else "complete")  # fmt: skip
                                out[(start, topics, concepts, reason)] += (
                                    p * w / total * p_c / (c_hi - c_lo + 1)
                                )
    return dict(out)


def _fit_pvalue(counts: Counter, exact: dict, per_start: int) -> float:
    """Chi-square goodness of fit, per start topic; outcomes expected < 5 times pooled."""
    from scipy.stats import chi2

    assert set(counts) <= set(exact), set(counts) - set(exact)  # no impossible walk
    stat, df = 0.0, 0
    for start in TINY_TOPICS:
        keys = [k for k in exact if k[0] == start]
        expected = np.array([exact[k] * per_start for k in keys])
        observed = np.array([counts[k] for k in keys], dtype=float)
        small = expected < 5
        if small.any():
            expected = np.r_[expected[~small], expected[small].sum()]
            observed = np.r_[observed[~small], observed[small].sum()]
        stat += ((observed - expected) ** 2 / expected).sum()
        df += len(expected) - 1
    return chi2.sf(stat, df)


def _outcomes(walks) -> Counter:
    return Counter((w[1], tuple(w[2]), tuple(w[3]), w[4]) for w in walks)


def _rows(rows):
    return [(r.epoch, r.start_topic, r.topics, r.concepts, r.end_reason) for r in rows]


@pytest.mark.parametrize("mode", CONCEPT_STARTS)
def test_walks_follow_the_exact_path_distribution(spark, mode):
    params = WalkParams(concept_start=mode, **TINY_PARAMS)
    exact = exact_distribution(TINY, params)
    for start in TINY_TOPICS:
        assert sum(p for k, p in exact.items() if k[0] == start) == pytest.approx(1.0)
    assert {k[3] for k in exact} == set(END_REASONS)  # every end reason is in play
    counts = _outcomes(_rows(_walks(spark, TINY, **TINY_PARAMS, concept_start=mode)))
    assert sum(counts.values()) == 5 * params.num_epochs
    # 20K walks over ~100 outcomes: a right sampler fails this 1 time in 1000 (the seed is
    # fixed, so it passes or fails for good), a sampler ignoring the weights always does.
    assert _fit_pvalue(counts, exact, params.num_epochs) > 1e-3
    unweighted = exact_distribution(TINY, params, weighted=False)
    assert _fit_pvalue(counts, unweighted, params.num_epochs) < 1e-12


def _homogeneity_pvalue(a: Counter, b: Counter) -> float:
    """Chi-square test that two samples of outcomes share one distribution."""
    from scipy.stats import chi2_contingency

    keys = sorted(set(a) | set(b))
    table = np.array([[a[k] for k in keys], [b[k] for k in keys]], dtype=float)
    small = table.sum(axis=0) < 10
    table = np.c_[table[:, ~small], table[:, small].sum(axis=1)]
    return chi2_contingency(table).pvalue


def test_walks_match_the_benchmark_reference_walker(spark):
    bench = load_benchmark("walks")
    params = WalkParams(concept_start="random", **TINY_PARAMS)
    columns = {k: [e[i] for e in TINY] for i, k in enumerate(("src", "dst", "kind", "freq"))}
    reference = _outcomes(bench.reference_walks(columns, TINY_TOPICS, params))
    ours = _outcomes(_rows(_walks(spark, TINY, **TINY_PARAMS, concept_start="random")))
    assert _fit_pvalue(reference, exact_distribution(TINY, params), params.num_epochs) > 1e-3
    assert _homogeneity_pvalue(ours, reference) > 1e-3
    # The test can fail: the reference on the same graph with every freq equal differs.
    flat = {**columns, "freq": [1] * len(TINY)}
    assert (
        _homogeneity_pvalue(ours, _outcomes(bench.reference_walks(flat, TINY_TOPICS, params)))
        < 1e-12
    )


def test_uniform_draws_are_never_0_or_1():
    bits = np.array([0, 1, 2**12 - 1, 2**12, 2**63, 2**64 - 2**12, 2**64 - 1], dtype=np.uint64)
    u = unit_interval(bits)
    assert (u > 0).all() and (u < 1).all() and np.isfinite(-np.log(u)).all()
    assert u.min() == 2**-53 and u.max() == 1 - 2**-53
    # The former mapping, the top 53 bits + 1/2 over 2^53, gave 1.0 for all-ones bits.
    assert (float((2**64 - 1) >> 11) + 0.5) / 2**53 == 1.0
    for m in (2, 3, 5, 6, 7, 1000, 2**40 + 1):  # the top draw never rounds up to m
        assert math.floor(u.max() * m) == m - 1
    keys = np.arange(100_000, dtype=np.uint64)
    draws = uniform_int(7, keys, -1, 3, 4)
    assert set(draws.tolist()) == {3, 4} and abs(draws.mean() - 3.5) < 0.01


def test_walks_do_not_depend_on_batching(spark):
    from jobs.graph.entries import walk_adjacency
    from jobs.graph.walks import WalkGraph, topic_hashes, walk_batch

    edges, topics = _random_graph()
    vertices, edge_df = _graph(spark, edges, topics)
    adj = walk_adjacency(vertices, edge_df, 0.01)
    graph = WalkGraph(adj, *topic_hashes(adj.ids.take(adj.topics).to_pylist()))
    params = WalkParams(seed=4, num_epochs=3, concept_start="random")
    numbers = np.arange(3 * len(topics))
    whole = walk_batch(graph, params, numbers).to_pylist()
    shuffled = np.random.default_rng(0).permutation(numbers)
    pieces = [walk_batch(graph, params, part) for part in np.array_split(shuffled, 7)]
    by_id = lambda r: r["walk_id"]  # noqa: E731
    assert sorted(whole, key=by_id) == sorted((r for p in pieces for r in p.to_pylist()), key=by_id)
    # And through Spark: tiny Arrow batches give the same rows as the default ones.
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "4")
    try:
        small = sample_walks(vertices.repartition(3), edge_df.repartition(3), params).collect()
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    assert sorted((r.asDict() for r in small), key=by_id) == sorted(whole, key=by_id)


def test_an_edge_to_a_node_the_vertices_lack_is_refused(spark):
    vertices, edge_df = _graph(spark, [("t:a", "c:x", "topic_concept", 2)])
    stray = spark.createDataFrame([("t:a", "c:gone", "topic_concept", 1, 0.0)], ESCHEMA)
    with pytest.raises(ValueError, match="not a node"):
        sample_walks(vertices, edge_df.unionByName(stray), WalkParams())
