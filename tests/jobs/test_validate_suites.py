"""The expectation suites, tested both ways: good fixtures pass, each broken one fails.

Good rows live in tests/fixtures/expectations/{table}.jsonl; each broken case mutates a copy
and names the exact critical expectations that must fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from jobs.config import load_config
from jobs.validate.suites import (
    SuiteError,
    check_parameters,
    duplicate_rate,
    load_suite,
    parse_failure_rate,
    suite_parameters,
    suite_path,
)
from jobs.validate.validate import run_suite

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "expectations"
CFG = load_config("local")
STATS = {"rows_in": 10, "rows_out": 8, "rows_quarantined": 2, "parse_failure_rate": 0.2}


def good_rows(table: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / f"{table}.jsonl").read_text().splitlines()]


def validate(table: str, rows: list[dict] | pd.DataFrame, site: Path, stats=STATS) -> dict:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    spec = load_suite(suite_path(CFG, table))
    return run_suite(spec, frame, stats, suite_parameters(CFG), site, "test-run")


def critical_failed(result: dict) -> set[tuple[str, str, str]]:
    return {
        (r["suite"], r["type"], r["kwargs"].get("column", ""))
        for r in result["results"]
        if r["critical"] and not r["success"]
    }


# -- pure parts ------------------------------------------------------------------------------


def test_shipped_suites_load_and_use_only_known_parameters():
    for table in ("documents", "questions", "qa"):
        spec = load_suite(suite_path(CFG, table))
        assert spec.table == table
        check_parameters(spec, suite_parameters(CFG))
        assert any(e.type == "expect_table_row_count_to_be_between" for e in spec.expectations)
    assert load_suite(suite_path(CFG, "qa")).parameter_names() == {
        "max_parse_failure_rate",
        "max_duplicate_rate",
    }


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"type": "expect_column_to_exist", "kwargs": {"column": "x"}}, "expectations[0].critical"),
        ({"type": "ExpectColumnToExist", "critical": True}, "expectations[0].type"),
        ({"type": "expect_x", "critical": True, "severity": "high"}, "unknown keys ['severity']"),
    ],
)
def test_bad_suite_file_names_the_key(tmp_path, item, message):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"table": "t", "expectations": [item]}))
    with pytest.raises(SuiteError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_suite(path)


def test_missing_suite_and_unknown_parameter(tmp_path):
    with pytest.raises(SuiteError, match="not found"):
        load_suite(tmp_path / "nope.json")
    path = tmp_path / "t.json"
    item = {"type": "expect_column_values_to_be_between", "critical": True,
            "kwargs": {"column": "a", "max_value": {"$PARAMETER": "max_typo"}}}  # fmt: skip
    path.write_text(json.dumps({"table": "t", "expectations": [item]}))
    with pytest.raises(SuiteError, match="max_typo"):
        check_parameters(load_suite(path), suite_parameters(CFG))


def test_duplicate_rate_normalises_case_and_whitespace():
    assert duplicate_rate(["What is 2+2?", "what  is 2+2? ", "Other", None]) == pytest.approx(1 / 3)
    assert duplicate_rate([]) == 0.0


def test_parse_failure_rate_prefers_the_recorded_rate():
    assert parse_failure_rate({"parse_failure_rate": 0.25, "rows_in": 4}) == 0.25
    assert parse_failure_rate({"parse_rate": 0.75, "rows_in": 4, "rows_quarantined": 3}) == 0.25
    assert parse_failure_rate({"rows_in": 8, "rows_quarantined": 2}) == 0.25
    assert parse_failure_rate({"rows_in": 0}) is None
    assert parse_failure_rate(None) is None


# -- good fixtures pass ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "table", ["documents", "doc_concepts", "questions", "questions_clean", "qa"]
)
def test_good_fixture_passes(tmp_path, table):
    result = validate(table, good_rows(table), tmp_path / "site")
    assert result["success"] is True, result["critical_failures"]
    assert result["all_passed"] is True, result["warnings"]
    assert result["statistics"]["failed"] == 0
    assert result["statistics"]["evaluated"] == len(result["results"]) > 10
    assert {r["suite"] for r in result["results"]} == {table, f"{table}_metrics"}
    docs = (tmp_path / "site" / "index.html").read_text()
    assert f"{table}_metrics" in docs
    assert (tmp_path / "site" / "expectations" / f"{table}.html").is_file()
    pages = {p.parent.parent.parent.name for p in (tmp_path / "site").glob("validations/*/*/*/*")}
    assert pages == {table, f"{table}_metrics"}  # a rendered page for each of the two runs


def test_unknown_expectation_type_is_refused(tmp_path):
    path = tmp_path / "t.json"
    item = {"type": "expect_rows_to_be_nice", "critical": True, "kwargs": {}}
    path.write_text(json.dumps({"table": "t", "expectations": [item]}))
    frame = pd.DataFrame({"a": [1]})
    with pytest.raises(ValueError, match="expect_rows_to_be_nice"):
        run_suite(load_suite(path), frame, None, {}, tmp_path / "site", "r")


# -- broken fixtures fail --------------------------------------------------------------------

NULL = "expect_column_values_to_not_be_null"
UNIQUE = "expect_column_values_to_be_unique"
IN_SET = "expect_column_values_to_be_in_set"
LENGTHS = "expect_column_value_lengths_to_be_between"
BETWEEN = "expect_column_values_to_be_between"
REGEX = "expect_column_values_to_match_regex"
COMPOUND = "expect_compound_columns_to_be_unique"


def _set(table, index, **changes):
    rows = good_rows(table)
    rows[index].update(changes)
    return rows


def _docs_dup_text():
    rows = good_rows("documents")
    rows[1]["text"] = "  " + rows[0]["text"].upper()
    return rows


def _docs_dup_id():
    rows = good_rows("documents")
    rows[2]["doc_id"] = rows[0]["doc_id"]
    return rows


def _clean_repeat(transform):
    rows = good_rows("questions_clean")
    rows[2]["question"] = transform(rows[0]["question"])
    return rows


def _concept_twice():
    rows = good_rows("doc_concepts")
    rows.append(dict(rows[0], concept_raw="1.3 discriminant"))
    return rows


BROKEN = {
    "null doc_id": ("documents", lambda: _set("documents", 1, doc_id=None),
                    {("documents", NULL, "doc_id")}),
    "duplicate doc_id": ("documents", _docs_dup_id, {("documents", UNIQUE, "doc_id")}),
    "too-short text": ("documents", lambda: _set("documents", 0, text="x" * 199),
                       {("documents", LENGTHS, "text")}),
    "unfiltered row": ("documents", lambda: _set("documents", 2, filter_reason="near_duplicate"),
                       {("documents", IN_SET, "filter_reason")}),
    "rating off the scale": ("documents", lambda: _set("documents", 0, rating=11.0),
                             {("documents", BETWEEN, "rating")}),
    "duplicate texts": ("documents", _docs_dup_text,
                        {("documents_metrics", BETWEEN, "duplicate_rate")}),
    "bad edu_level": ("questions", lambda: _set("questions", 0, edu_level="university"),
                      {("questions", IN_SET, "edu_level")}),
    "bad orig_tag": ("questions", lambda: _set("questions", 1, orig_tag="rephrased"),
                     {("questions", IN_SET, "orig_tag")}),
    "level 4": ("questions", lambda: _set("questions", 1, level=4),
                {("questions", IN_SET, "level")}),
    "null topic_id": ("doc_concepts", lambda: _set("doc_concepts", 0, topic_id=None),
                      {("doc_concepts", NULL, "topic_id")}),
    "concept id without prefix": ("doc_concepts",
                                  lambda: _set("doc_concepts", 1, concept_id="vertex form"),
                                  {("doc_concepts", REGEX, "concept_id")}),
    "concept listed twice": ("doc_concepts", _concept_twice,
                             {("doc_concepts", COMPOUND, "")}),
    "bad P-K level": ("doc_concepts", lambda: _set("doc_concepts", 2, edu_level="university"),
                      {("doc_concepts", IN_SET, "edu_level")}),
    "question too short": ("questions", lambda: _set("questions", 2, question="Why?"),
                           {("questions", LENGTHS, "question")}),
    "clean question twice": ("questions_clean", lambda: _clean_repeat(str),
                             {("questions_clean", UNIQUE, "question"),
                              ("questions_clean_metrics", BETWEEN, "duplicate_rate")}),
    "clean question repeated in other case": (
        "questions_clean", lambda: _clean_repeat(lambda q: "  " + q.upper()),
        {("questions_clean_metrics", BETWEEN, "duplicate_rate")}),
    "clean question too long": ("questions_clean",
                                lambda: _set("questions_clean", 1, question="x" * 2001),
                                {("questions_clean", LENGTHS, "question")}),
    "null answer": ("qa", lambda: _set("qa", 0, answer=None), {("qa", NULL, "answer")}),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_fixture_fails(tmp_path, case):
    table, make_rows, expected = BROKEN[case]
    result = validate(table, make_rows(), tmp_path / "site")
    assert result["success"] is False
    assert critical_failed(result) == expected
    assert len(result["critical_failures"]) == len(expected)


def test_parse_failure_rate_above_limit_fails(tmp_path):
    stats = {"rows_in": 20, "rows_out": 1, "rows_quarantined": 19}  # no recorded rate: 0.95
    result = validate("questions", good_rows("questions"), tmp_path / "site", stats=stats)
    assert critical_failed(result) == {("questions_metrics", BETWEEN, "parse_failure_rate")}
    assert result["metrics"]["parse_failure_rate"] == pytest.approx(0.95)
    assert result["parameters"]["max_parse_failure_rate"] == CFG.validation.max_parse_failure_rate


def test_missing_stats_fails_the_parse_rate_check(tmp_path):
    result = validate("qa", good_rows("qa"), tmp_path / "site", stats=None)
    assert critical_failed(result) == {("qa_metrics", NULL, "parse_failure_rate")}


def test_missing_column_and_empty_table_fail(tmp_path):
    frame = pd.DataFrame(good_rows("qa")).drop(columns=["answer"])
    result = validate("qa", frame, tmp_path / "a")
    failed = critical_failed(result)
    assert ("qa", "expect_table_columns_to_match_set", "") in failed
    assert ("qa", NULL, "answer") in failed  # raises inside GX: reported, not crashed
    empty = pd.DataFrame(columns=list(good_rows("qa")[0]))
    result = validate("qa", empty, tmp_path / "b")
    assert ("qa", "expect_table_row_count_to_be_between", "") in critical_failed(result)


def test_non_critical_failure_only_warns(tmp_path):
    result = validate("qa", _set("qa", 1, num_tokens=0), tmp_path / "site")
    assert result["success"] is True
    assert result["all_passed"] is False
    assert result["statistics"]["warnings"] == 1
    assert "num_tokens" in result["warnings"][0]
