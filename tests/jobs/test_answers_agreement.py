r"""k-sample agreement on fixed answer sets, with math_verify and with a hanging comparison."""

from __future__ import annotations

import time

import pytest

from jobs.answers.agreement import agreement_by_level, exact_match, score_agreement
from jobs.evaluation.verify import Verifier
from jobs.publish.card import answer_checking_line
from jobs.report.render import render_html
from jobs.report.summary import agreement_summary, build_summary


@pytest.fixture(scope="module")
def equivalent():
    """math_verify equivalence, as answers.collect uses it (one worker for the module)."""
    with Verifier(timeout_s=10) as verifier:
        yield lambda a, b: verifier.check(a, b).correct


def test_equivalent_forms_all_agree(equivalent):
    score = score_agreement(["1/2", "0.5", "\\frac{1}{2}", "\\frac12"], equivalent)
    assert score.clusters == ((0, 1, 2, 3),)
    assert (score.agreement, score.num_samples, score.representative) == (1.0, 4, 0)


def test_two_one_one_split_gives_one_half(equivalent):
    score = score_agreement(["3", "0.5", "\\frac{1}{2}", "-3"], equivalent)
    assert score.clusters == ((0,), (1, 2), (3,))
    assert score.majority == (1, 2)
    assert (score.agreement, score.representative) == (0.5, 1)


def test_ties_go_to_the_first_sample():
    score = score_agreement(["7", "8", "8", "7"], exact_match)
    assert score.clusters == ((0, 3), (1, 2))
    assert (score.majority, score.agreement) == ((0, 3), 0.5)


def test_failed_samples_count_in_the_denominator():
    score = score_agreement([None, "2", "2", None], exact_match)
    assert (score.agreement, score.representative) == (0.5, 1)
    nothing = score_agreement([None, None], exact_match)
    assert (nothing.agreement, nothing.representative, nothing.clusters) == (0.0, None, ())


def test_one_sample_agrees_with_itself():
    score = score_agreement(["x+1"], lambda a, b: pytest.fail("nothing to compare"))
    assert (score.agreement, score.num_samples, score.representative) == (1.0, 1, 0)


def test_identical_answers_agree_without_a_comparison():
    calls = []
    score = score_agreement(["5", "5", "6"], lambda a, b: calls.append((a, b)) or False)
    assert score.agreement == pytest.approx(2 / 3)
    assert calls == [("6", "5")]


def hanging_compare(pred: str, gold: str, timeout_s: float) -> bool:
    """A comparison stuck forever on "hang" (runs in the verifier's worker process)."""
    if "hang" in (pred, gold):
        time.sleep(120)
    return pred == gold


def test_a_comparison_over_its_time_limit_counts_as_unequal():
    with Verifier(timeout_s=0.5, compare=hanging_compare, preload=()) as verifier:
        assert verifier.check("1", "1").correct  # the worker is up: start-up is not timed
        began = time.monotonic()
        score = score_agreement(
            ["1", "hang", "1.0", "1"], lambda a, b: verifier.check(a, b).correct
        )
        assert time.monotonic() - began < 30
        assert verifier.num_timeouts == 2  # "hang" vs "1", then "1.0" vs "hang"
    assert score.clusters == ((0, 3), (1,), (2,))
    assert score.agreement == 0.5


def test_agreement_by_level_histogram():
    by_level = agreement_by_level(
        [(2, 1.0, True), (1, 0.25, False), (2, 0.75, True), (2, 1.0, True)]
    )
    assert list(by_level) == ["1", "2"]
    assert by_level["1"] == {
        "questions": 1,
        "kept": 0,
        "low_agreement": 1,
        "mean": 0.25,
        "histogram": {"0.25": 1},
    }
    assert by_level["2"]["histogram"] == {"0.75": 1, "1.00": 2}
    assert by_level["2"]["mean"] == pytest.approx(0.9167)


SETTINGS = {
    "num_samples": 4,
    "min_agreement": 0.5,
    "verifier": "math-verify 0.9.0",
    "verify_timeout_s": 5.0,
    "num_verify_timeouts": 1,
}


def test_report_shows_the_agreement_distribution_per_level():
    qa_stats = {
        "rows_in": 3,
        "rows_out": 2,
        "answer_checking": SETTINGS,
        "agreement": {"by_level": agreement_by_level([(1, 1.0, True), (3, 0.25, False)])},
    }
    assert agreement_summary(None) == {"status": "not run"}
    assert agreement_summary({"rows_in": 1}) == {"status": "not recorded"}
    summary = build_summary("s", "r", {"qa": qa_stats}, {}, {})
    assert summary["agreement"]["settings"]["num_samples"] == 4
    assert summary["agreement"]["by_level"]["3"]["low_agreement"] == 1
    page = render_html(summary, {})
    assert "<h2>Answer agreement</h2>" in page
    assert "<td>Level-3</td>" in page and "0.25: 1" in page
    assert "math-verify 0.9.0" in page
    empty = render_html(build_summary("s", "r", {}, {}, {}), {})
    assert "answer checking: not run" in empty


def test_card_states_the_answer_checking_settings():
    line = answer_checking_line(SETTINGS)
    assert "4 sampled answer(s) per question" in line
    assert "math-verify 0.9.0 (5.0 s per comparison" in line
    assert "agreement of 0.5 are quarantined (`low_agreement`)" in line
    assert "not recorded" in answer_checking_line(None)
