"""concepts.prepare and concepts.collect on tiny committed tables and hand-written responses."""

from __future__ import annotations

import argparse
import json

import pytest
from committed import commit_table, mark_done

from jobs.cli import JobContext
from jobs.concepts import collect, prepare
from jobs.concepts.prompts import PREFILL, PROMPT_VERSION
from jobs.layout import Layout
from jobs.llm.batchfile import dumps_lines, response_to_line
from jobs.llm.engine import ChatResponse
from jobs.llm.tasks import get_task
from jobs.storage import Storage, join
from jobs.tables import read_table

SNAP = "2026-01-02"
MODEL = "smollm2-135m-instruct"
DOCS = [
    ("d-quad", 0.9, "Solve $x^2 - 5x + 6 = 0$ by factoring; the discriminant is $1$."),
    ("d-frac", 0.8, "Add the fractions 1/2 and 1/3 using a common denominator."),
    ("d-noise", 0.7, "Buy now! Limited offer on garden furniture."),
    ("d-err", 0.6, "The derivative of $x^3$ is $3x^2$."),
    ("d-low", 0.1, "Weather tomorrow: sunny."),
]
GOOD = """<level>High School</level>
<subject>Algebra</subject>
<topic>Topics: 1. Quadratic equations 2. Factoring</topic>
<key_concept>Key Concepts:
1. Quadratic equations:
1.1 Discriminant
1.2 Vertex form
2. Factoring:
2.1 Discriminants
2.2 discriminant
</key_concept>"""
ONLY_TOPIC = (
    "<level>Primary School</level>\n<subject>Arithmetic</subject>\n"
    "<topic>Topics: 1. Fractions</topic>"
)


def make_ctx(cfg, attempt="1") -> JobContext:
    args = argparse.Namespace(num_shards=1)
    return JobContext(cfg, SNAP, "test-run", attempt, Layout(cfg.storage.root_uri, SNAP), args)


@pytest.fixture
def cfg(make_config):
    c = make_config("generation.max_documents=4", "generation.max_prompt_chars=400")
    rows = [{"doc_id": d, "text": t, "domain_score": s} for d, s, t in DOCS]
    commit_table(Storage(c.storage), Layout(c.storage.root_uri, SNAP).table("documents"), rows=rows)
    return c


def test_prepare_takes_the_level_1_documents_and_the_pk_prompt(cfg):
    stats = prepare.run(make_ctx(cfg))
    storage = Storage(cfg.storage)
    req = join(Layout(cfg.storage.root_uri, SNAP).llm_task("concepts"), "requests")
    lines = [
        json.loads(x)
        for x in storage.read_text(join(req, "shard-00000-of-00001.jsonl")).splitlines()
    ]
    assert [x["custom_id"] for x in lines] == ["k-d-quad", "k-d-frac", "k-d-noise", "k-d-err"]
    messages = lines[0]["body"]["messages"]
    assert "discriminant is $1$" in messages[-2]["content"]
    assert messages[-1] == {"role": "assistant", "content": PREFILL}
    assert storage.read_json(join(req, "_manifest.json"))["prompt_version"] == PROMPT_VERSION
    assert (stats.rows_in, stats.rows_out) == (4, 4)


def test_prepare_honours_its_own_document_limit(make_config, cfg):
    narrow = make_config("generation.max_documents=4", "concepts.max_documents=2")
    assert prepare.run(make_ctx(narrow)).rows_out == 2


def answer(storage, cfg, responses):
    task = Layout(cfg.storage.root_uri, SNAP).llm_task("concepts")
    lines = [response_to_line(r, MODEL, 1, None) for r in responses]
    storage.write_text(join(task, "responses", "shard-00000-of-00001.jsonl"), dumps_lines(lines))
    mark_done(storage, task, "shard-00000-of-00001")


def test_collect_normalises_names_into_node_ids_and_quarantines_the_rest(cfg):
    prepare.run(make_ctx(cfg))
    storage = Storage(cfg.storage)
    answer(
        storage,
        cfg,
        [
            ChatResponse("k-d-quad", GOOD, 200, 60, "stop"),
            ChatResponse("k-d-frac", ONLY_TOPIC, 150, 20, "stop"),
            ChatResponse("k-d-noise", "Sorry, I like furniture.", 100, 6, "stop"),
            ChatResponse("k-d-err", "", 100, 0, "error", "engine died"),
        ],
    )
    stats = collect.run(make_ctx(cfg))
    layout = Layout(cfg.storage.root_uri, SNAP)
    table = read_table(storage, layout.table("doc_concepts"))
    quad = table[table["doc_id"] == "d-quad"]
    pairs = sorted(zip(quad["topic_id"], quad["concept_id"], strict=True))
    assert pairs == [
        ("t:factoring", "c:discriminant"),
        ("t:quadratic equation", "c:discriminant"),
        ("t:quadratic equation", "c:vertex form"),
    ]
    assert set(quad["edu_level"]) == {"high_school"} and set(quad["subject"]) == {"Algebra"}
    assert set(quad["prompt_version"]) == {PROMPT_VERSION} and set(quad["model"]) == {MODEL}
    assert "Discriminants" in set(quad["concept_raw"])  # the model's string is kept
    frac = table[table["doc_id"] == "d-frac"].iloc[0]
    assert (frac["topic_id"], frac["concept_id"], frac["edu_level"]) == (
        "t:fraction", None, "primary_school",
    )  # fmt: skip
    quarantine = read_table(storage, layout.quarantine("doc_concepts")).sort_values("doc_id")
    assert list(zip(quarantine["doc_id"], quarantine["reason"], strict=True)) == [
        ("d-err", "request_error"),
        ("d-noise", "unparseable"),
    ]
    assert json.loads(quarantine.iloc[1]["raw"])["text"] == "Sorry, I like furniture."
    assert (stats.rows_in, stats.rows_out) == (4, 2)
    stats.check_balance()
    assert (stats.extra["num_topics"], stats.extra["num_concepts"]) == (3, 2)
    assert stats.extra["parse_rate"] == round(2 / 3, 4)
    written = storage.read_json(join(layout.table("doc_concepts"), "_stats.json"))
    assert written["quarantined_by_reason"] == {"request_error": 1, "unparseable": 1}


def test_registered_task_repairs_replies_without_topics():
    task = get_task("concepts")
    assert task.is_parseable(GOOD)
    assert not task.is_parseable("I don't know.")
    assert "<key_concept>" in task.repair_prompt("junk")


LOOPING = "<level>College</level>\n<subject>Calculus</subject>\n<topic>Topics:\n" + "".join(
    f"{i}. Limits of type {i}\n" for i in range(1, 30)
)


def test_topics_without_concepts_are_repaired_by_asking_for_their_concepts():
    task = get_task("concepts")
    assert not task.is_parseable(LOOPING)  # topics, but no key concept
    follow_up = task.repair_prompt(LOOPING)
    assert "1. Limits of type 1\n2. Limits of type 2\n3. Limits of type 3\n" in follow_up
    assert "Limits of type 4" not in follow_up
    assert task.repair_prefill.startswith("<key_concept>")
    # Nothing usable at all: the repair asks for topics with their concepts.
    assert "Name 1 to 3 topics" in task.repair_prompt("no idea")


def test_collect_joins_a_repair_to_the_topics_of_the_first_reply(cfg):
    prepare.run(make_ctx(cfg))
    storage = Storage(cfg.storage)
    repaired = (
        get_task("concepts").repair_prefill
        + " Limits of type 1:\n1.1 Epsilon-delta\n1.2 One-sided limit\n"
    )
    task = Layout(cfg.storage.root_uri, SNAP).llm_task("concepts")
    lines = [
        response_to_line(ChatResponse("k-d-quad", repaired, 300, 20, "stop"), MODEL, 2,
                         ChatResponse("k-d-quad", LOOPING, 200, 256, "length")),
        *[response_to_line(ChatResponse(f"k-{d}", GOOD, 10, 10, "stop"), MODEL)
          for d in ("d-frac", "d-noise", "d-err")],
    ]  # fmt: skip
    storage.write_text(join(task, "responses", "shard-00000-of-00001.jsonl"), dumps_lines(lines))
    mark_done(storage, task, "shard-00000-of-00001")
    stats = collect.run(make_ctx(cfg))
    table = read_table(storage, Layout(cfg.storage.root_uri, SNAP).table("doc_concepts"))
    quad = table[table["doc_id"] == "d-quad"]
    with_concepts = quad[quad["concept_id"].notna()]
    assert sorted(with_concepts["concept_id"]) == ["c:epsilon delta", "c:one sided limit"]
    assert set(with_concepts["topic_id"]) == {"t:limit of type 1"}
    assert set(quad["edu_level"]) == {"college"} and set(quad["subject"]) == {"Calculus"}
    assert quad["topic_id"].nunique() == 5  # the first reply's topics, cut at five
    assert stats.extra["num_repaired"] == 1
