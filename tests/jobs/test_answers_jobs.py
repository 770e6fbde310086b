"""answers.prepare and answers.collect on a tiny committed questions table."""

from __future__ import annotations

import argparse
import json

import pytest
from committed import commit_table, mark_done

from jobs.answers import collect, prepare
from jobs.answers.prompts import PROMPT_VERSION
from jobs.cli import JobContext
from jobs.commit import UncommittedInputError
from jobs.layout import Layout
from jobs.llm.batchfile import dumps_lines, response_to_line
from jobs.llm.engine import ChatResponse
from jobs.llm.results import IncompleteTaskError
from jobs.storage import Storage, join
from jobs.tables import read_table, schema

SNAP = "s1"
MODEL = "smollm2-135m-instruct"


def qrow(qid: str, question: str, doc: str) -> dict:
    return {
        "question_id": qid,
        "combo_id": "l1-" + doc,
        "level": 1,
        "question": question,
        "selected_concepts": [],
        "orig_tag": "newly_created",
        "edu_level": "college",
        "source_doc_ids": [doc],
        "model": MODEL,
        "prompt_version": "p-l1/v1",
        "snapshot": SNAP,
    }


QUESTIONS = [
    qrow("q4", "What is $2+2$?", "d1"),
    qrow("q1", "What is $\\frac{1}{2}+\\frac{1}{4}$?", "d1"),
    qrow("q3", "Solve $x^2=9$ for $x>0$.", "d2"),
    qrow("q2", "How many sides has a hexagon?", "d3"),
]


def make_ctx(cfg, num_shards=None, attempt="1") -> JobContext:
    args = argparse.Namespace(num_shards=num_shards)
    return JobContext(cfg, SNAP, "run", attempt, Layout(cfg.storage.root_uri, SNAP), args)


def commit_questions(cfg, rows) -> None:
    """Commit ``rows`` as the generated and the cleaned questions (the answer jobs' inputs)."""
    layout = Layout(cfg.storage.root_uri, SNAP)
    for table in ("questions", "questions_clean"):
        commit_table(
            Storage(cfg.storage), layout.table(table), rows=rows, table_schema=schema("questions")
        )


@pytest.fixture
def cfg(make_config):
    c = make_config()
    commit_questions(c, QUESTIONS)
    return c


def task_uri(cfg) -> str:
    return Layout(cfg.storage.root_uri, SNAP).llm_task("answers")


def request_ids(storage, cfg, name) -> list[str]:
    text = storage.read_text(join(task_uri(cfg), "requests", name))
    return [json.loads(line)["custom_id"] for line in text.splitlines()]


def test_prepare_orders_by_question_id(cfg):
    stats = prepare.run(make_ctx(cfg, num_shards=2))
    storage = Storage(cfg.storage)
    assert request_ids(storage, cfg, "shard-00000-of-00002.jsonl") == ["ans-q1", "ans-q3"]
    assert request_ids(storage, cfg, "shard-00001-of-00002.jsonl") == ["ans-q2", "ans-q4"]
    line = json.loads(
        storage.read_text(
            join(task_uri(cfg), "requests", "shard-00000-of-00002.jsonl")
        ).splitlines()[0]
    )
    assert line["body"]["messages"][-1]["content"].endswith(
        "Problem: What is $\\frac{1}{2}+\\frac{1}{4}$?"
    )
    manifest = storage.read_json(join(task_uri(cfg), "requests", "_manifest.json"))
    assert (manifest["prompt_version"], manifest["num_requests"]) == (PROMPT_VERSION, 4)
    assert (stats.rows_in, stats.rows_out) == (4, 4)


def test_prepare_uses_configured_shards_and_refuses_uncommitted_input(make_config):
    cfg = make_config("generation.num_shards=3")
    with pytest.raises(UncommittedInputError, match="questions"):
        prepare.run(make_ctx(cfg))
    commit_questions(cfg, QUESTIONS)
    prepare.run(make_ctx(cfg))
    storage = Storage(cfg.storage)
    assert request_ids(storage, cfg, "shard-00002-of-00003.jsonl") == ["ans-q3"]


def write_shard(storage, cfg, name, pairs, done=True):
    lines = [response_to_line(r, MODEL, 2 if f else 1, f) for r, f in pairs]
    storage.write_text(join(task_uri(cfg), "responses", name + ".jsonl"), dumps_lines(lines))
    if done:
        mark_done(storage, task_uri(cfg), name)


def resp(cid, text, c=30, error=None, finish="stop"):
    return ChatResponse(cid, text, 50, c, finish, error)


@pytest.fixture
def answered(cfg):
    """q1 ok | q3 repaired   and   q2 no box even after repair | q4 engine error."""
    prepare.run(make_ctx(cfg, num_shards=2))
    storage = Storage(cfg.storage)
    write_shard(
        storage,
        cfg,
        "shard-00000-of-00002",
        [
            (resp("ans-q1", "1/2 + 1/4 = 3/4, so $\\boxed{\\dfrac{3}{4}}$."), None),
            (resp("ans-q3", "The final answer is \\boxed{3}", 10), resp("ans-q3", "x = 3.", 20)),
        ],
    )
    write_shard(
        storage,
        cfg,
        "shard-00001-of-00002",
        [
            (resp("ans-q2", "six", 5), resp("ans-q2", "A hexagon has six sides.", 12)),
            (resp("ans-q4", "", 0, "timeout", "error"), None),
        ],
    )
    return cfg


def test_collect_writes_qa_and_quarantine(answered):
    cfg = answered
    stats = collect.run(make_ctx(cfg))
    storage = Storage(cfg.storage)
    layout = Layout(cfg.storage.root_uri, SNAP)
    qa = read_table(storage, layout.table("qa"))
    assert list(qa["question_id"]) == ["q1", "q3"]
    assert list(qa["final_answer"]) == ["\\frac{3}{4}", "3"]
    assert qa.iloc[1]["answer"] == "x = 3.\n\nThe final answer is \\boxed{3}"
    assert list(qa["num_tokens"]) == [30, 30]
    assert list(qa["agreement"]) == [1.0, 1.0]  # k = 1 in the local profile
    assert list(qa["num_samples"]) == [1, 1]
    row = qa.iloc[0].to_dict()
    assert (row["combo_id"], row["level"], row["model"]) == ("l1-d1", 1, MODEL)
    assert (row["prompt_version"], row["snapshot"]) == (PROMPT_VERSION, SNAP)
    assert list(row["source_doc_ids"]) == ["d1"]
    assert row["question"] == "What is $\\frac{1}{2}+\\frac{1}{4}$?"

    quarantine = read_table(storage, layout.quarantine("answers")).sort_values("reason")
    assert list(quarantine["reason"]) == ["no_boxed_answer", "request_error"]
    assert list(quarantine["doc_id"]) == ["d3", "d1"]
    raw = json.loads(quarantine.iloc[0]["raw"])
    assert (raw["question_id"], raw["text"], raw["first_attempt"]) == (
        "q2",
        "six",
        "A hexagon has six sides.",
    )
    assert json.loads(quarantine.iloc[1]["raw"])["error"] == "timeout"

    assert (stats.rows_in, stats.rows_out) == (4, 2)
    assert stats.quarantined == {"no_boxed_answer": 1, "request_error": 1}
    stats.check_balance()
    assert stats.tokens == {"prompt": 50 * 6, "completion": 30 + 30 + 17 + 0}
    assert stats.extra["parse_rate"] == round(2 / 3, 4)
    assert stats.extra["num_repaired"] == 2
    qa_stats = storage.read_json(join(layout.table("qa"), "_stats.json"))
    assert (qa_stats["rows_in"], qa_stats["rows_out"], qa_stats["rows_quarantined"]) == (4, 2, 2)


def test_collect_quarantines_answers_to_vanished_questions(answered):
    cfg = answered
    commit_questions(cfg, [q for q in QUESTIONS if q["question_id"] != "q1"])
    stats = collect.run(make_ctx(cfg))
    assert stats.quarantined == {"no_boxed_answer": 1, "request_error": 1, "unknown_question": 1}
    assert stats.rows_out == 1
    stats.check_balance()


def test_collect_refuses_unfinished_shards(cfg):
    prepare.run(make_ctx(cfg, num_shards=2))
    storage = Storage(cfg.storage)
    write_shard(storage, cfg, "shard-00000-of-00002", [(resp("ans-q1", "\\boxed{1}"), None)])
    with pytest.raises(IncompleteTaskError, match="shard-00001-of-00002"):
        collect.run(make_ctx(cfg))


def test_collect_empty_task_commits_empty_tables(make_config):
    cfg = make_config()
    commit_questions(cfg, [])
    prepare.run(make_ctx(cfg, num_shards=1))
    write_shard(Storage(cfg.storage), cfg, "shard-00000-of-00001", [])
    stats = collect.run(make_ctx(cfg))
    assert (stats.rows_in, stats.rows_out, stats.quarantined) == (0, 0, {})
    qa = read_table(Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP).table("qa"))
    assert len(qa) == 0 and "final_answer" in qa.columns


# -- k samples per question ------------------------------------------------------------------


def test_prepare_writes_k_distinct_seeded_samples_per_question(make_config):
    cfg = make_config("answers.num_samples=3", "answers.sample_temperature=0.9")
    commit_questions(cfg, QUESTIONS)
    stats = prepare.run(make_ctx(cfg, num_shards=1))
    storage = Storage(cfg.storage)
    shard = join(task_uri(cfg), "requests", "shard-00000-of-00001.jsonl")
    first = storage.read_text(shard)
    lines = [json.loads(line) for line in first.splitlines()]
    ids = [line["custom_id"] for line in lines]
    assert ids == [f"ans-{q}-s{j}" for q in ("q1", "q2", "q3", "q4") for j in range(3)]
    assert [prepare.parse_request_id(i) for i in ids[:3]] == [("q1", 0), ("q1", 1), ("q1", 2)]
    assert prepare.parse_request_id("ans-q1") == ("q1", 0)
    seeds = [line["body"]["seed"] for line in lines]
    assert len(set(seeds)) == 12  # every sample has a seed of its own
    assert {line["body"]["temperature"] for line in lines} == {0.9}
    assert lines[0]["body"]["messages"] == lines[2]["body"]["messages"]  # same question
    assert (stats.rows_in, stats.rows_out, stats.extra["num_requests"]) == (4, 4, 12)
    prepare.run(make_ctx(cfg, num_shards=1, attempt="2"))
    assert storage.read_text(shard) == first  # reruns write the same bytes


K4 = {
    # 1/2, 0.5 and \frac{1}{2} are one answer: 3 of 4 agree.
    "q1": ["\\boxed{1/2}", "so \\boxed{0.5}", "$\\boxed{\\frac{1}{2}}$", "\\boxed{3}"],
    # 6 once, "six" once, two failures (counted in k): 1/4 < 0.5.
    "q2": ["\\boxed{6}", None, "no box", "\\boxed{\\text{six}}"],
    # Every sample failed, two ways twice: the first sample's reason.
    "q3": [None, "no box", "no box either", None],
    # 2 vs 2: the cluster of sample 0 wins, 0.5 is not below the minimum.
    "q4": ["\\boxed{4}", "\\boxed{5}", "\\boxed{4.0}", "\\boxed{5}"],
}


def write_k4(cfg) -> None:
    pairs = []
    for qid, texts in K4.items():
        for j, text in enumerate(texts):
            cid = f"ans-{qid}-s{j}"
            if text is None:
                pairs.append((resp(cid, "", 0, "engine error", "error"), None))
            elif "boxed" in text:
                pairs.append((resp(cid, text, 10 + j), None))
            else:
                pairs.append((resp(cid, text, 5), resp(cid, "still none", 5)))
    write_shard(Storage(cfg.storage), cfg, "shard-00000-of-00001", pairs)


def test_collect_keeps_the_majority_answer_with_its_agreement(make_config):
    cfg = make_config("answers.num_samples=4", "answers.min_agreement=0.5")
    commit_questions(cfg, QUESTIONS)
    prepare.run(make_ctx(cfg, num_shards=1))
    write_k4(cfg)
    stats = collect.run(make_ctx(cfg))
    storage = Storage(cfg.storage)
    layout = Layout(cfg.storage.root_uri, SNAP)
    qa = read_table(storage, layout.table("qa"))
    assert list(qa["question_id"]) == ["q1", "q4"]
    assert list(qa["final_answer"]) == ["1/2", "4"]  # the majority cluster's first sample
    assert list(qa["answer"]) == ["\\boxed{1/2}", "\\boxed{4}"]
    assert list(qa["agreement"]) == [0.75, 0.5]
    assert list(qa["num_samples"]) == [4, 4]
    assert list(qa["num_tokens"]) == [10, 10]

    quarantine = read_table(storage, layout.quarantine("answers")).sort_values("reason")
    assert list(quarantine["reason"]) == ["low_agreement", "request_error"]
    low = json.loads(quarantine.iloc[0]["raw"])
    assert (low["question_id"], low["agreement"], low["num_samples"]) == ("q2", 0.25, 4)
    assert low["final_answers"] == ["6", None, None, "\\text{six}"]
    assert low["clusters"] == [[0], [3]]
    assert low["answers"][0] == "\\boxed{6}"
    failed = json.loads(quarantine.iloc[1]["raw"])
    assert failed["question_id"] == "q3"
    assert failed["sample_reasons"] == [
        "request_error",
        "no_boxed_answer",
        "no_boxed_answer",
        "request_error",
    ]

    assert (stats.rows_in, stats.rows_out) == (4, 2)  # questions, not requests
    assert stats.quarantined == {"low_agreement": 1, "request_error": 1}
    stats.check_balance()
    assert stats.extra["num_requests"] == 16
    assert stats.extra["sample_failures"] == {"no_boxed_answer": 3, "request_error": 3}
    checking = stats.extra["answer_checking"]
    assert (checking["num_samples"], checking["min_agreement"]) == (4, 0.5)
    assert checking["verifier"].startswith("math-verify")
    assert stats.extra["agreement"]["by_level"] == {
        "1": {
            "questions": 3,
            "kept": 2,
            "low_agreement": 1,
            "mean": 0.5,
            "histogram": {"0.25": 1, "0.50": 1, "0.75": 1},
        }
    }

    rows, held = qa.to_dict("records"), quarantine.to_dict("records")
    collect.run(make_ctx(cfg, attempt="2"))
    again = read_table(storage, layout.table("qa")).to_dict("records")
    assert [{**r, "source_doc_ids": list(r["source_doc_ids"])} for r in again] == [
        {**r, "source_doc_ids": list(r["source_doc_ids"])} for r in rows
    ]
    reheld = read_table(storage, layout.quarantine("answers")).sort_values("reason")
    assert reheld.to_dict("records") == held
