"""Hub-safe grounding (jobs.graph.grounding) against a brute force, and its row bound."""

from __future__ import annotations

import random

import pytest

from jobs.graph import grounding
from jobs.graph.grounding import HubSets, candidate_pairs, first_set_bits, reference_docs

SEEDS = (0, 1, 2, 3)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_first_set_bits_are_the_lowest_common_positions_across_windows(k):
    import numpy as np

    rng = np.random.default_rng(k)
    rows, positions = 4, 64 * 700  # 700 words: windows of 64, 128, 256, then the rest
    sets = [
        set(rng.choice(positions, size, replace=False).tolist()) for size in (9000, 9000, 40, 3)
    ]
    sets[2] |= {44_000, 44_799}  # a common bit in the last window only
    sets[0] |= {44_000, 44_799}
    sets[1] |= {44_000, 44_799}
    bitmaps = np.zeros((rows, positions // 64), dtype=np.uint64)
    for r, members in enumerate(sets):
        for pos in members:
            bitmaps[r, pos // 64] |= np.uint64(1) << np.uint64(pos % 64)
    for chosen in ([0], [0, 1], [0, 1, 2], [2, 3], [3]):
        common = set.intersection(*(sets[r] for r in chosen))
        assert first_set_bits(bitmaps, chosen, k) == sorted(common)[:k], chosen
    assert first_set_bits(np.zeros((1, 0), dtype=np.uint64), [0], k) == []


@pytest.mark.parametrize(
    "dense_share", [0.0, 1 / 32, 0.3, 2.0], ids=["bitmaps", "mixed", "few-bitmaps", "ranks"]
)
def test_hub_sets_give_the_lowest_common_ranks_whatever_their_form(dense_share):
    import numpy as np

    rng = np.random.default_rng(7)
    num_docs, num_hubs = 5_000, 12
    sizes = [4_000, 2_500, 900, 300, 160, 150, 40, 12, 3, 1, 0, 2_000]
    members = [set(rng.choice(num_docs, n, replace=False).tolist()) for n in sizes]
    members[3] |= {4_998, 4_999}  # common to 0, 1, 3 only near the end
    members[0] |= {4_998, 4_999}
    members[1] |= {4_998, 4_999}
    # Pairs in any order, as Spark's partitions bring them.
    pairs = [(r, h) for h, docs in enumerate(members) for r in docs]
    rng.shuffle(pairs)
    rank = np.array([r for r, _ in pairs], dtype=np.int64)
    hub = np.array([h for _, h in pairs], dtype=np.int64)
    sets = HubSets(hub, rank, num_hubs, num_docs, dense_share)
    dense = int(sets.dense.sum())
    assert dense == {0.0: 11, 1 / 32: 6, 0.3: 3, 2.0: 0}[dense_share]  # hub 10 holds nothing
    assert sets.nbytes <= max(4 * len(pairs), dense * num_docs // 8) + 8 * (num_hubs + 1)
    patterns = [[0], [0, 1], [0, 1, 3], [3, 0, 1], [2, 5], [0, 8], [9], [10], [10, 0],
                [6, 7, 0], [11, 0, 1, 2], list(range(num_hubs))]  # fmt: skip
    for k in (1, 2, 5):
        for p in patterns:
            common = set.intersection(*(members[h] for h in p))
            assert sets.first_common(p, k) == sorted(common)[:k], (p, k)


def _graph(seed: int) -> tuple[dict, list]:
    """Documents and walks with hubs, copied documents, hub-only and unrelated walks."""
    rng = random.Random(seed)
    p = f"s{seed}-"
    hubs = [f"{p}h{i}" for i in range(3)]
    low = [f"{p}n{i:02d}" for i in range(25)]
    ids = rng.sample(range(100), 40)  # doc_id order unrelated to creation order
    docs: dict[str, list[str]] = {}
    for j, num in enumerate(ids):
        if j >= 25 and rng.random() < 0.6:
            nodes = set(rng.choice(list(docs.values())))  # identical sets: ties by doc_id
        else:
            nodes = {h for h in hubs if rng.random() < 0.8} | set(
                rng.sample(low, rng.randint(0, 4))
            )
        docs[f"{p}d{num:03d}"] = sorted(nodes or {rng.choice(low)})
    walks: list[tuple[str, list[str] | None]] = []
    for j in range(30):
        kind = j % 6
        if kind == 0:
            nodes = list(rng.choice(list(docs.values())))  # equal to a document
        elif kind == 1:
            nodes = rng.sample(hubs, rng.randint(1, 3)) + [f"{p}x{j}"]  # only hubs shared
        elif kind == 2:
            nodes = [f"{p}x{j}"] if j % 4 else []  # shares nothing
        else:
            nodes = rng.sample(hubs, rng.randint(0, 3)) + rng.sample(low, rng.randint(1, 4))
            nodes += nodes[:1] + ([f"{p}x{j}"] if rng.random() < 0.3 else [])
        walks.append((f"{p}w{j:02d}", nodes))
    walks.append((f"{p}wnull", None))
    return docs, walks


def _brute(docs: dict, walks: list, k: int) -> dict:
    """All walks x all documents: Jaccard descending, doc_id ascending, top k with i >= 1."""
    out = {}
    for walk_id, nodes in walks:
        w = set(nodes or [])
        scored = sorted(
            (-(len(w & set(d)) / len(w | set(d))), doc_id)
            for doc_id, d in docs.items()
            if w & set(d)
        )[:k]
        out[walk_id] = ([doc_id for _, doc_id in scored], [-s for s, _ in scored])
    return out


@pytest.fixture(scope="module")
def seeded(spark):
    """All seeds in one pair of frames: their node names are disjoint, so they never meet."""
    docs, walks = {}, []
    for seed in SEEDS:
        d, w = _graph(seed)
        docs.update(d)
        walks += w
    walk_df = spark.createDataFrame(walks, "walk_id string, nodes array<string>")
    doc_df = spark.createDataFrame(
        [(d, n) for d, nodes in docs.items() for n in nodes], "doc_id string, node string"
    )
    return docs, walks, walk_df, doc_df


@pytest.mark.parametrize(
    ("num_refs", "num_hub_docs"),
    [(1, 4), (2, 4), (3, 4), (2, 0), (2, 10**9)],
    ids=["k1", "k2", "k3", "all-hubs", "no-hubs"],
)
@pytest.mark.parametrize(
    "dense_share", [grounding.DENSE_SHARE, 0.0, 2.0], ids=["", "bitmaps", "ranks"]
)
def test_matches_brute_force_with_hubs_and_ties(
    seeded, num_refs, num_hub_docs, dense_share, monkeypatch
):
    monkeypatch.setattr(grounding, "DENSE_SHARE", dense_share)
    docs, walks, walk_df, doc_df = seeded
    got = {
        r.walk_id: (r.ref_doc_ids, r.ref_jaccard)
        for r in reference_docs(walk_df, doc_df, num_refs, num_hub_docs=num_hub_docs).collect()
    }
    want = _brute(docs, walks, num_refs)
    assert got == want
    # The graphs exercise what the method must get right, so the comparison can fail.
    assert sum(not ids for ids, _ in want.values()) >= len(SEEDS) * 4
    assert any(len(set(s)) < len(s) for _, s in want.values()) or num_refs == 1
    assert all(want[f"s{seed}-w01"][0] for seed in SEEDS)  # walks sharing only hubs


def _max_rows(df) -> int:
    """The most rows any operator of ``df``'s executed plan put out (``df`` is run first)."""
    df.collect()
    stack, best = [df._jdf.queryExecution().executedPlan()], 0
    while stack:
        node = stack.pop()
        name = node.getClass().getSimpleName()
        if name == "AdaptiveSparkPlanExec":
            stack.append(node.executedPlan())
            continue
        if name.endswith("QueryStageExec"):
            stack.append(node.plan())
            continue
        metric = node.metrics().get("numOutputRows")
        if metric.isDefined():
            best = max(best, metric.get().value())
        children = node.children()
        stack += [children.apply(i) for i in range(children.size())]
    return best


def test_rows_per_hub_stay_bounded(spark):
    num_docs, num_walks, threshold, k = 200, 150, 4, 2
    # One hub in every document and every walk; a{j}, b{j} are in 4 documents each.
    docs = {f"d{j:03d}": ["hub", f"a{j // 4}", f"b{j // 4}"] for j in range(num_docs)}
    walks = [
        (f"w{i:03d}", ["hub", f"a{i % 50}", f"b{(i + 1) % 50}", f"c{i}"]) for i in range(num_walks)
    ]
    walk_df = spark.createDataFrame(walks, "walk_id string, nodes array<string>")
    doc_df = spark.createDataFrame(
        [(d, n) for d, nodes in docs.items() for n in nodes], "doc_id string, node string"
    )
    walk_nodes = sum(len(n) for _, n in walks)
    # Index join <= threshold per walk node; one pattern ({hub}) per walk, k documents each;
    # the rest is reading the inputs.
    bound = threshold * walk_nodes + k * num_walks + 3 * num_docs + walk_nodes
    assert bound * 5 < num_docs * num_walks

    pairs = candidate_pairs(walk_df, doc_df, k, num_hub_docs=threshold)
    assert pairs.count() <= 2 * threshold * num_walks + k * num_walks
    refs = reference_docs(walk_df, doc_df, k, num_hub_docs=threshold)
    assert _max_rows(refs) <= bound
    got = {r.walk_id: (r.ref_doc_ids, r.ref_jaccard) for r in refs.collect()}
    assert got == _brute(docs, walks, k)
    # The measure can fail: the plain inverted index emits every (walk, document) pair via
    # the hub.
    from pyspark.sql import functions as F

    index = walk_df.select("walk_id", F.explode("nodes").alias("node")).join(doc_df, "node")
    assert _max_rows(index) >= num_docs * num_walks
