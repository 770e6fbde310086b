"""clean_questions: planted format faults, duplicates, published questions and benchmark leaks
each land in quarantine with the right reason and reference; the rest are kept."""

from __future__ import annotations

import argparse
import json
import os

import pandas as pd
import pytest
from checkpoints import record_checkpoints
from committed import commit_table

from jobs.cli import JobContext
from jobs.evaluation.evalset import builtin_eval_set
from jobs.layout import Layout
from jobs.questions import clean
from jobs.questions.cleaning import (
    format_problem,
    key_text,
    question_key,
    tagged_ngrams,
)
from jobs.questions.index import indexed_snapshots, write_index
from jobs.storage import Storage, join
from jobs.tables import read_table, schema

SNAP = "2026-02-02"
OTHER = "2026-02-01"

# A MATH-style benchmark item (long) and a short one, in a JSONL file of their own.
LONG_ITEM = (
    "A rectangular garden is three times as long as it is wide and its perimeter is "
    "forty eight metres so what is the area of the garden in square metres"
)
SHORT_ITEM = "Find the remainder of 2^100 divided by 7"
BUILTIN = builtin_eval_set(40, 2026)[5]["question"]

KEEP = {
    "q01": "What is the median of the data set [2, 9, 4, 7]?",
    "q02": "How many ways are there to choose 3 items from 7 items?",
    "q03": "Solve for x: 3x + 5 = 20.",
    "q04": "A train travels 120 km in 2 hours. What is its average speed in km per hour?",
    "q05": "If f(x) = x^2 - 4x + 1, find the minimum value of f over all real x, and the x "
    "at which it is reached, showing each step of completing the square.",
    # about circles, like the examples, but a question of its own
    "q06": "A circle is inscribed in a square of side 8 cm. What is the area of the region "
    "inside the square but outside the circle?",
}
PLANTED = {
    # id: (question, reason)
    "q10": ("", "empty"),
    "q11": ("Why 2?", "too_short"),
    "q12": ("Compute " + "1 + " * 700 + "1.", "too_long"),
    "q13": ("<Q2> Level: <high_school> What is the sum of 4 and 5?", "leftover_markup"),
    "q14": ("Who wrote the novel about the white whale, and in which year?", "no_math_content"),
    # a benchmark copied with a new opening: shares 13-grams with LONG_ITEM
    "q20": ("Consider this. " + LONG_ITEM + "?", "contaminated"),
    # a short question: matched on 8-grams
    "q21": ("Please find the remainder of 2^100 divided by 7.", "contaminated"),
    "q22": (BUILTIN, "contaminated"),  # the trainer's built-in evaluation set
    "q30": ("What is 15% of 240?", "published_duplicate"),  # published by OTHER as "p-7"
    "q40": ("solve for X:   3x + 5 = 20", "duplicate_exact"),  # q03, case/space/punctuation
    "q41": (
        "If f(x) = x^2 - 4x + 1, find the minimum value of f over all real x, and the x "
        "at which it is reached, showing every step of completing the square.",
        "duplicate_near",
    ),  # q05 with one word changed
    # the Level-1 prompt's example, as the published sample held it
    "q50": ("Find the area of a circle of radius 5.", "prompt_echo"),
    "q51": (  # the Level-2 pizza example, reworded
        "A pizza with a radius of 15 cm costs $12, while a pizza with a radius of 20 cm "
        "costs $20. Which pizza gives more area per dollar?",
        "prompt_echo",
    ),
    "q52": (  # the Level-3 dart example, reworded
        "A dart is thrown at random at a circular board of radius 10 cm. What is the "
        "probability that it lands closer to the centre than to the edge?",
        "prompt_echo",
    ),
}


def q_row(qid: str, text: str, level: int = 1) -> dict:
    return {
        "question_id": qid, "combo_id": f"l{level}-d-{qid}", "level": level, "question": text,
        "selected_concepts": [], "orig_tag": "newly_created", "edu_level": None,
        "source_doc_ids": [f"doc-{qid}"], "model": "m", "prompt_version": "p", "snapshot": SNAP,
    }  # fmt: skip


def rows() -> list[dict]:
    out = [q_row(q, t, level=1 + i % 3) for i, (q, t) in enumerate(KEEP.items())]
    out += [q_row(q, t, level=2) for q, (t, _) in PLANTED.items()]
    return out


def make_ctx(cfg, snapshot=SNAP) -> JobContext:
    layout = Layout(cfg.storage.root_uri, snapshot)
    return JobContext(cfg, snapshot, "test-run", "1", layout, argparse.Namespace())


@pytest.fixture
def cfg(make_config, tmp_path):
    bench = tmp_path / "bench.jsonl"
    items = [{"problem": LONG_ITEM, "id": "geo-17"}, {"problem": SHORT_ITEM, "id": "nt-3"}]
    bench.write_text("\n".join(json.dumps(i) for i in items) + "\n")
    sets = f'[{{name="mathbench", uri="file://{bench}", question_field="problem"}}]'
    c = make_config(f"clean.eval_sets={sets}", "evaluation.num_builtin=40")
    storage = Storage(c.storage)
    layout = Layout(c.storage.root_uri, SNAP)
    commit_table(storage, layout.table("questions"), rows=rows(), table_schema=schema("questions"))
    published = pd.DataFrame(
        {"question_id": ["p-7"], "question": ["what is 15% of 240"], "level": [1]}
    )
    write_index(storage, layout.question_index, OTHER, published, "1", {"job": "test"})
    return c


def quarantined(cfg) -> pd.DataFrame:
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    q = read_table(storage, layout.quarantine(clean.STAGE))
    q["payload"] = q["raw"].map(json.loads)
    q["question_id"] = q["payload"].map(lambda p: p["question_id"])
    return q.set_index("question_id")


def test_planted_questions_land_in_quarantine_with_reason_and_reference(spark, cfg):
    stats = clean.run(make_ctx(cfg))
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    kept = read_table(storage, layout.table("questions_clean"))
    assert sorted(kept["question_id"]) == sorted(KEEP)
    assert list(kept.columns) == schema("questions").names
    q = quarantined(cfg)
    assert {qid: q.loc[qid, "reason"] for qid in q.index} == {
        qid: reason for qid, (_, reason) in PLANTED.items()
    }
    ref = {qid: q.loc[qid, "payload"]["reference"] for qid in q.index}
    assert ref["q20"]["benchmark"] == "mathbench" and ref["q20"]["item_id"] == "geo-17"
    assert len(ref["q20"]["ngram"].split()) == 13
    assert ref["q21"]["item_id"] == "nt-3" and len(ref["q21"]["ngram"].split()) == 8
    assert ref["q22"]["benchmark"] == "builtin-2026-40" and ref["q22"]["item_id"] == "builtin-0005"
    assert ref["q30"] == {"published_snapshot": OTHER, "published_question_id": "p-7"}
    assert ref["q40"]["duplicate_of"] == "q03" and ref["q40"]["similarity"] == 1.0
    assert ref["q41"]["duplicate_of"] == "q05" and ref["q41"]["similarity"] >= 0.8
    assert ref["q50"] == {"example": "p-l1:1", "similarity": 1.0}
    assert ref["q51"]["example"] == "p-l2:2" and ref["q52"]["example"] == "p-l3:1"
    assert 0.45 <= ref["q51"]["similarity"] < 1.0
    assert q.loc["q13", "doc_id"] == "doc-q13" and q.loc["q13", "stage"] == clean.STAGE
    # rows in = rows out + quarantined, overall and per level
    stats.check_balance()
    assert stats.rows_in == len(KEEP) + len(PLANTED)
    assert stats.rows_out == len(KEEP)
    assert stats.quarantined["contaminated"] == 3
    for level in stats.extra["by_level"].values():
        assert level["in"] == level["out"] + sum(level["removed"].values())
    assert stats.extra["by_level"]["2"]["removed"]["duplicate_near"] == 1
    assert [s["name"] for s in stats.extra["eval_sets"]] == ["builtin-2026-40", "mathbench"]
    assert {"p-l1:1", "p-l2:2", "p-l3:1", "answer:1"} <= set(stats.extra["prompt_examples"])
    assert stats.extra["index_snapshots"] == [OTHER]


def test_clean_checkpoints_reliably_into_a_folder_it_removes(spark, cfg, tmp_path, monkeypatch):
    from jobs import spark as spark_module

    root = tmp_path / "checkpoints"
    monkeypatch.setattr(spark_module, "checkpoint_root", lambda _cfg: str(root))
    reliable, local = record_checkpoints(spark, monkeypatch)
    clean.run(make_ctx(cfg))
    folder = f"{clean.STAGE}-{SNAP}-1"
    # format, echoes, contamination, published, kept, exact copies, MinHash vectors,
    # duplicates, the flagged table
    assert len(reliable) == 9 and not local
    for session_dir, num_files in reliable:  # {root}/{job folder}/{uuid}
        assert os.path.dirname(session_dir) == str(root / folder) and num_files > 0
    assert not (root / folder).exists()


def test_rerun_ignores_its_own_publication_and_is_deterministic(spark, cfg):
    clean.run(make_ctx(cfg))
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    first = read_table(storage, layout.table("questions_clean"))
    # The snapshot is published: its own index entry must not make a rerun drop everything.
    write_index(storage, layout.question_index, SNAP, first, "1", {"job": "test"})
    assert [
        u.rsplit("/", 1)[-1] for u in indexed_snapshots(storage, layout.question_index, SNAP)
    ] == [OTHER]
    stats = clean.run(make_ctx(cfg))
    again = read_table(storage, layout.table("questions_clean"))
    assert again.equals(first)
    assert (
        "published_duplicate" in stats.quarantined and stats.quarantined["published_duplicate"] == 1
    )
    # ... but another snapshot sees them as published.
    other = Layout(cfg.storage.root_uri, "2026-02-03")
    moved = [dict(r, snapshot="2026-02-03") for r in rows()]
    commit_table(storage, other.table("questions"), rows=moved, table_schema=schema("questions"))
    stats3 = clean.run(make_ctx(cfg, "2026-02-03"))
    # KEEP, q30 and q40 (the same key as q03) are published; the index matches exact keys
    # only, so q41, a near duplicate of a published question, is kept.
    assert stats3.quarantined["published_duplicate"] == len(KEEP) + 2
    kept = read_table(storage, other.table("questions_clean"))
    assert list(kept["question_id"]) == ["q41"]


def test_uncommitted_index_entry_is_skipped(cfg):
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    storage.write_text(join(layout.question_index, "2026-01-01", "part-0.parquet"), "x")
    assert [
        u.rsplit("/", 1)[-1] for u in indexed_snapshots(storage, layout.question_index, SNAP)
    ] == [OTHER]


def test_unreadable_eval_set_is_a_clear_error(make_config, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "What is 2 + 2?"}\n{"id": 3}\n')
    c = make_config(f'clean.eval_sets=[{{name="b", uri="file://{bad}"}}]')
    with pytest.raises(clean.EvalSetError, match=r"bad.jsonl:2: no 'question' text"):
        clean.eval_items(Storage(c.storage), c)
    missing = make_config(f'clean.eval_sets=[{{name="m", uri="file://{tmp_path}/none.jsonl"}}]')
    with pytest.raises(clean.EvalSetError, match="cannot read"):
        clean.eval_items(Storage(missing.storage), missing)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "empty"),
        ("   ", "empty"),
        ("2+2?", "too_short"),
        ("x" * 2001, "too_long"),
        ("Selected Concepts: [limits] What is the limit of 1/x as x grows?", "leftover_markup"),
        ("</Q1> Find the sum of 2 and 3.", "leftover_markup"),
        ("Based on the article above, compute 3 * 4.", "leftover_markup"),
        ("What colour is the sky on a clear day in summer?", "no_math_content"),
        ("Compute the integral of sin x from 0 to pi.", None),
        ("Prove that there are infinitely many primes.", None),
        ("What is \\frac{a}{b} when a equals b?", None),
    ],
)
def test_format_rules(text, reason):
    assert format_problem(text, 10, 2000) == reason


def test_question_key_ignores_case_spacing_and_final_punctuation():
    assert question_key("Solve  for X: 3x+5=20 ?") == question_key("solve for x: 3x+5=20")
    assert question_key("Solve for x: 3x+5=21") != question_key("Solve for x: 3x+5=20")
    assert question_key("") == "" and key_text(" A\u00a0B. ") == "a b"


def test_ngrams_use_the_short_n_only_when_a_text_is_short():
    long_q = " ".join(f"w{i}" for i in range(14))
    grams, short = tagged_ngrams(long_q, 13, 8)
    assert not short
    assert (
        sum(g.startswith("L:") for g in grams) == 2 and sum(g.startswith("S:") for g in grams) == 7
    )
    grams, short = tagged_ngrams("What is 2 + 2", 13, 8)
    assert short and grams == ["S:what is 2 2"]


# ---------------------------------------------------------------- prompt echoes

ECHOES = [
    ("Find the area of a circle of radius $5$.", "p-l1:1"),  # the example itself
    ("find the area of a circle of radius 7", "p-l1:1"),  # other numbers, no LaTeX
    ("A circle has area $36\\pi$. What is its radius?", "p-l1:2"),
    ("A pizza of radius 15 cm costs 12 dollars and one of radius 20 cm costs 18 dollars. "
     "Which one is the better deal per square cm?", "p-l2:2"),
    ("A 15 cm radius pizza is sold for 12 dollars and a 20 cm radius pizza for 20 dollars. "
     "Which pizza offers more area for each dollar, and by what factor?", "p-l2:2"),
    ("A dart lands at a uniformly random point of a circular board with radius 10 cm. Find "
     "the probability that the dart is closer to the center of the board than to its edge.",
     "p-l3:1"),
    ("A shop sells pencils at $2$ dollars each. How much do $9$ pencils cost?", "answer:1"),
]  # fmt: skip
OWN_QUESTIONS = [
    KEEP["q06"],
    "A circular garden has a radius of 6 m. A path of width 1 m surrounds it. Find the area "
    "of the path.",
    "Two concentric circles have radii 3 and 5. What is the area of the ring between them?",
    "The radius of a circle is increased by 10%. By what percentage does its area increase?",
    "A chord of length 8 is drawn in a circle of radius 5. How far is the chord from the centre?",
    "What is the probability of rolling a sum of 7 with two fair dice?",
    *KEEP.values(),
]


def _examples():
    from jobs.llm.prompt_examples import prompt_examples
    from jobs.questions.cleaning import echo_grams

    return [(e.name, echo_grams(e.text)) for e in prompt_examples()]


@pytest.mark.parametrize(("text", "example"), ECHOES)
def test_copies_and_paraphrases_of_a_prompt_example_are_echoes(text, example):
    from jobs.questions.cleaning import echo_of

    got = echo_of(text, _examples(), 0.45)
    assert got is not None and got[0] == example, got


@pytest.mark.parametrize("text", OWN_QUESTIONS)
def test_questions_of_their_own_are_not_echoes(text):
    from jobs.questions.cleaning import echo_of

    assert echo_of(text, _examples(), 0.45) is None
    assert echo_of(text, _examples(), 0.4) is None  # with room to spare


def test_every_example_of_every_prompt_module_is_registered():
    import importlib
    import pkgutil

    import jobs
    from jobs.llm.prompt_examples import PROMPT_MODULES, prompt_examples

    texts = {e.text for e in prompt_examples()}
    for info in pkgutil.walk_packages(jobs.__path__, "jobs."):
        if not info.name.endswith(".prompts"):
            continue
        module = importlib.import_module(info.name)
        questions = []
        for name, value in vars(module).items():
            if "EXAMPLE_QUESTION" not in name:
                continue
            for item in value if isinstance(value, tuple) else (value,):
                questions.append(item[-1] if isinstance(item, tuple) else item)
        if questions:
            assert info.name in PROMPT_MODULES, f"{info.name} has examples: add it"
            assert set(questions) <= texts, info.name
    assert len(texts) >= 6
