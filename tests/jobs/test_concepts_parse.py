"""The P-K prompt and parser on clean, garbled and hostile model outputs."""

from __future__ import annotations

import random

import pytest

from jobs.concepts.normalise import node_key
from jobs.concepts.parse import (
    EDU_LEVELS,
    MAX_CONCEPTS_PER_TOPIC,
    MAX_TOPICS,
    ConceptResult,
    ParsedTopic,
    is_parseable,
    parse_concepts,
)
from jobs.concepts.prompts import (
    EXAMPLE_ANSWER,
    EXAMPLE_ARTICLE,
    EXAMPLE_KEYS,
    PREFILL,
    PROMPT_VERSION,
    build_messages,
)
from jobs.llm.prompt_data import DATA_NOTE
from jobs.questions.prompts import TRUNCATION_MARK

CLEAN = """<level>College</level>
<subject>Calculus</subject>
<topic>Topics:
1. Derivatives
2. Integrals
</topic>
<key_concept>Key Concepts:
1. Derivatives:
1.1 Chain rule
1.2 Product rule
2. Integrals:
2.1 Substitution
2.2 Integration by parts
</key_concept>"""
CALCULUS = (
    ParsedTopic("Derivatives", ("Chain rule", "Product rule")),
    ParsedTopic("Integrals", ("Substitution", "Integration by parts")),
)


def topics(text: str, exclude: frozenset[str] = frozenset()) -> list[tuple[str, list[str]]]:
    return [(t.name, list(t.concepts)) for t in parse_concepts(text, exclude).topics]


def test_clean_output():
    result = parse_concepts(CLEAN)
    assert result == ConceptResult("ok", "college", "Calculus", CALCULUS, None, {})


def test_paper_inline_layout():
    text = (
        "<level>College</level><subject>Calculus</subject><topic>Topics: 1. Derivatives "
        "2. Integrals</topic><key_concept>Key Concepts: 1. Derivatives: 1.1 Chain rule "
        "1.2 Product rule 2. Integrals: 2.1 Substitution 2.2 Integration by parts</key_concept>"
    )
    assert parse_concepts(text).topics == CALCULUS


def test_missing_closing_tags_and_labels():
    text = (
        "<level>College\n<subject>Calculus\n<topic>\n1. Derivatives\n2. Integrals\n"
        "<key_concept>\n1. Derivatives:\n1.1 Chain rule\n1.2 Product rule\n2. Integrals:\n"
        "2.1 Substitution\n2.2 Integration by parts"
    )
    result = parse_concepts(text)
    assert (result.edu_level, result.subject, result.topics) == ("college", "Calculus", CALCULUS)


def test_labels_without_any_tags():
    text = CLEAN.replace("<level>", "Level: ").replace("<subject>", "Subject: ")
    for tag in ("</level>", "</subject>", "<topic>", "</topic>", "<key_concept>", "</key_concept>"):
        text = text.replace(tag, "")
    result = parse_concepts(text)
    assert (result.edu_level, result.subject, result.topics) == ("college", "Calculus", CALCULUS)


def test_bare_numbered_list_without_tags_or_labels():
    text = "1. Derivatives:\n1.1 Chain rule\n1.2 Product rule\n2. Integrals:\n2.1 Substitution"
    assert topics(text) == [
        ("Derivatives", ["Chain rule", "Product rule"]),
        ("Integrals", ["Substitution"]),
    ]


def test_markdown_fences_bold_and_chatter():
    text = (
        "Sure! Here is the analysis:\n```xml\n<level>**Graduate School**</level>\n"
        "<subject>**Topology**</subject>\n<topic>**Topics:**\n1. **Compactness**\n</topic>\n"
        "<key_concept>**Key Concepts:**\n1. **Compactness**:\n   1.1. *Open cover*\n"
        "   1.2. `Heine–Borel theorem`\n</key_concept>\n```\nI hope this helps!"
    )
    result = parse_concepts(text)
    assert result.edu_level == "graduate_school"
    assert result.subject == "Topology"
    assert result.topics == (ParsedTopic("Compactness", ("Open cover", "Heine–Borel theorem")),)


@pytest.mark.parametrize(
    "header",
    ["1. {t}:", "**{t}**", "**{t}:**", "Topic 1: {t}", "Topic: {t}", "{t} -", "### {t}", "{t}:"],
)
def test_topic_header_styles(header):
    body = "".join(
        header.replace("1", str(i)).format(t=name) + "\n- " + "\n- ".join(concepts) + "\n"
        for i, (name, concepts) in enumerate(
            [("Derivatives", ["Chain rule", "Product rule"]), ("Integrals", ["Substitution"])],
            start=1,
        )
    )
    text = (
        f"<topic>Topics: 1. Derivatives 2. Integrals</topic>\n<key_concept>\n{body}</key_concept>"
    )
    assert topics(text) == [
        ("Derivatives", ["Chain rule", "Product rule"]),
        ("Integrals", ["Substitution"]),
    ]


@pytest.mark.parametrize(
    "marker",
    ["1.1", "1.1.", "1)", "a)", "(a)", "i.", "-", "*", "•", "+"],
)
def test_concept_numbering_variants(marker):
    text = "<topic>Topics:\n1. Sets\n</topic>\n<key_concept>Key Concepts:\n1. Sets:\n"
    text += f"   {marker} Union\n   {marker.replace('1', '2').replace('a', 'b')} Intersection\n"
    assert topics(text + "</key_concept>") == [("Sets", ["Union", "Intersection"])]


@pytest.mark.parametrize(
    "lines, concepts",
    [
        # The list numbers its items "1.1", "1.2", …: those numbers are markers.
        ("1.1 Box plot\n1.2 Interquartile range\n1.3 1.5 times rule", None),
        # … so a line that starts "1.5" in that list is read as numbered too.
        ("1.1 Box plot\n1.2 Interquartile range\n1.5 times rule", ["times rule"]),
        ("2.1 Box plot\n2.2 Interquartile range\n2.3 1.5 times rule", None),
        ("1.1. Box plot\n1.2. Interquartile range\n1.3. 1.5 times rule", None),
        ("(1.1) Box plot\n(1.2) Interquartile range\n(1.3) 1.5 times rule", None),
        # Bullets or "1)" markers: a leading "1.5" is part of the name.
        ("- Box plot\n- Interquartile range\n- 1.5 times rule", None),
        ("1) Box plot\n2) Interquartile range\n3) 1.5 times rule", None),
    ],
)
def test_outline_numbers_are_stripped_only_where_the_list_numbers_that_way(lines, concepts):
    text = "<topic>Topics:\n1. Statistics\n</topic>\n<key_concept>Key Concepts:\n1. Statistics:\n"
    expected = ["Box plot", "Interquartile range", *(concepts or ["1.5 times rule"])]
    assert topics(text + lines + "\n</key_concept>") == [("Statistics", expected)]


@pytest.mark.parametrize(
    "body, expected",
    [
        ("1. Statistics:\n1.5 times rule\n", [("Statistics", ["1.5 times rule"])]),
        (
            "1. Statistics:\n- Outliers\n- 1.5 times rule\n",
            [("Statistics", ["Outliers", "1.5 times rule"])],
        ),
        ("1. Statistics:\n1.1 Outliers\n", [("Statistics", ["Outliers"])]),  # a lone sub-list
    ],
)
def test_a_lone_leading_decimal_is_part_of_the_name(body, expected):
    text = f"<topic>Topics:\n1. Statistics\n</topic>\n<key_concept>\n{body}</key_concept>"
    assert topics(text) == expected


def test_a_topic_named_with_a_leading_decimal_keeps_it():
    text = "<topic>Topics:\n1. 1.5 times rule\n2. Box plots\n</topic>\n<key_concept>\n"
    text += "1. 1.5 times rule:\n- Outliers\n2. Box plots:\n- Whiskers\n</key_concept>"
    assert topics(text) == [("1.5 times rule", ["Outliers"]), ("Box plots", ["Whiskers"])]


def test_roman_topic_numbering_with_indented_bullets():
    text = (
        "<topic>Topics:\ni. Limits\nii. Continuity</topic>\n<key_concept>\ni. Limits:\n"
        "  - Epsilon-delta definition\n  - One-sided limits\nii. Continuity:\n"
        "  - Intermediate value theorem\n</key_concept>"
    )
    assert topics(text) == [
        ("Limits", ["Epsilon-delta definition", "One-sided limits"]),
        ("Continuity", ["Intermediate value theorem"]),
    ]


def test_nested_bullets_make_headers_by_indentation():
    text = "<key_concept>\n- Vectors\n    - Dot product\n    - Cross product\n- Planes\n"
    text += "    - Normal vector\n</key_concept>"
    assert topics(text) == [
        ("Vectors", ["Dot product", "Cross product"]),
        ("Planes", ["Normal vector"]),
    ]


def test_comma_separated_concepts_and_topics():
    text = (
        "<level>Middle School</level><topic>Fractions, Decimals</topic><key_concept>"
        "Fractions: numerator, denominator, equivalent fractions\nDecimals: place value; "
        "rounding to $10^{-1}, 10^{-2}$</key_concept>"
    )
    assert topics(text) == [
        ("Fractions", ["numerator", "denominator", "equivalent fractions"]),
        ("Decimals", ["place value", "rounding to $10^{-1}, 10^{-2}$"]),
    ]


def test_concept_descriptions_are_cut_to_the_name():
    text = (
        "<topic>1. Probability: the study of chance</topic>\n<key_concept>1. Probability:\n"
        "1.1 Sample space: the set of all outcomes\n1.2 Bayes' theorem - updating beliefs\n"
        "</key_concept>"
    )
    assert topics(text) == [("Probability", ["Sample space", "Bayes' theorem"])]


def test_inline_decimal_is_not_a_list_number():
    text = "<topic>1. Numbers</topic><key_concept>1. Numbers: 1.1 Pi is about 3.14 here "
    text += "1.2 Euler's number</key_concept>"
    assert topics(text) == [("Numbers", ["Pi is about 3.14 here", "Euler's number"])]


def test_topic_without_concepts_is_kept():
    text = "<topic>1. Derivatives 2. Series</topic><key_concept>1. Derivatives:\n1.1 Chain rule"
    assert topics(text) == [("Derivatives", ["Chain rule"]), ("Series", [])]
    assert (
        parse_concepts("<level>High School</level><topic>Topics: 1. Series</topic>").status == "ok"
    )


def test_groups_attach_by_name_then_by_number_then_as_new_topics():
    text = (
        "<topic>Topics:\n1. Derivatives\n2. Integration\n</topic><key_concept>\n"
        "1. Derivative:\n1.1 Chain rule\n2. Integrals:\n2.1 Substitution\n3. Series:\n"
        "3.1 Ratio test\n</key_concept>"
    )
    assert topics(text) == [
        ("Derivatives", ["Chain rule"]),
        ("Integration", ["Substitution"]),
        ("Series", ["Ratio test"]),
    ]


def test_a_numbered_group_does_not_take_a_topic_claimed_by_name():
    text = (
        "<topic>1. Derivatives 2. Limits</topic><key_concept>1. Derivatives: 1.1 Chain rule "
        "2. Integrals: 2.1 Substitution 3. Limits: 3.1 Squeeze theorem</key_concept>"
    )
    assert topics(text) == [
        ("Derivatives", ["Chain rule"]),
        ("Limits", ["Squeeze theorem"]),
        ("Integrals", ["Substitution"]),
    ]


def test_concepts_without_any_header_go_to_the_listed_topics_in_order():
    one = "<topic>Triangles</topic><key_concept>1. Pythagorean theorem 2. Similar triangles"
    assert topics(one) == [("Triangles", ["Pythagorean theorem", "Similar triangles"])]
    two = "<topic>1. A 2. B</topic><key_concept>\n1. alpha\n2. beta\n</key_concept>"
    two += "<key_concept>\n1. gamma\n</key_concept>"
    assert topics(two) == [("A", ["alpha", "beta"]), ("B", ["gamma"])]


def test_concepts_with_no_topic_at_all_are_orphans():
    result = parse_concepts("<key_concept>\n- alpha\n- beta\n</key_concept>")
    assert result.status == "unparseable"
    assert result.skipped == {"orphan_concept": 2}
    assert result.error == "no usable topic (orphan_concept=2)"


def test_duplicates_are_dropped_by_key():
    text = (
        "<topic>1. Derivatives 2. derivative 3. Limits</topic><key_concept>1. Derivatives:\n"
        "1.1 Chain rule\n1.2 chain rules\n1.3 **Chain Rule**\n1.4 Product rule\n3. Limits:\n"
        "3.1 Chain rule\n</key_concept>"
    )
    result = parse_concepts(text)
    assert [(t.name, t.concepts) for t in result.topics] == [
        ("Derivatives", ("Chain rule", "Product rule")),
        ("Limits", ("Chain rule",)),  # the same concept under another topic is kept
    ]
    assert result.skipped == {"duplicate": 3}


def test_limits_keep_the_first_and_count_the_rest():
    listed = "".join(f"{i}. Topic {chr(64 + i)}\n" for i in range(1, 9))
    grouped = "1. Topic A:\n" + "".join(f"1.{j} Concept {j}\n" for j in range(1, 26))
    grouped += "7. Topic G:\n7.1 Lost concept\n"
    result = parse_concepts(f"<topic>{listed}</topic><key_concept>{grouped}</key_concept>")
    assert len(result.topics) == MAX_TOPICS
    assert [t.name for t in result.topics] == [f"Topic {c}" for c in "ABCDE"]
    assert result.topics[0].concepts == tuple(f"Concept {j}" for j in range(1, 21))
    # 5 concepts past 20, plus topics F, G (with its concept) and H
    assert result.skipped == {"over_limit": 5 + 1 + 2 + 1}
    assert MAX_CONCEPTS_PER_TOPIC == 20


def test_runaway_output_is_capped_and_fast():
    text = "<topic>1. Sequences</topic><key_concept>1. Sequences:\n"
    text += "".join(f"1.{i} Term number {i}\n" for i in range(1, 20_000))
    result = parse_concepts(text)
    assert len(result.topics[0].concepts) == MAX_CONCEPTS_PER_TOPIC
    assert result.skipped["input_truncated"] == 1
    assert result.skipped["over_limit"] > 1000


@pytest.mark.parametrize(
    "value, level",
    [
        ("College", "college"),
        ("<college>", "college"),
        ("High School", "high_school"),
        ("high_school", "high_school"),
        ("Primary School", "primary_school"),
        ("elementary", "primary_school"),
        ("Middle School", "middle_school"),
        ("Graduate School", "graduate_school"),
        ("undergraduate", "college"),
        ("University level", "college"),
        ("olympiad", "competition"),
        ("Competition (AMC)", "competition"),
        ("Other", "other"),
        ("Level: High School", "high_school"),
        ("**High School**", "high_school"),
        ("High School|College|Other", None),
        ("Calculus", None),
        ("", None),
    ],
)
def test_levels(value, level):
    result = parse_concepts(f"<level>{value}</level>\n<topic>Topics: 1. Sets</topic>")
    assert result.edu_level == level
    assert level is None or level in EDU_LEVELS


def test_missing_level_and_subject_are_none():
    result = parse_concepts("<topic>Topics: 1. Sets</topic>")
    assert (result.status, result.edu_level, result.subject) == ("ok", None, None)


def test_nfkc_and_odd_whitespace():
    text = "＜level＞ＣＯＬＬＥＧＥ＜/level＞\n<topic>Topics:\u00a01.\u2003Ｍatrices\u200b\r\n"
    text += "2.\tEigen\u00advalues</topic>"
    result = parse_concepts(text)
    assert result.edu_level == "college"
    assert [t.name for t in result.topics] == ["Matrices", "Eigenvalues"]


def test_template_copied_verbatim_is_unparseable():
    text = (
        "<level>Primary School|Middle School|High School</level><subject>…</subject>"
        "<topic>Topics: 1. … 2. …</topic><key_concept>Key Concepts: 1. <topic>: 1.1 … 1.2 … "
        "2. <topic>: 2.1 …</key_concept>"
    )
    result = parse_concepts(text)
    assert result.status == "unparseable"
    assert result.edu_level is None and result.subject is None
    assert result.skipped == {"empty_name": 2, "orphan_concept": 3, "placeholder": 2}


def test_the_prompt_example_copied_is_unparseable():
    result = parse_concepts(EXAMPLE_ANSWER, EXAMPLE_KEYS)
    assert result.status == "unparseable"
    assert result.error == "only the prompt's example topics and concepts"
    assert result.skipped == {"copied_example": 12}
    assert parse_concepts(EXAMPLE_ANSWER).status == "ok"  # without exclude it parses
    assert not is_parseable(EXAMPLE_ANSWER)
    assert is_parseable(CLEAN)


def test_a_copied_example_followed_by_a_real_answer_keeps_the_real_part():
    result = parse_concepts(EXAMPLE_ANSWER + "\n" + CLEAN, EXAMPLE_KEYS)
    assert result.topics == CALCULUS
    assert result.skipped == {"copied_example": 12}


def test_one_name_shared_with_the_example_is_a_coincidence():
    text = "<topic>1. Pick's theorem\n2. Polygons</topic><key_concept>1. Pick's theorem:\n"
    text += "1.1 Proof by triangulation\n2. Polygons:\n2.1 Convexity</key_concept>"
    assert topics(text, EXAMPLE_KEYS) == [
        ("Pick's theorem", ["Proof by triangulation"]),
        ("Polygons", ["Convexity"]),
    ]


def test_a_small_exclude_set_still_applies():
    assert topics(CLEAN, frozenset({"integral"})) == [
        ("Derivatives", ["Chain rule", "Product rule"])
    ]


@pytest.mark.parametrize("text", ["", None, "   \n ", "<level>", "Sure, I can help with that."])
def test_empty_or_chatty_output_is_unparseable(text):
    result = parse_concepts(text)
    assert result.status == "unparseable"
    assert result.topics == ()
    assert result.error


def test_random_bytes_never_raise():
    rng = random.Random(7)
    for _ in range(300):
        junk = bytes(rng.randrange(256) for _ in range(400)).decode("utf-8", errors="replace")
        result = parse_concepts(junk, EXAMPLE_KEYS)
        assert result.status in {"ok", "unparseable"}


def test_random_format_fragments_never_break_the_invariants():
    rng = random.Random(11)
    pieces = [
        "<level>", "</level>", "<topic>", "</topic>", "<key_concept>", "</key_concept>",
        "Topics:", "Key Concepts:", "1.", "1.1", "2.", "2.1", "- ", "**", "Topic 1:", "\n",
        "  ", "Calculus", "Limits", ":", ",", ";", "Level:", "Subject:", "College", "•", "#",
        "Pick's theorem", "Lattice polygon", "</", "<", ">", "```", "\u200b", "Ⅳ.", "x" * 200,
    ]  # fmt: skip
    for _ in range(1500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(80)))
        result = parse_concepts(text, EXAMPLE_KEYS)
        assert (result.status == "ok") == bool(result.topics)
        assert len(result.topics) <= MAX_TOPICS
        assert result.edu_level is None or result.edu_level in EDU_LEVELS
        for topic in result.topics:
            assert topic.name and len(topic.concepts) <= MAX_CONCEPTS_PER_TOPIC
            assert all(c.strip() == c and c for c in topic.concepts)


# ---------------------------------------------------------------- the prompt


def test_prompt_layout_and_prefill():
    messages = build_messages("  The derivative of $x^2$ is $2x$.  ", 4000)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert EXAMPLE_ARTICLE in messages[1]["content"]
    assert messages[2]["content"] == EXAMPLE_ANSWER
    assert messages[3]["content"].startswith(
        DATA_NOTE + "\n<<<ARTICLE>>>\nThe derivative of $x^2$ is $2x$.\n<<<END ARTICLE>>>\n\n"
    )
    assert (
        messages[3]["content"].replace("The derivative of $x^2$ is $2x$.", EXAMPLE_ARTICLE)
        == messages[1]["content"]
    )
    assert messages[4] == {"role": "assistant", "content": PREFILL}
    assert EXAMPLE_ANSWER.startswith(PREFILL)
    assert PROMPT_VERSION == "p-k/v2"


def test_prompt_truncates_the_article():
    content = build_messages("word " * 2000, 500)[3]["content"]
    article = content.split("<<<ARTICLE>>>\n")[1].split("\n<<<END ARTICLE>>>")[0]
    assert len(article) <= 500 and article.endswith(TRUNCATION_MARK.strip())


def test_the_example_answer_parses_to_the_example_keys():
    result = parse_concepts(EXAMPLE_ANSWER)
    assert result.edu_level == "high_school"
    assert [len(t.concepts) for t in result.topics] == [5, 5]
    keys = {node_key(t.name) for t in result.topics}
    keys |= {node_key(c) for t in result.topics for c in t.concepts}
    assert keys == EXAMPLE_KEYS


def test_real_reply_every_line_ends_with_a_colon():
    text = (
        "<level>High School</level>\n<subject>Calculus</subject>\n<topic>Probability</topic>\n"
        "<key_concept>Probability of events:\n1. Probability of an event:\n"
        "2. Probability of a conditional probability:\n3. Bayes' theorem:\n"
        "4. Conditional probability:\n5. Probability of an event:\n6. Bayes' theorem:\n7. Pro"
    )
    result = parse_concepts(text, EXAMPLE_KEYS)
    assert [(t.name, t.concepts) for t in result.topics] == [
        ("Probability", ()),
        (
            "Probability of events",
            (
                "Probability of an event",
                "Probability of a conditional probability",
                "Bayes' theorem",
                "Conditional probability",
                "Pro",
            ),
        ),
    ]
    assert result.skipped == {"duplicate": 2}


def test_real_reply_looping_topic_list_repeated_twice():
    listed = ["Derivative of x^n", "Geometric Algebra", "Calculus", "Differential Equations"]
    listed += ["Differential Geometry", "Differential Calculus", "Differential Topology"] * 3
    body = "".join(f"{i}. {name}\n" for i, name in enumerate(listed, start=1))
    text = f"<level>Primary School</level>\n<subject>Calculus</subject>\n<topic>Topics:\n{body}"
    text += f"<level>University of Technology</level>\n<topic>Topics:\n{body}21"
    result = parse_concepts(text, EXAMPLE_KEYS)
    assert (result.edu_level, result.subject) == ("primary_school", "Calculus")
    assert [t.name for t in result.topics] == listed[:5]
    assert all(t.concepts == () for t in result.topics)
    assert result.skipped == {"duplicate": 6 + len(listed), "empty_name": 1, "over_limit": 2}


def test_real_reply_sub_numbered_topic_list():
    text = (
        "<level>Primary School</level>\n<subject>Calculus</subject>\n<topic>Topics:\n"
        "1.1 The Fundamental Theorem of Calculus\n1.2 Calculus of Functions of One Variable\n"
        "1.3 Calculus of One Variable\n1.4 Calculus of One Variable\n2.1 The Fundamental "
        "Theorem of Calculus\n3.1 Calculus of One"
    )
    result = parse_concepts(text, EXAMPLE_KEYS)
    assert [t.name for t in result.topics] == [
        "The Fundamental Theorem of Calculus",
        "Calculus of Functions of One Variable",
        "Calculus of One Variable",
        "Calculus of One",
    ]
    assert result.skipped == {"duplicate": 2}


def test_ascii_replies_lose_exactly_the_control_characters_the_general_path_drops():
    """``_clean``'s ASCII shortcut keeps what the per-character category test keeps."""
    import unicodedata

    from jobs.concepts.parse import _FENCE, _clean

    rng = random.Random(5)
    alphabet = [chr(i) for i in range(128)]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        general = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
        general = "".join(
            ch for ch in general if ch in "\t\n" or unicodedata.category(ch)[0] != "C"
        )
        assert _clean(text) == _FENCE.sub("", general)
