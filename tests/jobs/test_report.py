"""The summary report: numbers from committed stats, "not run" for what is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from committed import commit_table

from jobs.commit import StageStats
from jobs.config import load_config
from jobs.layout import Layout
from jobs.report.report import main
from jobs.report.summary import build_summary, length_stats
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
    page = storage.read_text(join(layout.reports, "index.html"))
    assert "near_duplicate" in page and '<td class="n">4</td>' in page
    assert page.count("data:image/png;base64,") == 1  # only documents have lengths
    assert "not run" in page
    assert 'href="data_docs/index.html"' in page


def test_report_with_all_inputs_has_numbers_and_three_plots(env):
    root, storage, layout = env
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
    page = storage.read_text(join(layout.reports, "index.html"))
    assert page.count("data:image/png;base64,") == 3
    assert "<td>questions</td><td>75.0%</td><td>25.0%</td>" in page
    assert "qa: expect_x(answer)" in page
    assert '<td>total</td><td></td><td class="n">1693</td>' in page


def test_report_with_nothing_committed_still_renders(env):
    root, storage, layout = env
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
    summary = build_summary("s", "r", {"qa": {"rows_in": 4, "rows_quarantined": 1}}, {}, {}, {})
    assert summary["parse"]["qa"] == {"parse_failure_rate": 0.25, "parse_success_rate": 0.75}
    assert summary["stages"]["documents"] == {"status": "not run"}
