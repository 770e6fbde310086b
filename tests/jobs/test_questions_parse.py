"""The P-L1 parser on clean, garbled and hostile model outputs."""

from __future__ import annotations

import random

import pytest

from jobs.questions.parse import (
    MAX_QUESTIONS,
    ParsedQuestion,
    normalise_level,
    normalise_orig_tag,
    parse_questions,
)
from jobs.questions.prompts import EXAMPLE_KEYS, EXAMPLE_QUESTIONS


def block(n: int, question: str, tag: str = "<newly_created>", level: str = "<college>") -> str:
    return f"<Q{n}>\nQuestion: {question}\nOrig_tag: {tag}\nLevel: {level}\n</Q{n}>\n"


Q1 = "What is the derivative of $x^3$ at $x = 2$?"
Q2 = "Compute $\\int_0^1 x^2\\,dx$."
Q3 = "How many primes are there below $30$?"


def test_clean_two_blocks():
    text = block(1, Q1, "<original_question>", "<high_school>") + block(2, Q2)
    result = parse_questions(text)
    assert result.status == "ok"
    assert result.questions == (
        ParsedQuestion(Q1, "original_question", "high_school"),
        ParsedQuestion(Q2, "newly_created", "college"),
    )
    assert result.error is None
    assert result.skipped == {}


def test_missing_closing_tags():
    text = f"<Q1>\nQuestion: {Q1}\nOrig_tag: <original_question>\nLevel: <elementary>\n"
    text += f"<Q2>\nQuestion: {Q2}\nOrig_tag: <newly_created>\nLevel: <competition>"
    result = parse_questions(text)
    assert [q.question for q in result.questions] == [Q1, Q2]
    assert [q.edu_level for q in result.questions] == ["elementary", "competition"]


def test_truncated_mid_block_keeps_complete_blocks_and_counts_the_cut_one():
    text = block(1, Q1) + "<Q2>\nQuestion: Find the area of a circle of rad"
    result = parse_questions(text)
    assert result.status == "ok"
    assert [q.question for q in result.questions] == [Q1]
    assert result.skipped == {"missing_orig_tag": 1}


def test_truncated_inside_the_level_value():
    result = parse_questions(f"<Q1>\nQuestion: {Q1}\nOrig_tag: <newly_created>\nLevel: <coll")
    assert result.status == "unparseable"
    assert result.skipped == {"bad_level": 1}
    assert "bad_level=1" in result.error


def test_truncated_closing_tag():
    text = f"<Q1>\nQuestion: {Q1}\nOrig_tag: <newly_created>\nLevel: <college>\n</Q1"
    result = parse_questions(text)
    assert result.questions == (ParsedQuestion(Q1, "newly_created", "college"),)


def test_case_whitespace_and_bold_labels():
    text = (
        f"<q1>  \n   **QUESTION:**   {Q1}   \n **orig tag:** Original_Question \n"
        "  **LEVEL:**  High School  \n</q1>"
    )
    result = parse_questions(text)
    assert result.questions == (ParsedQuestion(Q1, "original_question", "high_school"),)


def test_tags_without_angle_brackets_and_spaced_tags():
    text = f"< Q1 >\nQuestion: {Q1}\nOrig tag: newly_created\nLevel: grad_school\n< / Q1 >"
    result = parse_questions(text)
    assert result.questions == (ParsedQuestion(Q1, "newly_created", "grad_school"),)


@pytest.mark.parametrize(
    "opener",
    ["Q1:", "Q1.", "**Q1**", "### Q1", "[Q1]", "Q1>", "Q1"],
)
def test_block_openers_without_xml_tags(opener):
    text = (
        f"{opener}\nQuestion: {Q1}\nOrig_tag: <newly_created>\nLevel: <college>\n"
        f"{opener.replace('1', '2')}\nQuestion: {Q2}\nOrig_tag: <newly_created>\nLevel: <college>"
    )
    result = parse_questions(text)
    assert [q.question for q in result.questions] == [Q1, Q2]


def test_no_block_tags_at_all_splits_on_question_labels():
    text = (
        f"Question: {Q1}\nOrig_tag: original_question\nLevel: middle school\n\n"
        f"Question: {Q2}\nOrig_tag: newly created\nLevel: college"
    )
    result = parse_questions(text)
    assert [(q.question, q.orig_tag, q.edu_level) for q in result.questions] == [
        (Q1, "original_question", "middle_school"),
        (Q2, "newly_created", "college"),
    ]


def test_all_fields_on_one_line():
    text = f"<Q1> Question: {Q1} Orig_tag: <newly_created> Level: <high_school> </Q1>"
    result = parse_questions(text)
    assert result.questions == (ParsedQuestion(Q1, "newly_created", "high_school"),)


def test_word_level_inside_question_text_is_not_a_label():
    q = "A tank's water level: it rises $2$ cm per minute from $10$ cm. When does it reach $30$ cm?"
    text = f"<Q1>\nQuestion: {q}\nOrig_tag: <newly_created>\nLevel: <middle_school>\n</Q1>"
    result = parse_questions(text)
    assert result.questions == (ParsedQuestion(q, "newly_created", "middle_school"),)


def test_word_question_inside_question_text_does_not_split():
    q = "Answer this question: what is $7 \\times 8$?"
    result = parse_questions(block(1, q))
    assert [x.question for x in result.questions] == [q]


def test_multiline_question_keeps_its_lines():
    q = "Let $f(x) = x^2$.\nFind $f(3)$.\n\n\n\nGive an exact value."
    result = parse_questions(block(1, q))
    assert result.questions[0].question == "Let $f(x) = x^2$.\nFind $f(3)$.\n\nGive an exact value."


def test_markdown_fences_are_ignored():
    text = "Here are the questions:\n```xml\n" + block(1, Q1) + block(2, Q2) + "```\nHope it helps!"
    result = parse_questions(text)
    assert [q.question for q in result.questions] == [Q1, Q2]


def test_nested_and_duplicated_tags():
    text = f"<Q1><Q1>\nQuestion: {Q1}\nOrig_tag: <newly_created>\nLevel: <college>\n</Q1></Q1>"
    result = parse_questions(text)
    assert result.questions == (ParsedQuestion(Q1, "newly_created", "college"),)
    assert result.skipped == {}


def test_duplicate_questions_are_dropped_case_and_space_insensitive():
    text = block(1, Q1) + block(2, "  " + Q1.upper().replace(" ", "   ")) + block(3, Q2)
    result = parse_questions(text)
    assert [q.question for q in result.questions] == [Q1, Q2]
    assert result.skipped == {"duplicate": 1}


def test_caps_at_five_questions():
    text = "".join(block(i, f"What is ${i} + {i}$ equal to?") for i in range(1, 8))
    result = parse_questions(text)
    assert len(result.questions) == MAX_QUESTIONS
    assert result.questions[-1].question == "What is $5 + 5$ equal to?"
    assert result.skipped == {"over_limit": 2}


def test_block_without_question_field_is_skipped():
    text = "<Q1>\nWhat is 2+2?\nOrig_tag: <newly_created>\nLevel: <elementary>\n</Q1>" + block(
        2, Q2
    )
    result = parse_questions(text)
    assert [q.question for q in result.questions] == [Q2]
    assert result.skipped == {"missing_question": 1}


def test_unknown_level_skips_the_block():
    text = block(1, Q1, level="<kindergarten>") + block(2, Q2, level="3")
    result = parse_questions(text)
    assert result.status == "unparseable"
    assert result.skipped == {"bad_level": 2}


def test_missing_level_skips_the_block():
    text = f"<Q1>\nQuestion: {Q1}\nOrig_tag: <newly_created>\n</Q1>" + block(2, Q2)
    result = parse_questions(text)
    assert [q.question for q in result.questions] == [Q2]
    assert result.skipped == {"missing_level": 1}


def test_template_copied_verbatim_is_not_a_question():
    text = (
        "<Q1>\nQuestion: What is the sum of the first ten positive integers?\n"
        "Orig_tag: <original_question>|<newly_created>\n"
        "Level: <elementary>|<middle_school>|<high_school>|<college>|<grad_school>|"
        "<competition>\n</Q1>"
    )
    result = parse_questions(text)
    assert result.status == "unparseable"
    assert result.skipped == {"bad_orig_tag": 1}


def test_prompt_example_copied_is_excluded():
    text = block(1, EXAMPLE_QUESTIONS[0], level="<middle_school>") + block(2, Q3)
    result = parse_questions(text, EXAMPLE_KEYS)
    assert [q.question for q in result.questions] == [Q3]
    assert result.skipped == {"copied_example": 1}
    assert parse_questions(text).questions[0].question == EXAMPLE_QUESTIONS[0]


@pytest.mark.parametrize(
    "question, reason",
    [("", "empty_question"), ("   ...  ", "empty_question"), ("2+2?", "too_short")],
)
def test_empty_and_tiny_questions(question, reason):
    result = parse_questions(block(1, question))
    assert result.status == "unparseable"
    assert result.skipped == {reason: 1}


def test_runaway_question_is_too_long():
    result = parse_questions(block(1, "What is " + "1 + " * 1000 + "1?"))
    assert result.skipped == {"too_long": 1}


@pytest.mark.parametrize(
    "text",
    [
        "NOT SUITABLE for creating questions",
        "not suitable for creating questions.",
        "The article is NOT SUITABLE for creating questions because it is about cooking.",
        "**NOT_SUITABLE**",
        "```\nNOT SUITABLE for creating questions\n```",
    ],
)
def test_not_suitable_variants(text):
    result = parse_questions(text)
    assert result.status == "not_suitable"
    assert result.questions == ()
    assert result.error is None


def test_questions_win_over_a_stray_not_suitable():
    result = parse_questions("Parts are NOT SUITABLE, but:\n" + block(1, Q1))
    assert result.status == "ok"
    assert len(result.questions) == 1


def test_not_suitable_with_only_broken_blocks_is_not_suitable():
    result = parse_questions("NOT SUITABLE\n<Q1>\nOrig_tag: <newly_created>\n</Q1>")
    assert result.status == "not_suitable"
    assert result.skipped == {"missing_question": 1}


@pytest.mark.parametrize("text", ["", None, "   \n\n  ", "Sure! Here are some questions."])
def test_empty_or_chatty_output_is_unparseable(text):
    result = parse_questions(text)
    assert result.status == "unparseable"
    assert result.error == "no <Qn> block with a Question field"


def test_random_bytes_are_unparseable_without_crashing():
    rng = random.Random(7)
    for _ in range(50):
        junk = bytes(rng.randrange(256) for _ in range(300)).decode("utf-8", errors="replace")
        assert parse_questions(junk).status in {"unparseable", "not_suitable"}


def test_random_garbage_with_a_valid_block_inside():
    rng = random.Random(3)
    junk = "".join(chr(rng.randrange(32, 0x2FF)) for _ in range(2000))
    result = parse_questions(junk + "\n" + block(1, Q1) + junk.replace("<", ""))
    assert result.questions[0].question == Q1


def test_very_long_output_stays_fast_and_capped():
    text = "".join(block(i, f"Compute ${i} \\cdot {i + 1}$ exactly.") for i in range(1, 3000))
    assert len(text) > 200_000
    result = parse_questions(text)
    assert len(result.questions) == MAX_QUESTIONS
    assert result.skipped == {"over_limit": 2999 - MAX_QUESTIONS}


def test_crlf_and_null_bytes():
    text = block(1, Q1).replace("\n", "\r\n").replace("Question", "Ques\x00tion")
    assert parse_questions(text).questions[0].question == Q1


@pytest.mark.parametrize(
    "value, expected",
    [
        ("<elementary>", "elementary"),
        ("Primary School", "elementary"),
        ("middle-school", "middle_school"),
        ("Junior High", "middle_school"),
        ("HIGH_SCHOOL", "high_school"),
        ("secondary", "high_school"),
        ("<college>", "college"),
        ("undergraduate", "college"),
        ("Graduate School", "grad_school"),
        ("grad_school", "grad_school"),
        ("Competition (AMC)", "competition"),
        ("olympiad", "competition"),
        ("high school (college prep)", "high_school"),
        ("high school or college", None),
        ("<elementary>|<middle_school>", None),
        ("kindergarten", None),
        ("", None),
    ],
)
def test_normalise_level(value, expected):
    assert normalise_level(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("<original_question>", "original_question"),
        ("is_original", "original_question"),
        ("Original (rephrased)", "original_question"),
        ("<newly_created>", "newly_created"),
        ("new", "newly_created"),
        ("Newly Created", "newly_created"),
        ("<original_question>|<newly_created>", None),
        ("unknown", None),
    ],
)
def test_normalise_orig_tag(value, expected):
    assert normalise_orig_tag(value) == expected
