"""graph.build and graph.combinations as jobs: committed inputs in, committed tables out."""

from __future__ import annotations

import argparse
import json
import math
import os

import pytest
from checkpoints import record_checkpoints
from committed import commit_table

from jobs.cli import JobContext
from jobs.graph import build, combinations
from jobs.layout import Layout
from jobs.storage import Storage, join
from jobs.tables import read_table, schema

SNAP = "2026-01-03"
# doc_id -> {topic: [concepts]}: two clusters (algebra, geometry) bridged by d4.
DOCS = {
    "d1": {"Quadratic equations": ["Discriminant", "Vertex form", "Roots"]},
    "d2": {
        "Quadratic equations": ["Discriminant", "Roots"],
        "Factoring": ["Roots", "Common factor"],
    },
    "d3": {"Triangles": ["Pythagorean theorem", "Hypotenuse", "Right angle"]},
    "d4": {
        "Triangles": ["Hypotenuse", "Right angle"],
        "Quadratic equations": ["Roots", "Vertex form"],
    },
}
SCORES = {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d4": 0.6, "d5": 0.5}


def concept_rows():
    rows = []
    for doc, topics in DOCS.items():
        for topic, concepts in topics.items():
            for c in concepts:
                rows.append({
                    "doc_id": doc, "edu_level": "high_school", "subject": "Maths",
                    "topic_id": f"t:{topic.lower()}", "topic": topic, "topic_raw": topic,
                    "concept_id": f"c:{c.lower()}", "concept": c, "concept_raw": c,
                    "model": "m", "prompt_version": "p-k/v1", "snapshot": SNAP,
                })  # fmt: skip
    return rows


def make_ctx(cfg, attempt="1") -> JobContext:
    return JobContext(
        cfg, SNAP, "test-run", attempt, Layout(cfg.storage.root_uri, SNAP), argparse.Namespace()
    )


CFG_OVERRIDES = ("generation.max_documents=3", "combinations.num_epochs=4", "combinations.seed=11")


@pytest.fixture
def cfg(make_config):
    c = make_config(*CFG_OVERRIDES)
    storage, layout = Storage(c.storage), Layout(c.storage.root_uri, SNAP)
    docs = [{"doc_id": d, "text": f"text of {d}", "domain_score": s} for d, s in SCORES.items()]
    commit_table(storage, layout.table("documents"), rows=docs)
    commit_table(storage, layout.table("doc_concepts"), rows=concept_rows(),
                 table_schema=schema("doc_concepts"))  # fmt: skip
    return c


def test_build_commits_vertices_edges_and_statistics(spark, cfg):
    stats = build.run(make_ctx(cfg))
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    graph = layout.table("graph")
    vertices = read_table(storage, join(graph, "vertices")).set_index("id")
    edges = read_table(storage, join(graph, "edges"))
    assert vertices.loc["t:quadratic equations", "doc_freq"] == 3
    assert vertices.loc["c:roots", "doc_freq"] == 3
    assert vertices.loc["c:hypotenuse", "kind"] == "concept"
    assert vertices.loc["t:triangles", "name"] == "Triangles"
    e = edges.set_index(["src", "dst"])
    # Roots and Vertex form co-occur in d1 and d4; same-kind edges are stored once, src < dst.
    assert e.loc[("c:roots", "c:vertex form"), "freq"] == 2
    assert e.loc[("c:roots", "c:vertex form"), "weight"] == pytest.approx(
        math.log(2 + cfg.graph.eps)
    )
    assert e.loc[("t:quadratic equations", "t:triangles"), "kind"] == "topic_topic"
    assert e.loc[("t:triangles", "c:roots"), "kind"] == "topic_concept"  # co-occur in d4
    assert ("c:vertex form", "c:roots") not in e.index
    written = storage.read_json(join(graph, "_stats.json"))["graph"]
    assert written["vertices"] == {"topic": 3, "concept": 7}
    assert written["components"]["count"] == 1  # d4 bridges the two clusters
    assert written["components"]["largest_share"] == 1.0
    assert stats.rows_out == 10 and stats.rows_in == 10
    manifest = storage.read_json(join(graph, "_manifest.json"))
    assert manifest["inputs"] == [layout.table("doc_concepts")]


def test_build_prunes_rare_nodes_and_counts_them(spark, make_config, cfg):
    strict = make_config("graph.min_doc_freq=2")
    stats = build.run(make_ctx(strict))
    # Seen in one document only: Factoring, Common factor, Pythagorean theorem.
    assert stats.quarantined == {"below_min_doc_freq": 3}
    stats.check_balance()
    graph = Layout(strict.storage.root_uri, SNAP).table("graph")
    vertices = read_table(Storage(strict.storage), join(graph, "vertices"))
    assert "c:common factor" not in set(vertices["id"])


def test_combinations_cover_all_levels_and_balance(spark, cfg):
    build.run(make_ctx(cfg))
    stats = combinations.run(make_ctx(cfg))
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    table = read_table(storage, layout.table("combinations"))
    by_level = table.groupby("level")["combo_id"].apply(list).to_dict()
    assert by_level[1] == ["l1-d1", "l1-d2", "l1-d3"]  # generation.max_documents best
    assert by_level[2] == ["l2-d1", "l2-d2", "l2-d3", "l2-d4"]
    l2 = table.set_index("combo_id").loc["l2-d2"]
    assert list(l2["topics"]) == ["Factoring", "Quadratic equations"]
    assert set(l2["concepts"]) == {"Common factor", "Discriminant", "Roots"}
    l3 = table[table["level"] == 3]
    assert len(l3) >= 1
    for row in l3.itertuples():
        assert len(row.concept_ids) >= cfg.combinations.min_walk_concepts
        assert 1 <= len(row.ref_doc_ids) <= 2 and len(set(row.ref_doc_ids)) == len(row.ref_doc_ids)
        assert list(row.ref_jaccard) == sorted(row.ref_jaccard, reverse=True)
        assert len(row.topics) == len(row.topic_ids) and len(row.concepts) == len(row.concept_ids)
        assert not (set(row.topic_ids) & set(row.concept_ids))
    keys = [tuple(sorted([*r.topic_ids, *r.concept_ids])) for r in l3.itertuples()]
    assert len(keys) == len(set(keys))  # a concept set is prompted once
    quarantine = read_table(storage, layout.quarantine("combinations"))
    assert set(quarantine["reason"]) <= {
        "too_few_concepts",
        "duplicate_concept_set",
        "no_reference_document",
    }
    walks = stats.extra["walks"]["num_walks"]
    assert walks == 3 * cfg.combinations.num_epochs  # every topic starts one walk per epoch
    assert len(l3) + len(quarantine) == walks
    assert stats.extra["by_level"] == {"1": 3, "2": 4, "3": len(l3)}
    assert stats.rows_in == 3 + 4 + walks and stats.rows_out == len(table)
    stats.check_balance()
    raw = json.loads(quarantine.iloc[0]["raw"]) if len(quarantine) else {"walk_id": "x"}
    assert "walk_id" in raw


def test_jobs_free_what_they_persisted_and_broadcast(spark, cfg, monkeypatch):
    # One long-lived session runs job after job (these tests, a notebook, the scale harness):
    # a table or broadcast a job keeps fills the driver's heap some jobs later.
    from pyspark import SparkContext

    made = []
    real = SparkContext.broadcast

    def recorded(self, value):
        made.append(real(self, value))
        return made[-1]

    monkeypatch.setattr(SparkContext, "broadcast", recorded)
    persistent = spark.sparkContext._jsc.getPersistentRDDs
    before = set(persistent().keys())
    build.run(make_ctx(cfg))
    combinations.run(make_ctx(cfg))
    assert set(persistent().keys()) == before
    assert made and not any(b._jbroadcast.isValid() for b in made)


def test_level1_takes_fine_scores_first_in_the_order_of_select_documents(spark):
    import pandas as pd

    from jobs.questions.prepare import select_documents

    rows = [("d-cold", 0.99, None), ("d-low", 0.95, 6.6), ("d-high", 0.5, 8.1),
            ("d-tie", 0.6, 8.1), ("d-none", None, None)]  # fmt: skip
    docs = spark.createDataFrame(rows, "doc_id string, domain_score double, fine_score double")
    got = [r["combo_id"] for r in combinations.level1(docs, 4).collect()]
    expected = select_documents(pd.DataFrame(rows, columns=docs.columns), 4)["doc_id"]
    assert (
        got == [f"l1-{d}" for d in expected] == ["l1-d-tie", "l1-d-high", "l1-d-low", "l1-d-cold"]
    )
    legacy = docs.drop("fine_score")  # a documents table from before the refine job
    assert [r["combo_id"] for r in combinations.level1(legacy, 2).collect()] == [
        "l1-d-cold", "l1-d-low"
    ]  # fmt: skip


def test_combinations_are_the_same_on_rerun(spark, cfg):
    build.run(make_ctx(cfg))
    combinations.run(make_ctx(cfg))
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    first = read_table(storage, layout.table("combinations"))
    combinations.run(make_ctx(cfg, attempt="2"))
    second = read_table(storage, layout.table("combinations"))
    assert first.to_json() == second.to_json()


def test_level2_has_no_null_concepts_and_keeps_concept_less_topics(spark):
    rows = [
        ("d1", "t:a", "Algebra", "c:x", "x"),
        ("d1", "t:c", "Calculus", None, None),  # a topic without concepts: null concept columns
        ("d2", "t:c", "Calculus", None, None),  # every topic without concepts
        ("d3", "t:a", "Algebra", "c:root", "roots"),
        ("d3", "t:b", "Bases", "c:root", "Roots"),  # one id under two display names
    ]
    schema = "doc_id string, topic_id string, topic string, concept_id string, concept string"
    got = {
        r["combo_id"]: r for r in combinations.level2(spark.createDataFrame(rows, schema)).collect()
    }
    assert set(got) == {"l2-d1", "l2-d2", "l2-d3"}
    for r in got.values():
        for column in ("topic_ids", "concept_ids", "topics", "concepts"):
            assert None not in r[column]
    assert (got["l2-d1"]["topic_ids"], got["l2-d1"]["concept_ids"]) == (["t:a", "t:c"], ["c:x"])
    assert (got["l2-d1"]["topics"], got["l2-d1"]["concepts"]) == (["Algebra", "Calculus"], ["x"])
    assert (got["l2-d2"]["topic_ids"], got["l2-d2"]["concept_ids"]) == (["t:c"], [])
    assert (got["l2-d3"]["concept_ids"], got["l2-d3"]["concepts"]) == (["c:root"], ["Roots"])


def test_jobs_checkpoint_reliably_into_a_folder_they_remove(
    spark, make_config, cfg, tmp_path, monkeypatch
):
    root = tmp_path / "checkpoints"
    ckpt = make_config(*CFG_OVERRIDES, f'spark.checkpoint_uri="{root}"')
    reliable, local = record_checkpoints(spark, monkeypatch)
    build.run(make_ctx(ckpt))
    combinations.run(make_ctx(ckpt))
    # The session's dir is {root}/{stage}-{snapshot}-{attempt}/{uuid}: count per job folder.
    folders: dict[str, list[int]] = {}
    for folder, num_files in reliable:
        assert os.path.dirname(os.path.dirname(folder)) == str(root)
        folders.setdefault(os.path.basename(os.path.dirname(folder)), []).append(num_files)
    assert {k: len(v) for k, v in folders.items()} == {
        f"graph-{SNAP}-1": 3,  # vertices, edges, the components' links
        f"combinations-{SNAP}-1": 3,  # walks, Level-3, all combinations
    }
    assert all(n > 0 for counts in folders.values() for n in counts)  # written during the run
    assert not {"build.py", "combinations.py"} & set(local)
    for folder in folders:
        assert not (root / folder).exists()  # removed at the end of the job
