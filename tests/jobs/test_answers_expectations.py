"""The qa suite's answer-checking expectations: good fixture passes, broken agreement fails."""

from __future__ import annotations

import pytest
from test_validate_suites import critical_failed, good_rows, validate

BETWEEN = "expect_column_values_to_be_between"
NULL = "expect_column_values_to_not_be_null"


def test_good_fixture_has_agreement_scores(tmp_path):
    rows = good_rows("qa")
    assert {r["num_samples"] for r in rows} == {1, 4}
    assert any(r["agreement"] < 1 for r in rows)
    assert validate("qa", rows, tmp_path / "site")["success"] is True


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"agreement": 1.25}, {("qa", BETWEEN, "agreement")}),
        ({"agreement": -0.5}, {("qa", BETWEEN, "agreement")}),
        ({"agreement": None}, {("qa", NULL, "agreement")}),
        ({"num_samples": 0}, {("qa", BETWEEN, "num_samples")}),
    ],
)
def test_broken_answer_checking_fails(tmp_path, change, expected):
    rows = good_rows("qa")
    rows[1].update(change)
    result = validate("qa", rows, tmp_path / "site")
    assert result["success"] is False
    assert critical_failed(result) == expected
