"""The question parsers (P-L1, P-L2/P-L3) and prompts on clean, garbled and hostile outputs."""

from __future__ import annotations

import random

import pytest

from jobs.llm.prompt_data import DATA_NOTE
from jobs.questions.parse import (
    MAX_QUESTIONS,
    ParsedQuestion,
    normalise_level,
    normalise_orig_tag,
    parse_concept_questions,
    parse_questions,
)
from jobs.questions.prompts import (
    CONCEPT_PREFILL,
    EXAMPLE_KEYS,
    EXAMPLE_KEYS_CONCEPTS,
    EXAMPLE_QUESTIONS,
    L2_EXAMPLE_QUESTIONS,
    L3_EXAMPLE_QUESTIONS,
    PROMPT_VERSION_L2,
    PROMPT_VERSION_L3,
    TRUNCATION_MARK,
    build_l2_messages,
    build_l3_messages,
    build_messages,
    concept_repair_prompt,
    join_references,
    reference_budgets,
)


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


def test_max_questions_lowers_the_cap():
    text = "".join(block(i, f"What is ${i} + {i}$ equal to?") for i in range(1, 5))
    result = parse_questions(text, max_questions=2)
    assert [q.question for q in result.questions] == [
        "What is $1 + 1$ equal to?",
        "What is $2 + 2$ equal to?",
    ]
    assert result.skipped == {"over_limit": 2}


def test_selected_concepts_line_stays_part_of_an_l1_field():
    # P-L1 does not know the label: it is text, exactly as before P-L2 existed.
    text = f"<Q1>\nQuestion: {Q1}\nSelected Concepts: [Power rule]\n"
    text += "Orig_tag: <newly_created>\nLevel: <college>\n</Q1>"
    assert parse_questions(text).questions == (
        ParsedQuestion(Q1 + "\nSelected Concepts: [Power rule]", "newly_created", "college"),
    )


def test_old_positional_constructor_still_works():
    q = ParsedQuestion(Q1, "newly_created", "college")
    assert q.selected_concepts == ()
    assert ParsedQuestion(Q1, "newly_created", "", ("a", "b")).selected_concepts == ("a", "b")


# ---------------------------------------------------------------- P-L2 / P-L3 parsing


def cblock(n: int, question: str, concepts: str = "[Chain rule, Power rule]") -> str:
    return f"<Q{n}>\nSelected Concepts: {concepts}\nQuestion: {question}\n</Q{n}>\n"


def test_concept_blocks_clean():
    text = cblock(1, Q1) + cblock(2, Q2, "[Definite integral, Area under a curve]")
    result = parse_concept_questions(text)
    assert result.status == "ok"
    assert result.questions == (
        ParsedQuestion(Q1, "newly_created", "", ("Chain rule", "Power rule")),
        ParsedQuestion(Q2, "newly_created", "", ("Definite integral", "Area under a curve")),
    )
    assert result.skipped == {}


def test_prefilled_answer_as_the_engine_returns_it():
    text = (
        CONCEPT_PREFILL + "Chain rule, Power rule]\nQuestion: " + Q1 + "\n</Q1>\n" + cblock(2, Q2)
    )
    result = parse_concept_questions(text)
    assert [(q.question, q.selected_concepts) for q in result.questions] == [
        (Q1, ("Chain rule", "Power rule")),
        (Q2, ("Chain rule", "Power rule")),
    ]


@pytest.mark.parametrize(
    "concepts, expected",
    [
        ("[Chain rule, Power rule]", ("Chain rule", "Power rule")),
        ('["Chain rule", "Power rule"]', ("Chain rule", "Power rule")),
        ("['Chain rule'; 'Power rule']", ("Chain rule", "Power rule")),
        ("Chain rule, Power rule", ("Chain rule", "Power rule")),
        ("1. Chain rule 2. Power rule", ("Chain rule", "Power rule")),
        ("1) Chain rule, 2) Power rule", ("Chain rule", "Power rule")),
        ("[Area of radius 2. Then more]", ("Area of radius 2. Then more",)),
        ("[1. Chain rule, 2. Power rule]", ("Chain rule", "Power rule")),
        ("[**Chain rule**, *Power rule*,]", ("Chain rule", "Power rule")),
        ("[Chain rule, chain rules, Power rule]", ("Chain rule", "Power rule")),
        ("[Chain rule, Power rule", ("Chain rule", "Power rule")),  # unclosed
        ("[Sum of $a, b$, Points (x, y)]", ("Sum of $a, b$", "Points (x, y)")),
        ("\n- Chain rule\n- Power rule\n", ("Chain rule", "Power rule")),
    ],
)
def test_selected_concept_list_variants(concepts, expected):
    result = parse_concept_questions(cblock(1, Q1, concepts))
    assert result.questions[0].selected_concepts == expected
    assert result.questions[0].question == Q1


@pytest.mark.parametrize("concepts", ["[]", "", "[ , ]"])
def test_empty_concept_list_keeps_the_question(concepts):
    result = parse_concept_questions(cblock(1, Q1, concepts))
    assert result.questions == (ParsedQuestion(Q1, "newly_created", "", ()),)
    assert result.skipped == {"missing_concepts": 1}


def test_missing_concepts_label_keeps_the_question():
    result = parse_concept_questions(f"<Q1>\nQuestion: {Q1}\n</Q1>\n" + cblock(2, Q2))
    assert [q.selected_concepts for q in result.questions] == [(), ("Chain rule", "Power rule")]
    assert result.skipped == {"missing_concepts": 1}


def test_long_concept_lists_are_cut():
    names = ", ".join(f"Concept {c}" for c in "ABCDEFGHIJ")
    result = parse_concept_questions(cblock(1, Q1, f"[{names}]"))
    assert result.questions[0].selected_concepts == tuple(f"Concept {c}" for c in "ABCDEF")
    assert result.skipped == {"concepts_cut": 1}


def test_concepts_after_the_question_and_without_block_tags():
    text = (
        f"Question: {Q1}\nSelected concepts: Chain rule; Power rule\n\n"
        f"**Question:** {Q2}\n**Chosen Concepts:** [Definite integral]"
    )
    result = parse_concept_questions(text)
    assert [(q.question, q.selected_concepts) for q in result.questions] == [
        (Q1, ("Chain rule", "Power rule")),
        (Q2, ("Definite integral",)),
    ]


def test_l1_fields_in_a_concept_answer_end_the_question():
    text = f"<Q1>\nSelected Concepts: [Chain rule]\nQuestion: {Q1}\nLevel: <college>\n</Q1>"
    assert parse_concept_questions(text).questions[0].question == Q1


def test_concepts_word_inside_a_question_is_text():
    q = "Using these concepts: the chain rule and $e^x$, differentiate $e^{x^2}$."
    result = parse_concept_questions(cblock(1, q))
    assert result.questions[0].question == q


def test_concept_questions_limits_duplicates_and_lengths():
    text = "".join(cblock(i, f"Compute ${i} \\cdot {i + 1}$ exactly.") for i in range(1, 6))
    text += cblock(6, "Compute $1 \\cdot 2$   EXACTLY.") + cblock(7, "2+2?") + cblock(8, "x" * 2001)
    result = parse_concept_questions(text, max_questions=3)
    assert len(result.questions) == 3
    assert result.skipped == {"duplicate": 1, "over_limit": 2, "too_long": 1, "too_short": 1}


def test_concept_example_copy_is_excluded():
    copied = L2_EXAMPLE_QUESTIONS[0][1]
    text = cblock(1, copied, "[Area of a circle, Circumference]") + cblock(2, Q3)
    result = parse_concept_questions(text, EXAMPLE_KEYS_CONCEPTS)
    assert [q.question for q in result.questions] == [Q3]
    assert result.skipped == {"copied_example": 1}


def test_concept_answer_not_suitable_and_unparseable():
    assert parse_concept_questions("NOT SUITABLE for creating questions").status == "not_suitable"
    result = parse_concept_questions("<Q1>\nSelected Concepts: [Chain rule]\n</Q1>")
    assert result.status == "unparseable"
    assert result.skipped == {"missing_question": 1}
    assert parse_concept_questions(None).error == "no <Qn> block with a Question field"


def test_concept_parser_never_raises_on_garbage():
    rng = random.Random(5)
    pieces = [
        "<Q1>", "</Q1>", "Selected Concepts:", "[", "]", "Question:", ",", "\n", "Level:",
        "What is $2+2$ in base 3?", '"', "$", "(", "Concepts:", "NOT SUITABLE", "x" * 50,
    ]  # fmt: skip
    for _ in range(1000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(40)))
        result = parse_concept_questions(text, EXAMPLE_KEYS_CONCEPTS, max_questions=3)
        assert result.status in {"ok", "unparseable", "not_suitable"}
        assert len(result.questions) <= 3
        assert all(q.orig_tag == "newly_created" and q.edu_level == "" for q in result.questions)


# ---------------------------------------------------------------- prompts


TOPICS = [("Derivatives", ["Power rule", "Chain rule"]), ("Extrema", [])]


def test_l1_num_questions_changes_only_the_real_turn():
    default = build_messages("Some article.", 1000)
    assert build_messages("Some article.", 1000, num_questions=5) == default
    three = build_messages("Some article.", 1000, num_questions=3)
    assert three[:3] == default[:3]
    assert "Write 1 to 3 math questions" in three[3]["content"]
    assert "Write 1 math question based" in build_messages("x", 100, 1)[3]["content"]
    with pytest.raises(ValueError):
        build_messages("x", 100, 0)


def test_l2_prompt_layout():
    messages = build_l2_messages(
        "  An article on {text} and rates.  ", TOPICS, 1000, num_questions=4
    )
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    user = messages[3]["content"]
    assert user.startswith(
        DATA_NOTE + "\n<<<ARTICLE>>>\nAn article on {text} and rates.\n<<<END ARTICLE>>>\n\n"
    )
    assert "1. Derivatives: Power rule; Chain rule\n2. Extrema\n" in user
    assert "Write 1 to 4 math questions" in user
    assert "Write 1 to 5 math questions" in messages[1]["content"]
    assert messages[4] == {"role": "assistant", "content": CONCEPT_PREFILL}
    example = parse_concept_questions(messages[2]["content"])
    assert [q.selected_concepts for q in example.questions] == [c for c, _ in L2_EXAMPLE_QUESTIONS]
    assert PROMPT_VERSION_L2 == "p-l2/v2"
    with pytest.raises(ValueError):
        build_l2_messages("text", [], 1000)


def test_l2_prompt_truncates_the_article():
    user = build_l2_messages("word " * 1000, TOPICS, 300)[3]["content"]
    article = user.split("<<<ARTICLE>>>\n")[1].split("\n<<<END ARTICLE>>>")[0]
    assert len(article) <= 300 and article.endswith(TRUNCATION_MARK.strip())


def test_l3_prompt_layout():
    messages = build_l3_messages(["First doc.", "Second doc."], ["Algebra", "Probability"],
                                 ["Eigenvalues", "Bayes' theorem"], 1000)  # fmt: skip
    user = messages[3]["content"]
    assert user.startswith(
        DATA_NOTE + "\n<<<REFERENCE ARTICLE 1>>>\nFirst doc.\n<<<END REFERENCE ARTICLE 1>>>\n\n"
        "<<<REFERENCE ARTICLE 2>>>\nSecond doc.\n<<<END REFERENCE ARTICLE 2>>>\n\n"
        "Topics: Algebra; Probability\nKey concepts: Eigenvalues; Bayes' theorem\n"
    )
    assert "Write 1 to 3 math questions" in user and "different topics" in user
    assert messages[4]["content"] == CONCEPT_PREFILL
    example = parse_concept_questions(messages[2]["content"])
    assert [q.question for q in example.questions] == [q for _, q in L3_EXAMPLE_QUESTIONS]
    assert PROMPT_VERSION_L3 == "p-l3/v2"
    single = build_l3_messages(["Only doc."], ["Algebra"], ["Eigenvalues"], 1000, num_questions=1)
    assert single[3]["content"].startswith(
        DATA_NOTE + "\n<<<REFERENCE ARTICLE 1>>>\nOnly doc.\n<<<END REFERENCE ARTICLE 1>>>\n\n"
        "Topics: Algebra\n"
    )
    assert "Write 1 math question that" in single[3]["content"]
    for texts in ([], ["a", "b", "c"]):
        with pytest.raises(ValueError):
            build_l3_messages(texts, ["Algebra"], ["Eigenvalues"], 1000)


def test_l3_articles_share_the_budget():
    assert reference_budgets([100, 5000], 1000) == [100, 900]
    assert reference_budgets([5000, 5000], 1000) == [500, 500]
    assert reference_budgets([10, 20], 1000) == [10, 20]
    assert reference_budgets([7000], 1000) == [1000]
    joined = join_references(["a" * 5000, "b" * 5000], 1000)
    first, second = joined.split("\n\n")
    first = first.removeprefix("<<<REFERENCE ARTICLE 1>>>\n")
    second = second.removeprefix("<<<REFERENCE ARTICLE 2>>>\n")
    assert len(first.removesuffix("\n<<<END REFERENCE ARTICLE 1>>>")) == 500
    second = second.removesuffix("\n<<<END REFERENCE ARTICLE 2>>>")
    assert len(second) == 500 and second.endswith(TRUNCATION_MARK.strip())


def test_concept_repair_prompt_names_the_fields():
    text = concept_repair_prompt("garbage")
    assert "Selected Concepts" in text and "Question:" in text and "<Q1>" in text


# ---------------------------------------------------------------- SmolLM2-135M replies
# Trimmed from real replies of the local default model to these prompts (max_tokens=300).


def test_real_reply_echoing_the_prompt_after_the_question():
    q = "In a random walk, the probability of reaching a position is proportional to $L^2$."
    text = (
        f"{CONCEPT_PREFILL}Asymptotic probability, Linear algebra]\nQuestion: {q}\n\n"
        "Topics: Linear algebra; Probability\nKey concepts: Linear algebra; Optimization\n\n"
        "Write 1 to 3 math questions that fit the topics above.\n- For each question choose"
    )
    result = parse_concept_questions(text, EXAMPLE_KEYS_CONCEPTS, max_questions=3)
    assert result.questions == (
        ParsedQuestion(q, "newly_created", "", ("Asymptotic probability", "Linear algebra")),
    )


def test_real_reply_cut_by_max_tokens():
    text = (
        f"{CONCEPT_PREFILL}Derivative, Power rule]\nQuestion: A cone of radius $1$ has a height "
        "of $2$ cm. Find the volume of the cone.\n</Q1>\n<Q2>\nSelected Concepts: [Power rule, "
        "Chain rule]\nQuestion: The derivative of a function is equal to the original function "
        "multiplied by a constant. \nIn other words, f'(x)=a(x^(n-1))+bx^n. Find f'(x) for $f(x)="
    )
    result = parse_concept_questions(text, EXAMPLE_KEYS_CONCEPTS)
    assert [q.selected_concepts for q in result.questions] == [
        ("Derivative", "Power rule"),
        ("Power rule", "Chain rule"),
    ]
    assert result.questions[1].question.endswith("Find f'(x) for $f(x)=")
