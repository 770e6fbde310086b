"""The summary report: numbers from committed stats, "not run" for what is missing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from committed import commit_table

from jobs.commit import StageStats
from jobs.config import load_config
from jobs.layout import Layout
from jobs.report.report import main
from jobs.report.summary import (
    build_summary,
    combinations_summary,
    graph_summary,
    length_stats,
    level_counts,
)
from jobs.storage import Storage, join
from jobs.tables import schema

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "expectations"
SNAP = "2026-11-01"


def good_rows(table: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / f"{table}.jsonl").read_text().splitlines()]


@pytest.fixture
def env(tmp_path):
    root = f"file://{tmp_path / 'data'}"
    storage = Storage(load_config("local", None, [f'storage.root_uri="{root}"']).storage)
    return root, storage, Layout(root, SNAP)


def _docs_rows():
    # Only the columns the report reads; the report must not care about the rest.
    return [{"doc_id": r["doc_id"], "text": r["text"]} for r in good_rows("documents")]


def _no_model(*args, **kwargs):
    raise AssertionError("the embedding model must not be loaded")


def run_report(root: str) -> None:
    assert main(["--snapshot", SNAP, "--set", f'storage.root_uri="{root}"']) == 0


def test_report_with_partial_inputs_says_not_run(env, capsys):
    root, storage, layout = env
    commit_table(storage, layout.table("documents_raw"), StageStats(12, 10, {"empty_text": 2}))
    doc_stats = StageStats(10, 3, {"near_duplicate": 4, "low_domain_score": 3})
    commit_table(storage, layout.table("documents"), doc_stats, _docs_rows())
    run_report(root)
    assert f"report: {join(layout.reports, 'index.html')}" in capsys.readouterr().out
    summary = storage.read_json(join(layout.reports, "summary.json"))
    assert summary["stages"]["documents_raw"] == {
        "status": "committed", "rows_in": 12, "rows_out": 10, "rows_quarantined": 2,
        "table_rows": 10, "wall_s": summary["stages"]["documents_raw"]["wall_s"],
    }  # fmt: skip
    assert summary["stages"]["documents"]["table_rows"] == 3
    assert summary["stages"]["qa"] == {"status": "not run"}
    assert summary["quarantine"]["documents"] == {"low_domain_score": 3, "near_duplicate": 4}
    assert summary["parse"]["questions"] == {"status": "not run"}
    assert summary["validation"]["qa"] == {"status": "not run"}
    doc_lengths = sorted(len(r["text"]) for r in _docs_rows())
    assert summary["lengths"]["document_chars"]["count"] == 3
    assert summary["lengths"]["document_chars"]["max"] == doc_lengths[-1]
    assert summary["lengths"]["answer_chars"] is None
    for key in ("graph", "combinations", "diversity"):
        assert summary[key] == {"status": "not run"}
    assert summary["levels"] == {
        t: {"status": "not run"} for t in ("questions", "questions_clean", "qa")
    }
    page = storage.read_text(join(layout.reports, "index.html"))
    assert '<h2>Concept graph</h2><p class="notrun">graph: not run.</p>' in page
    assert '<h2>Combinations</h2><p class="notrun">combinations: not run.</p>' in page
    assert '<h2>Diversity</h2><p class="notrun">questions: not run.</p>' in page
    assert "<td>Level-3</td><td>not run</td><td>not run</td>" in page
    assert "near_duplicate" in page and '<td class="n">4</td>' in page
    assert page.count("data:image/png;base64,") == 1  # only documents have lengths
    assert "not run" in page
    assert 'href="data_docs/index.html"' in page


def test_report_with_all_inputs_has_numbers_and_three_plots(env, monkeypatch):
    root, storage, layout = env
    # Every fixture question has its own combo_id: no pairs, so the model is never loaded.
    monkeypatch.setattr("jobs.filter.embed.load_model", _no_model)
    commit_table(storage, layout.table("documents"), StageStats(3, 3), _docs_rows())
    # Like questions.collect: rows_in/out count documents, the table holds 3 questions.
    reasons = {"unparseable": 1, "not_suitable": 1}
    q_stats = StageStats(4, 2, reasons, {"prompt": 900, "completion": 300}, {"parse_rate": 0.75})
    questions = good_rows("questions")
    commit_table(storage, layout.table("questions"), q_stats, questions, schema("questions"))
    qa_stats = StageStats(3, 3, {}, {"prompt": 400, "completion": 93}, {"parse_failure_rate": 0.0})
    commit_table(storage, layout.table("qa"), qa_stats, good_rows("qa"), schema("qa"))
    verdict = {"success": False, "statistics": {"evaluated": 15, "failed": 1},
               "critical_failures": ["qa: expect_x(answer)"], "warnings": []}  # fmt: skip
    commit_table(
        storage, join(layout.run, "validation", "qa"), StageStats(), files={"result.json": verdict}
    )
    run_report(root)
    summary = storage.read_json(join(layout.reports, "summary.json"))
    assert summary["tokens"]["questions"] == {"prompt": 900, "completion": 300}
    assert summary["total_tokens"] == 900 + 300 + 400 + 93
    assert summary["parse"]["questions"] == {"parse_failure_rate": 0.25, "parse_success_rate": 0.75}
    assert summary["stages"]["questions"]["rows_out"] == 2
    assert summary["stages"]["questions"]["table_rows"] == 3
    assert summary["quarantine"]["questions"] == reasons
    assert summary["parse"]["qa"] == {"parse_failure_rate": 0.0, "parse_success_rate": 1.0}
    assert summary["validation"]["qa"]["status"] == "failed"
    answers = sorted(len(r["answer"]) for r in good_rows("qa"))
    assert summary["lengths"]["answer_chars"]["min"] == answers[0]
    assert summary["lengths"]["answer_chars"]["median"] == answers[1]
    assert summary["levels"]["qa"] == {"status": "committed", "by_level": {"1": 3, "2": 0, "3": 0},
                                       "total": 3}  # fmt: skip
    assert summary["diversity"]["status"] == "computed"
    assert [f["num_pairs"] for f in summary["diversity"]["levels"].values()] == [0, 0, 0]
    page = storage.read_text(join(layout.reports, "index.html"))
    assert page.count("data:image/png;base64,") == 3
    assert "<td>questions</td><td>75.0%</td><td>25.0%</td>" in page
    assert "qa: expect_x(answer)" in page
    assert '<td>total</td><td></td><td class="n">1693</td>' in page


def test_report_with_nothing_committed_still_renders(env, monkeypatch):
    root, storage, layout = env
    monkeypatch.setattr("jobs.filter.embed.load_model", _no_model)
    run_report(root)
    summary = storage.read_json(join(layout.reports, "summary.json"))
    assert all(s == {"status": "not run"} for s in summary["stages"].values())
    assert summary["total_tokens"] == 0
    assert "data:image/png" not in storage.read_text(join(layout.reports, "index.html"))


def test_report_keeps_data_docs_beside_it(env):
    root, storage, layout = env
    docs = join(layout.reports, "data_docs", "index.html")
    storage.write_text(docs, "<html>docs</html>")
    run_report(root)
    assert storage.read_text(docs) == "<html>docs</html>"


def test_summary_helpers():
    assert length_stats([5, 1, 3, 9]) == {
        "count": 4, "min": 1, "median": 4.0, "mean": 4.5, "p90": 9, "max": 9,
    }  # fmt: skip
    assert length_stats([]) == {"count": 0}
    assert length_stats(None) is None
    summary = build_summary("s", "r", {"qa": {"rows_in": 4, "rows_quarantined": 1}}, {}, {})
    assert summary["parse"]["qa"] == {"parse_failure_rate": 0.25, "parse_success_rate": 0.75}
    assert summary["stages"]["documents"] == {"status": "not run"}
    assert list(summary["stages"]) == [
        "documents_raw", "candidates", "documents", "doc_concepts", "graph", "combinations",
        "questions", "questions_clean", "qa",
    ]  # fmt: skip
    assert level_counts([1, 3, 3, None]) == {"1": 1, "2": 0, "3": 2}
    assert level_counts([]) == {"1": 0, "2": 0, "3": 0}
    assert graph_summary({"rows_in": 1}) == {"status": "committed"}  # stats without figures
    assert combinations_summary({"by_level": {2: 4}}) == {
        "status": "committed", "by_level": {"1": 0, "2": 4, "3": 0}, "total": 4, "walks": {},
    }  # fmt: skip


GRAPH = {
    "vertices": {"topic": 4, "concept": 11},
    "edges": {"topic_topic": 3, "topic_concept": 14, "concept_concept": 20},
    "pruned": {"vertices_below_min_doc_freq": 2, "edges_over_max_degree": 5},
    "degree": {"min": 0, "max": 17, "mean": 4.93333, "p50": 4, "p90": 8, "p99": 16.2,
               "histogram": [[0, 1], [1, 2], [2, 5], [4, 6], [16, 1]]},
    "components": {"count": 2, "largest_size": 14, "largest_share": 0.9333,
                   "largest_sizes": [14, 1]},
}  # fmt: skip
WALKS = {"num_walks": 20, "distinct_concept_sets": 17, "mean_topics": 2.5,
         "mean_concepts": 3.25, "end_reasons": {"completed": 18, "dead_end": 2}}  # fmt: skip
# Two-dimensional stand-ins for embeddings, chosen so every cosine is known by hand.
VECTORS = {"q-a": [1.0, 0.0], "q-b": [0.0, 3.0], "q-c": [2.0, 2.0], "q-d": [5.0, 5.0]}


def _question(combo_id: str, level: int, text: str) -> dict:
    row = dict(good_rows("questions")[0])
    qid = f"{combo_id}-{text}-{level}"
    return row | {"question_id": qid, "combo_id": combo_id, "level": level, "question": text}


def test_report_has_graph_combinations_levels_and_diversity(env, monkeypatch):
    root, storage, layout = env
    concept_stats = {"num_documents": 3, "num_topics": 4, "num_concepts": 11, "parse_rate": 0.5}
    commit_table(
        storage, layout.table("doc_concepts"), StageStats(4, 2, {"unparseable": 2}, {},
                                                          concept_stats),
    )  # fmt: skip
    commit_table(storage, layout.table("graph"), StageStats(15, 15, extra={"graph": GRAPH}))
    by_level = {"by_level": {"1": 3, "2": 3, "3": 2}, "walks": WALKS}
    commit_table(storage, layout.table("combinations"), StageStats(8, 8, extra=by_level))
    questions = [
        _question("l1-x", 1, "q-a"), _question("l1-x", 1, "q-b"),  # cosine 0
        _question("l2-x", 2, "q-a"), _question("l2-x", 2, "q-c"),  # cosine 1/sqrt(2)
        _question("l2-y", 2, "q-c"), _question("l2-y", 2, "q-d"),  # cosine 1
        _question("l3-z", 3, "q-b"),  # alone: no pair
    ]  # fmt: skip
    generated = {"2": {"combinations": 2, "with_questions": 2, "questions": 4, "quarantined": {}}}
    commit_table(
        storage, layout.table("questions"), StageStats(3, 3, extra={"by_level": generated}),
        questions, schema("questions"),
    )  # fmt: skip
    cleaned = {"2": {"in": 4, "out": 3, "removed": {"duplicate_near": 1}}}
    commit_table(
        storage, layout.table("questions_clean"), StageStats(7, 6, {"duplicate_near": 1},
        extra={"by_level": cleaned}), questions[:4] + questions[5:], schema("questions"),
    )  # fmt: skip
    qa = [good_rows("qa")[0] | {"level": lvl, "question_id": f"a{i}"}
          for i, lvl in enumerate([1, 2, 2, 3, 3])]  # fmt: skip
    answered = {"2": {"in": 3, "out": 2, "removed": {"low_agreement": 1}}}
    qa_stats = StageStats(6, 5, {"low_agreement": 1}, extra={"by_level": answered})
    commit_table(storage, layout.table("qa"), qa_stats, qa, schema("qa"))
    calls = []

    def fake_embedder(*args, **kwargs):
        def embed(texts):
            calls.append(list(texts))
            return np.array([VECTORS[t] for t in texts])

        return embed

    monkeypatch.setattr("jobs.report.report.minilm_embedder", fake_embedder)
    run_report(root)
    summary = storage.read_json(join(layout.reports, "summary.json"))
    assert summary["stages"]["graph"]["rows_out"] == 15
    assert summary["parse"]["doc_concepts"] == {
        "parse_failure_rate": 0.5,
        "parse_success_rate": 0.5,
    }
    graph = summary["graph"]
    assert graph["vertices"] == GRAPH["vertices"] and graph["vertices_total"] == 15
    assert graph["edges"] == GRAPH["edges"] and graph["edges_total"] == 37
    for key in ("pruned", "degree", "components"):
        assert graph[key] == GRAPH[key]
    assert summary["combinations"] == {"status": "committed",
                                       "by_level": {"1": 3, "2": 3, "3": 2}, "total": 8,
                                       "walks": WALKS}  # fmt: skip
    assert summary["levels"]["questions"]["by_level"] == {"1": 2, "2": 4, "3": 1}
    qa_levels = {"status": "committed", "by_level": {"1": 1, "2": 2, "3": 2}, "total": 5}
    assert summary["levels"]["qa"] == qa_levels
    assert len(calls) == 1 and len(calls[0]) == 6  # the lone Level-3 question is not embedded
    div = summary["diversity"]
    assert div["model"] == "all-MiniLM-L6-v2" and div["bin_width"] == 0.05
    l1, l2, l3 = (div["levels"][k] for k in ("1", "2", "3"))
    assert (l1["num_sources"], l1["num_questions"], l1["num_pairs"], l1["mean"]) == (1, 2, 1, 0.0)
    assert (l2["num_sources"], l2["num_questions"], l2["num_pairs"]) == (2, 4, 2)
    assert l2["mean"] == round((1 / math.sqrt(2) + 1) / 2, 4)
    assert l3["num_pairs"] == 0 and l3["mean"] is None
    page = storage.read_text(join(layout.reports, "index.html"))
    # Lengths of questions and answers, the degree chart and the similarity densities.
    assert page.count("data:image/png;base64,") == 4
    assert '<td>vertices</td><td>concept</td><td class="n">11</td>' in page
    assert "<td>components</td><td>largest share</td><td>93.3%</td>" in page
    assert '<td>2–3</td><td class="n">5</td>' in page
    assert '<td>16–31</td><td class="n">1</td>' in page
    assert '<td class="n">4.93</td>' in page  # the degree's mean, rounded for the page
    assert '<td>walks ended: dead_end</td><td class="n">2</td>' in page
    assert '<td>Level-2</td><td class="n">4</td><td class="n">3</td><td class="n">2</td>' in page
    assert '<td>Level-2</td><td class="n">2</td><td class="n">4</td><td class="n">2</td>' in page
    # The funnel: per level and stage, in, out and the reasons of the rest.
    assert summary["funnel"]["by_level"]["2"] == {
        "generate_questions": {"in": 2, "out": 4, "removed": {},
                               "unit": "prompts in, questions out"},
        "clean_questions": cleaned["2"], "answers": answered["2"],
    }  # fmt: skip
    assert (
        '<td>Level-2</td><td>clean_questions</td><td class="n">4</td><td class="n">3</td>'
        "<td>duplicate_near: 1</td>" in page
    )
    assert (
        '<td>Level-2</td><td>answers</td><td class="n">3</td><td class="n">2</td>'
        "<td>low_agreement: 1</td>" in page
    )
