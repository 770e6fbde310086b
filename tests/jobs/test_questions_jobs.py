"""questions.prepare and questions.collect on tiny committed tables and hand-written responses."""

from __future__ import annotations

import argparse
import json

import pytest
from committed import commit_table

from jobs.cli import JobContext
from jobs.commit import UncommittedInputError
from jobs.layout import Layout
from jobs.llm.batchfile import dumps_lines, response_to_line
from jobs.llm.engine import ChatResponse
from jobs.llm.results import IncompleteTaskError
from jobs.llm.tasks import get_task
from jobs.questions import collect, prepare
from jobs.questions.collect import question_id
from jobs.questions.prompts import PREFILL, PROMPT_VERSION, TRUNCATION_MARK
from jobs.storage import Storage, join
from jobs.tables import read_table

SNAP = "2026-01-01"

DOCS = [
    # doc_id, domain_score, text
    ("d-low", 0.10, "Cooking pasta needs salted water."),
    ("d-b", 0.90, "The Pythagorean theorem says $a^2+b^2=c^2$. Exercise: find c for a=3, b=4."),
    ("d-a", 0.90, "A prime has exactly two divisors. How many primes are below 20?"),
    ("d-mid", 0.50, "Derivatives measure rates of change: $(x^n)' = n x^{n-1}$." * 80),
    ("d-c", 0.70, "The sum of the first n integers is n(n+1)/2."),
]


def make_ctx(cfg, num_shards=None, attempt="1") -> JobContext:
    args = argparse.Namespace(num_shards=num_shards)
    return JobContext(cfg, SNAP, "test-run", attempt, Layout(cfg.storage.root_uri, SNAP), args)


def commit_documents(cfg, rows=DOCS) -> None:
    table = [
        {"doc_id": d, "text": t, "source": "x.jsonl", "domain_score": s, "filter_reason": "kept"}
        for d, s, t in rows
    ]
    uri = Layout(cfg.storage.root_uri, SNAP).table("documents")
    commit_table(Storage(cfg.storage), uri, rows=table)


@pytest.fixture
def cfg(make_config):
    c = make_config("generation.max_documents=4", "generation.max_prompt_chars=500")
    commit_documents(c)
    return c


def request_lines(storage: Storage, cfg, name: str) -> list[dict]:
    uri = join(Layout(cfg.storage.root_uri, SNAP).llm_task("questions_l1"), "requests", name)
    return [json.loads(x) for x in storage.read_text(uri).splitlines()]


# -- prepare ---------------------------------------------------------------------------------


def test_prepare_selects_top_documents_and_writes_round_robin_shards(cfg):
    stats = prepare.run(make_ctx(cfg, num_shards=2))
    storage = Storage(cfg.storage)
    s0 = request_lines(storage, cfg, "shard-00000-of-00002.jsonl")
    s1 = request_lines(storage, cfg, "shard-00001-of-00002.jsonl")
    # score desc, doc_id asc on ties; d-low is beyond max_documents=4
    assert [x["custom_id"] for x in s0] == ["l1-d-a", "l1-d-c"]
    assert [x["custom_id"] for x in s1] == ["l1-d-b", "l1-d-mid"]
    first = s0[0]
    assert first["method"] == "POST" and first["url"] == "/v1/chat/completions"
    body = first["body"]
    assert body["model"] == cfg.generation.model
    assert (body["temperature"], body["top_p"]) == (
        cfg.generation.temperature,
        cfg.generation.top_p,
    )
    assert body["max_tokens"] == cfg.generation.max_new_tokens
    assert isinstance(body["seed"], int)
    assert len({x["body"]["seed"] for x in s0 + s1}) == 4
    assert "How many primes are below 20?" in body["messages"][3]["content"]
    assert body["messages"][-1] == {"role": "assistant", "content": PREFILL}
    long_prompt = s1[1]["body"]["messages"][3]["content"]
    assert TRUNCATION_MARK in long_prompt
    assert (stats.rows_in, stats.rows_out, stats.extra["documents_available"]) == (4, 4, 5)


def test_prepare_manifest_and_stats(cfg):
    prepare.run(make_ctx(cfg, num_shards=3))
    storage = Storage(cfg.storage)
    req = join(Layout(cfg.storage.root_uri, SNAP).llm_task("questions_l1"), "requests")
    manifest = storage.read_json(join(req, "_manifest.json"))
    assert manifest["prompt_version"] == PROMPT_VERSION
    assert manifest["num_requests"] == 4
    assert manifest["num_shards"] == 3
    assert manifest["task"] == "questions_l1"
    assert manifest["shards"] == [f"shard-0000{i}-of-00003.jsonl" for i in range(3)]
    assert len(manifest["fingerprint"]) == 64
    assert storage.read_json(join(req, "_stats.json"))["rows_out"] == 4
    assert storage.exists(join(req, "_SUCCESS"))


def test_prepare_is_byte_identical_on_rerun_and_keeps_responses(cfg):
    storage = Storage(cfg.storage)
    task = Layout(cfg.storage.root_uri, SNAP).llm_task("questions_l1")
    prepare.run(make_ctx(cfg, num_shards=2))
    before = {u: storage.read_bytes(u) for u in storage.walk_files(join(task, "requests"))}
    journal = join(task, "responses", "shard-00000-of-00002.jsonl")
    storage.write_text(journal, "kept\n")
    prepare.run(make_ctx(cfg, num_shards=2, attempt="2"))
    after = {u: storage.read_bytes(u) for u in storage.walk_files(join(task, "requests"))}
    shard_files = [u for u in before if u.endswith(".jsonl")]
    assert len(shard_files) == 2
    assert all(before[u] == after[u] for u in shard_files)
    assert storage.read_text(journal) == "kept\n"


def test_prepare_clears_responses_when_the_request_set_changes(make_config):
    cfg = make_config("generation.max_documents=2")
    commit_documents(cfg)
    storage = Storage(cfg.storage)
    task = Layout(cfg.storage.root_uri, SNAP).llm_task("questions_l1")
    prepare.run(make_ctx(cfg, num_shards=1))
    storage.write_text(join(task, "responses", "shard-00000-of-00001.jsonl"), "old\n")
    storage.write_text(join(task, "responses", "shard-00000-of-00001.done"), "{}")
    bigger = make_config("generation.max_documents=3")
    prepare.run(make_ctx(bigger, num_shards=1))
    assert not storage.exists(join(task, "responses"))
    assert len(request_lines(storage, bigger, "shard-00000-of-00001.jsonl")) == 3


def test_prepare_writes_empty_shards_when_documents_are_few(make_config):
    cfg = make_config()
    commit_documents(cfg, DOCS[:1])
    prepare.run(make_ctx(cfg, num_shards=3))
    storage = Storage(cfg.storage)
    assert len(request_lines(storage, cfg, "shard-00000-of-00003.jsonl")) == 1
    assert request_lines(storage, cfg, "shard-00002-of-00003.jsonl") == []


def test_prepare_refuses_uncommitted_documents(make_config):
    with pytest.raises(UncommittedInputError, match="documents"):
        prepare.run(make_ctx(make_config(), num_shards=1))


def test_prepare_cli_takes_num_shards(cfg):
    root = cfg.storage.root_uri
    argv = ["--snapshot", SNAP, "--num-shards", "4", "--set", f'storage.root_uri="{root}"']
    argv += ["--set", "generation.max_documents=4"]
    assert prepare.main(argv) == 0
    storage = Storage(cfg.storage)
    assert len(request_lines(storage, cfg, "shard-00003-of-00004.jsonl")) == 1
    with pytest.raises(SystemExit):
        prepare.main(["--snapshot", SNAP, "--num-shards", "0"])


# -- collect ---------------------------------------------------------------------------------


def block(n, q, tag="<newly_created>", level="<college>"):
    return f"<Q{n}>\nQuestion: {q}\nOrig_tag: {tag}\nLevel: {level}\n</Q{n}>\n"


OK_TEXT = block(
    1, "How many primes are below $20$?", "<original_question>", "<elementary>"
) + block(2, "What is the sum of all primes below $10$?", level="<middle_school>")
MODEL = "smollm2-135m-instruct"


def write_responses(storage, cfg, shard: str, responses, done=True, extra_lines=()):
    """Hand-written journal lines: (ChatResponse, first_attempt_or_None)."""
    task = Layout(cfg.storage.root_uri, SNAP).llm_task("questions_l1")
    lines = [response_to_line(r, MODEL, 2 if f else 1, f) for r, f in responses]
    storage.write_text(
        join(task, "responses", shard + ".jsonl"), dumps_lines([*lines, *extra_lines])
    )
    if done:
        storage.write_json(join(task, "responses", shard + ".done"), {"requests": len(lines)})


def resp(cid, text, p=100, c=20, finish="stop", error=None):
    return ChatResponse(cid, text, p, c, finish, error)


@pytest.fixture
def answered(cfg):
    """Four documents in two shards: ok | error  and  repaired-garbled | not suitable."""
    prepare.run(make_ctx(cfg, num_shards=2))
    storage = Storage(cfg.storage)
    write_responses(
        storage,
        cfg,
        "shard-00000-of-00002",
        [
            (resp("l1-d-a", OK_TEXT, 100, 60), None),
            (resp("l1-d-c", "", 90, 0, "error", "CUDA out of memory"), None),
        ],
    )
    write_responses(
        storage,
        cfg,
        "shard-00001-of-00002",
        [
            (resp("l1-d-b", "Question c equals five", 120, 10), resp("l1-d-b", "I think", 80, 5)),
            (resp("l1-d-mid", "NOT SUITABLE for creating questions", 300, 8, "length"), None),
        ],
        extra_lines=[response_to_line(resp("l1-stranger", OK_TEXT), MODEL)],
    )
    return cfg


def test_collect_writes_questions_and_quarantine(answered):
    cfg = answered
    stats = collect.run(make_ctx(cfg))
    storage = Storage(cfg.storage)
    layout = Layout(cfg.storage.root_uri, SNAP)
    table = read_table(storage, layout.table("questions"))
    assert list(table["question_id"]) == [question_id("l1-d-a", 1), question_id("l1-d-a", 2)]
    assert list(table["question"]) == [
        "How many primes are below $20$?",
        "What is the sum of all primes below $10$?",
    ]
    assert list(table["orig_tag"]) == ["original_question", "newly_created"]
    assert list(table["edu_level"]) == ["elementary", "middle_school"]
    row = table.iloc[0].to_dict()
    assert (row["combo_id"], row["level"], row["model"]) == ("l1-d-a", 1, MODEL)
    assert (row["prompt_version"], row["snapshot"]) == (PROMPT_VERSION, SNAP)
    assert list(row["source_doc_ids"]) == ["d-a"] and list(row["selected_concepts"]) == []

    quarantine = read_table(storage, layout.quarantine("questions")).sort_values("doc_id")
    assert list(quarantine["doc_id"]) == ["d-b", "d-c", "d-mid"]
    assert list(quarantine["reason"]) == ["unparseable", "request_error", "not_suitable"]
    assert set(quarantine["stage"]) == {"questions"} and set(quarantine["snapshot"]) == {SNAP}
    assert list(quarantine["source_file"]) == [
        "shard-00001-of-00002.jsonl",
        "shard-00000-of-00002.jsonl",
        "shard-00001-of-00002.jsonl",
    ]
    raw = json.loads(quarantine.iloc[0]["raw"])
    assert (raw["text"], raw["first_attempt"], raw["attempts"]) == (
        "Question c equals five",
        "I think",
        2,
    )
    assert json.loads(quarantine.iloc[1]["raw"])["error"] == "CUDA out of memory"

    assert (stats.rows_in, stats.rows_out) == (4, 1)
    assert stats.quarantined == {"not_suitable": 1, "request_error": 1, "unparseable": 1}
    stats.check_balance()
    assert stats.tokens == {"prompt": 100 + 90 + 120 + 80 + 300, "completion": 60 + 0 + 15 + 8}
    assert stats.extra["num_questions"] == 2
    assert stats.extra["parse_rate"] == round(2 / 3, 4)
    assert (stats.extra["num_repaired"], stats.extra["num_truncated"]) == (1, 1)
    assert stats.extra["unknown_responses"] == 1
    written = storage.read_json(join(layout.table("questions"), "_stats.json"))
    assert written["rows_in"] == 4 and written["quarantined_by_reason"]["unparseable"] == 1
    assert storage.exists(join(layout.quarantine("questions"), "_SUCCESS"))


def test_collect_counts_a_missing_response(answered):
    cfg = answered
    write_responses(
        Storage(cfg.storage), cfg, "shard-00000-of-00002", [(resp("l1-d-a", OK_TEXT), None)]
    )
    stats = collect.run(make_ctx(cfg))
    assert stats.quarantined == {"missing_response": 1, "not_suitable": 1, "unparseable": 1}
    stats.check_balance()


def test_collect_refuses_unfinished_shards(cfg):
    prepare.run(make_ctx(cfg, num_shards=2))
    storage = Storage(cfg.storage)
    write_responses(storage, cfg, "shard-00000-of-00002", [(resp("l1-d-a", OK_TEXT), None)])
    write_responses(storage, cfg, "shard-00001-of-00002", [], done=False)
    with pytest.raises(IncompleteTaskError, match="shard-00001-of-00002"):
        collect.run(make_ctx(cfg))
    assert not storage.exists(Layout(cfg.storage.root_uri, SNAP).table("questions"))


def test_collect_rerun_replaces_outputs(answered):
    collect.run(make_ctx(answered))
    collect.run(make_ctx(answered, attempt="2"))
    storage = Storage(answered.storage)
    assert len(read_table(storage, Layout(answered.storage.root_uri, SNAP).table("questions"))) == 2


def test_registered_task_parses_and_repairs():
    task = get_task("questions_l1")
    assert task.is_parseable(OK_TEXT)
    assert task.is_parseable("NOT SUITABLE for creating questions")
    assert not task.is_parseable("Sure, here are questions: 1. what is 2+2")
    assert "<Q1>" in task.repair_prompt("junk") and "Orig_tag" in task.repair_prompt("junk")


class ScriptedEngine:
    """A test double: garbles every first reply; answers the repair follow-up properly."""

    model_name = "scripted"

    def generate(self, requests):
        out = []
        for r in requests:
            repairing = len(r.messages) > 5  # the first conversation has five turns
            if r.custom_id == "l1-d-c":
                text = "NOT SUITABLE for creating questions"
            elif repairing:
                assert r.messages[-2]["content"] == get_task("questions_l1").repair_prompt("")
                assert r.messages[-1] == {"role": "assistant", "content": PREFILL}
                text = block(1, f"Give the number of letters in '{r.custom_id}'?")
            else:
                text = "Sure! 1. What is x?"
            out.append(ChatResponse(r.custom_id, text, 10, 5, "stop"))
        return out


def test_prepare_run_shard_collect_end_to_end(cfg):
    from jobs.llm.batchfile import ShardSpec
    from jobs.llm.runner import run_shard

    prepare.run(make_ctx(cfg, num_shards=2))
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    for i in range(2):
        run_shard(storage, layout, get_task("questions_l1"), ShardSpec(i, 2), ScriptedEngine(), cfg)
    stats = collect.run(make_ctx(cfg))
    assert (stats.rows_in, stats.rows_out, stats.quarantined) == (4, 3, {"not_suitable": 1})
    assert stats.extra["num_repaired"] == 3
    assert stats.tokens == {"prompt": 70, "completion": 35}
    table = read_table(storage, layout.table("questions"))
    assert sorted(table["combo_id"]) == ["l1-d-a", "l1-d-b", "l1-d-mid"]
    assert set(table["model"]) == {"scripted"}
