"""Boxed-answer extraction and normalisation."""

from __future__ import annotations

import pytest

from jobs.answers.parse import AnswerResult, extract_boxed, normalise_answer, parse_answer
from jobs.answers.prompts import build_messages, repair_prompt
from jobs.answers.tasks import is_parseable
from jobs.llm.tasks import get_task


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"So the answer is \boxed{42}.", "42"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{x^{2} + \sqrt{y_{1}}}", r"x^{2} + \sqrt{y_{1}}"),
        (r"first \boxed{1}, finally \boxed{2}", "2"),
        (r"\boxed {7}", "7"),
        ("\\boxed\n{7}", "7"),
        (r"\fbox{3}", "3"),
        (r"\boxed{1} then \fbox{9}", "9"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"The answer is $\boxed 5$.", "5"),
        (r"\boxed{\boxed{3}}", "3"),
    ],
)
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        None,
        "The answer is 42.",
        r"\boxed{3",  # cut off by max_tokens
        r"\boxed{1} and later \boxed{2",  # the last box is cut off: no fallback to the first
        r"\boxedfoo{3}",
        r"\boxed}",
    ],
)
def test_extract_boxed_none(text):
    assert extract_boxed(text) is None


@pytest.mark.parametrize(
    "raw, expected",
    [
        (" 42 ", "42"),
        ("42.", "42"),
        ("0.5.", "0.5"),
        ("$3$", "3"),
        (r"\$5", "5"),
        (r"\dfrac{3}{4}", r"\frac{3}{4}"),
        (r"\tfrac12", r"\frac12"),
        (r"\left( 1, 2 \right)", "(1,2)"),
        (r"\left\{ a \right\}", r"\{a\}"),
        (r"x \rightarrow 0", r"x\rightarrow0"),
        (r"\pi r^2", r"\pi r^2"),
        (r"x \cdot y", r"x\cdot y"),
        (r"2 \sqrt{3}", r"2\sqrt{3}"),
        (r"10\,\text{ cm  }", r"10\text{cm}"),
        (r"5 \text{square  meters}", r"5\text{square meters}"),
        (r"\displaystyle \frac{a}{b}", r"\frac{a}{b}"),
        (r"\(x+1\)", "x+1"),
        (r"\[ y = 2x + 1 \]", "y=2x+1"),
        (r"3 \quad \text{or} \quad 4", r"3\text{or}4"),
        ("90^\\circ", "90^\\circ"),
    ],
)
def test_normalise_answer(raw, expected):
    assert normalise_answer(raw) == expected


def test_parse_answer_ok_and_failures():
    assert parse_answer(r"Thus $\boxed{\dfrac{1}{3}}$.") == AnswerResult("ok", r"\frac{1}{3}")
    assert parse_answer("no box").status == "unparseable"
    assert parse_answer("no box").error == "no complete \\boxed{...} answer"
    assert parse_answer(r"\boxed{ $ $ }") == AnswerResult(
        "unparseable", None, "empty \\boxed{} answer"
    )


def test_registered_task_repairs_missing_boxes():
    task = get_task("answers")
    assert task.is_parseable is is_parseable
    assert task.is_parseable(r"... \boxed{4}")
    assert not task.is_parseable("The answer is 4")
    assert not task.is_parseable(r"\boxed{")
    assert "\\boxed{" in task.repair_prompt("The answer is 4")


def test_prompt_embeds_question_with_braces():
    messages = build_messages("  Solve $x^{2} = 4$ for {x}.  ")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[-1]["content"].endswith("Problem: Solve $x^{2} = 4$ for {x}.")
    assert "\\boxed{answer}" in messages[-1]["content"]
    assert messages[2]["content"].endswith("\\boxed{21}")
    assert repair_prompt("x") == repair_prompt("y")
