"""Reference-document retrieval by Jaccard similarity (jobs.graph.grounding)."""

from __future__ import annotations

import pytest

from jobs.graph.grounding import reference_docs

DOCS = {
    "d1": ["a", "b", "c", "e"],
    "d2": ["a", "b"],
    "d3": ["c", "d"],
    "d4": ["a"],
    "d5": ["b", "a"],  # the same set as d2: every tie with d2 goes to d2
}
WALKS = [
    ("w1", ["a", "b", "c"]),
    ("w2", ["a", "d"]),
    ("w3", ["z"]),  # shares nothing with any document
    ("w4", []),
    ("w5", ["a", "a", "b"]),  # duplicates count once
]


@pytest.fixture(scope="module")
def frames(spark):
    walks = spark.createDataFrame(WALKS, "walk_id string, nodes array<string>")
    doc_nodes = spark.createDataFrame(
        [(d, n) for d, nodes in DOCS.items() for n in nodes], "doc_id string, node string"
    )
    return walks, doc_nodes


def _refs(df) -> dict:
    return {r.walk_id: (r.ref_doc_ids, r.ref_jaccard) for r in df.collect()}


def test_top_two_by_jaccard_with_ties_by_doc_id(frames):
    got = _refs(reference_docs(*frames))
    # w1 = {a,b,c}: d1 3/4, d2 = d5 2/3, d4 1/3, d3 1/4.
    assert got["w1"][0] == ["d1", "d2"]
    assert got["w1"][1] == pytest.approx([3 / 4, 2 / 3])
    # w2 = {a,d}: d4 1/2, then d2 = d3 = d5 at 1/3, d1 1/5.
    assert got["w2"][0] == ["d4", "d2"]
    assert got["w2"][1] == pytest.approx([1 / 2, 1 / 3])
    assert got["w5"] == (["d2", "d5"], [1.0, 1.0])
    assert got["w3"] == ([], []) and got["w4"] == ([], [])
    assert len(got) == len(WALKS)


def test_num_refs_changes_the_cut(frames):
    got = _refs(reference_docs(*frames, num_refs=4))
    assert got["w1"][0] == ["d1", "d2", "d5", "d4"]
    assert got["w2"][0] == ["d4", "d2", "d3", "d5"]
    assert _refs(reference_docs(*frames, num_refs=1))["w2"][0] == ["d4"]
    with pytest.raises(ValueError):
        reference_docs(*frames, num_refs=0)


def _plan(df) -> str:
    return df._jdf.queryExecution().executedPlan().toString()


def test_the_plan_has_no_cross_join(frames):
    walks, doc_nodes = frames
    refs = reference_docs(walks, doc_nodes)
    refs.collect()
    plan = _plan(refs)
    assert "Join" in plan
    assert "CartesianProduct" not in plan and "BroadcastNestedLoopJoin" not in plan
    # The check itself can fail: a cross join shows up under one of the two names.
    crossed = _plan(walks.crossJoin(doc_nodes))
    assert "CartesianProduct" in crossed or "BroadcastNestedLoopJoin" in crossed
