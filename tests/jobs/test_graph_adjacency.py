"""The walk sampler's CSR and its weighted pick (jobs.graph.adjacency), numpy only."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import chisquare

from jobs.graph.adjacency import (
    KINDS,
    Csr,
    CsrBuilder,
    build_adjacency,
    pick,
    save_csr,
    stream_adjacency,
)
from jobs.graph.walks import uniform, unit_interval

EPS = 0.01
# Row 0: neighbours 1..6 with these freqs (freq 0 is drawn through eps alone); row 7: 1, 2.
FREQS = np.array([0, 1, 2, 5, 10, 30])


def _csr() -> Csr:
    src = np.r_[np.zeros(6, dtype=np.int64), 7, 7]
    dst = np.r_[np.arange(1, 7), 1, 2]
    return Csr.from_edges(src, dst, np.r_[FREQS, 3, 1] + EPS, num_nodes=8, both=False)


def test_pick_draws_unvisited_neighbours_in_proportion_to_freq_plus_eps():
    csr, n = _csr(), 1_000_000
    walks = np.arange(n, dtype=np.uint64)
    cur = np.where(walks % 3 == 2, 7, 0)
    # Half the walks from row 0 have visited 3 and 5 (and the row's own node, which is no
    # neighbour); the others nothing. Padding is -1.
    excluded = (walks % 2 == 0) & (cur == 0)
    visited = np.full((n, 3), -1)
    visited[excluded] = [5, 0, 3]
    got = pick(csr, cur, visited, uniform(11, walks, 1))
    assert not (got[:, None] == visited).any()
    cases = [
        (cur == 0) & ~excluded, (cur == 0) & excluded, cur == 7,
    ]  # fmt: skip
    options = [(np.arange(1, 7), FREQS), (np.array([1, 2, 4, 6]), FREQS[[0, 1, 3, 5]]),
               (np.array([1, 2]), np.array([3, 1]))]  # fmt: skip
    for case, (nodes, freqs) in zip(cases, options, strict=True):
        observed = np.array([(got[case] == v).sum() for v in nodes])
        assert observed.sum() == case.sum()  # nothing outside the unvisited neighbours
        share = (freqs + EPS) / (freqs + EPS).sum()
        assert chisquare(observed, share * case.sum()).pvalue > 1e-3, (observed, share)
        assert np.abs(observed / case.sum() - share).max() < 0.003
        # The same counts reject weights without eps (node 1, freq 0, would never come) and
        # a uniform pick.
        assert observed[0] > 0 or freqs[0] > 0
        uniform_share = np.full(len(nodes), 1 / len(nodes))
        assert chisquare(observed, uniform_share * case.sum()).pvalue < 1e-9


def test_pick_at_the_extreme_draws_stays_on_unvisited_neighbours():
    csr = _csr()
    extremes = unit_interval(np.array([0, 2**64 - 1], dtype=np.uint64))
    cur = np.zeros(2, dtype=np.int64)
    none = np.full((2, 1), -1)
    assert pick(csr, cur, none, extremes).tolist() == [1, 6]
    # The last and first entries visited: the extreme draws go to their nearest neighbours.
    assert pick(csr, cur, np.array([[6, 1], [6, 1]]), extremes).tolist() == [2, 5]
    # Every neighbour visited, or no row at all: a dead end.
    full = np.tile(np.arange(1, 7), (2, 1))
    assert pick(csr, cur, full, extremes).tolist() == [-1, -1]
    assert pick(csr, np.array([3, 3]), none, extremes).tolist() == [-1, -1]
    empty = np.array([], dtype=np.int64)
    no_edges = Csr.from_edges(empty, empty, np.array([]), num_nodes=8, both=True)
    assert pick(no_edges, cur, np.array([[0], [-1]]), extremes).tolist() == [-1, -1]


def test_csr_merges_parallel_edges_and_keeps_rows_sorted():
    src, dst = np.array([2, 0, 2, 0]), np.array([0, 1, 0, 2])
    csr = Csr.from_edges(src, dst, np.array([1.0, 2.0, 3.0, 4.0]), num_nodes=3, both=True)
    assert csr.indptr.tolist() == [0, 2, 3, 4]
    assert csr.nbr.tolist() == [1, 2, 0, 0]
    assert np.diff(csr.cum).tolist() == [2.0, 8.0, 2.0, 8.0]  # 0-2: 1 + 3 + 4, both ways


@pytest.mark.parametrize("both", [False, True])
def test_csr_rows_equal_a_plain_dict_of_summed_weights(both):
    rng = np.random.default_rng(5)
    n, m = 40, 3_000  # ~1.9 entries per (src, dst): many parallel edges
    src = rng.integers(0, n, m).astype(np.int32)
    dst = rng.integers(0, n, m).astype(np.int32)
    weight = rng.integers(1, 9, m) + EPS
    expected: dict[int, dict[int, float]] = {}
    for a, b, w in zip(src.tolist(), dst.tolist(), weight.tolist(), strict=True):
        for x, y in [(a, b), (b, a)] if both else [(a, b)]:
            expected.setdefault(x, {})[y] = expected.get(x, {}).get(y, 0.0) + w
    csr = Csr.from_edges(src, dst, weight, num_nodes=n, both=both)
    assert csr.nbr.dtype == np.int32 and csr.indptr.dtype == np.int64
    for row in range(n):
        lo, hi = csr.indptr[row], csr.indptr[row + 1]
        want = sorted(expected.get(row, {}).items())
        assert csr.nbr[lo:hi].tolist() == [y for y, _ in want]
        assert np.diff(csr.cum[lo : hi + 1]) == pytest.approx([w for _, w in want], abs=1e-9)


@pytest.mark.parametrize(
    ("s", "d", "freq", "match"),
    [
        ([0, None], [1, 2], [1.0, 1.0], "not a node"),
        ([0, 1], [1, 5], [1.0, 1.0], "outside 0..2"),
        ([0, -1], [1, 2], [1.0, 1.0], "outside 0..2"),
        ([0, 1], [1, 2], [1.0, -3.0], "finite number > 0"),
    ],
)
def test_build_adjacency_refuses_edges_it_cannot_place(s, d, freq, match):
    nodes = pa.table({"id": ["a", "b", "c"], "topic": [True, False, False]})
    edges = pa.table({
        "s": pa.array(s, pa.int32()), "d": pa.array(d, pa.int32()),
        "k": pa.array([1, 2], pa.int8()), "freq": freq,
    })  # fmt: skip
    with pytest.raises(ValueError, match=match):
        build_adjacency(nodes, edges, EPS)


def test_build_adjacency_keeps_the_numbering_it_is_given():
    nodes = pa.table({"id": ["c:lone", "c:x", "c:y", "t:a", "t:b"],
                      "topic": [False, False, False, True, True]})  # fmt: skip
    edges = pa.table({
        "s": pa.array([4, 3, 1], pa.int32()), "d": pa.array([3, 1, 2], pa.int32()),
        "k": pa.array([0, 1, 2], pa.int8()), "freq": [1.0, 2.0, 3.0],
    })  # fmt: skip
    adj = build_adjacency(nodes, edges, EPS)
    assert adj.ids.to_pylist() == ["c:lone", "c:x", "c:y", "t:a", "t:b"]
    assert adj.topics.tolist() == [3, 4]
    tt, tc = adj.csr[KINDS[0]], adj.csr[KINDS[1]]
    assert tt.nbr[tt.indptr[3] : tt.indptr[4]].tolist() == [4]  # t:a -> t:b, the reverse
    assert tc.indptr[4] == tc.indptr[5] and tc.nbr.tolist() == [1]  # one way only


def _directed(rng, num_nodes: int, m: int) -> pa.Table:
    """``m`` random edges of every kind, parallel ones included, directed as the stream has
    them (both ways for the symmetric kinds), in (k, s, d) order; integer freqs."""
    parts = []
    for code, kind in enumerate(KINDS):
        s = rng.integers(0, num_nodes, m)
        d = rng.integers(0, num_nodes, m)
        f = rng.integers(0, 9, m).astype(np.float64)
        s, d, f = s[s != d], d[s != d], f[s != d]  # the graph has no self loops
        if kind != "topic_concept":
            s, d, f = np.r_[s, d], np.r_[d, s], np.r_[f, f]
        parts.append((np.full(s.size, code), s, d, f))
    k, s, d, f = (np.concatenate(c) for c in zip(*parts, strict=True))
    order = np.lexsort((d, s, k))
    return pa.table({
        "s": pa.array(s[order], pa.int32()), "d": pa.array(d[order], pa.int32()),
        "k": pa.array(k[order], pa.int8()), "freq": f[order],
    })  # fmt: skip


@pytest.mark.parametrize("mapped", [False, True], ids=["in-memory", "in-files"])
@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_streamed_csrs_equal_the_in_memory_ones_whatever_the_chunks(chunk, mapped, tmp_path):
    rng = np.random.default_rng(chunk)
    n = 30
    nodes = pa.table(
        {"id": [f"n{i:02d}" for i in range(n)], "topic": [i % 3 == 0 for i in range(n)]}
    )
    directed = _directed(rng, n, 500)  # ~0.6 entries per (s, d): parallel ones across chunks
    # The in-memory build takes each undirected edge once: the first way of each.
    tc = KINDS.index("topic_concept")
    half = directed.filter(pa.compute.or_(
        pa.compute.equal(directed["k"], tc), pa.compute.less(directed["s"], directed["d"])
    ))  # fmt: skip
    want = build_adjacency(nodes, half, 0.5)
    chunks = [directed.slice(i, chunk) for i in range(0, directed.num_rows, chunk)]
    capacity = {kind: 2_000 for kind in KINDS}
    got = stream_adjacency(nodes, chunks, capacity, 0.5, str(tmp_path) if mapped else None)
    assert got.ids.equals(want.ids) and got.topics.tolist() == want.topics.tolist()
    for kind in KINDS:
        g, w = got.csr[kind], want.csr[kind]
        assert g.indptr.tolist() == w.indptr.tolist() and g.nbr.tolist() == w.nbr.tolist()
        assert g.cum.tolist() == w.cum.tolist()  # halves are exact: the same running sums
        assert g.nbr.size == g.cum.size - 1 < capacity[kind]  # trimmed to what came
        assert isinstance(g.nbr, np.memmap) is isinstance(g.cum, np.memmap) is mapped
    if mapped:  # the builder's files are the big arrays' only copy: saving reuses them
        stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
        assert len(stamps) == 2 * len(KINDS)
        files = {kind: save_csr(got.csr[kind], str(tmp_path), kind) for kind in KINDS}
        after = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
        assert {name: after[name] for name in stamps} == stamps
        for kind in KINDS:
            back = files[kind].open(lambda name: str(tmp_path / name))
            assert back.nbr.tolist() == want.csr[kind].nbr.tolist()
            assert back.cum.tolist() == want.csr[kind].cum.tolist()
            assert back.indptr.tolist() == want.csr[kind].indptr.tolist()


def test_saved_csrs_open_read_only_and_equal_whatever_their_size(tmp_path):
    """In-memory CSRs (the collected graph's) are written once and mapped back unchanged."""
    empty = Csr.from_edges(np.zeros(0, np.int64), np.zeros(0, np.int64), [], 3, both=True)
    for kind, csr in zip(KINDS, [_csr(), empty, _csr()], strict=True):
        files = save_csr(csr, str(tmp_path), kind)
        back = files.open(lambda name: str(tmp_path / name))
        pairs = zip((csr.indptr, csr.nbr, csr.cum), (back.indptr, back.nbr, back.cum), strict=True)
        for a, b in pairs:
            assert a.dtype == b.dtype and a.tolist() == b.tolist()
        if csr.nbr.size:
            assert not back.nbr.flags.writeable
            assert pick(back, np.array([0]), np.full((1, 1), -1), np.array([0.5])).tolist() == (
                pick(csr, np.array([0]), np.full((1, 1), -1), np.array([0.5])).tolist()
            )
    assert len({p.name for p in tmp_path.iterdir()}) == 3 * len(KINDS)


def test_csr_builder_refuses_entries_out_of_order_or_past_its_capacity():
    builder = CsrBuilder(num_nodes=4, capacity=3)
    builder.add(np.array([1, 5]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="order"):
        builder.add(np.array([4]), np.array([1.0]))
    with pytest.raises(ValueError, match="order"):
        CsrBuilder(4, 3).add(np.array([3, 2]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="3 CSR entries"):
        builder.add(np.array([5, 6, 7]), np.array([1.0, 1.0, 1.0]))


def test_stream_adjacency_checks_each_chunk_as_build_adjacency_does():
    nodes = pa.table({"id": ["a", "b", "c"], "topic": [True, False, False]})
    good = pa.table({"s": pa.array([0], pa.int32()), "d": pa.array([1], pa.int32()),
                     "k": pa.array([1], pa.int8()), "freq": [1.0]})  # fmt: skip
    stray = pa.table({"s": pa.array([1], pa.int32()), "d": pa.array([None], pa.int32()),
                      "k": pa.array([1], pa.int8()), "freq": [1.0]})  # fmt: skip
    with pytest.raises(ValueError, match="not a node"):
        stream_adjacency(nodes, [good, stray], {kind: 4 for kind in KINDS}, EPS)
    backwards = pa.table({"s": pa.array([0, 0], pa.int32()), "d": pa.array([1, 1], pa.int32()),
                          "k": pa.array([2, 1], pa.int8()), "freq": [1.0, 1.0]})  # fmt: skip
    with pytest.raises(ValueError, match="kind, row, neighbour"):
        stream_adjacency(nodes, [backwards], {kind: 4 for kind in KINDS}, EPS)
