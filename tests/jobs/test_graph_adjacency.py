"""The walk sampler's CSR and its weighted pick (jobs.graph.adjacency), numpy only."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.stats import chisquare

from jobs.graph.adjacency import KINDS, Csr, build_adjacency, pick
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
