"""questions.prepare and questions.collect on tiny committed tables and hand-written responses.

Level-1 is exercised in depth; Levels 2 and 3 add their own prompts, parsers and provenance.
"""

from __future__ import annotations

import argparse
import json

import pytest
from committed import commit_table, mark_done

from jobs.cli import JobContext
from jobs.commit import UncommittedInputError
from jobs.layout import Layout
from jobs.llm.batchfile import dumps_lines, response_to_line
from jobs.llm.engine import ChatResponse
from jobs.llm.results import IncompleteTaskError, require_task_done
from jobs.llm.tasks import get_task
from jobs.questions import collect, prepare
from jobs.questions.collect import question_id
from jobs.questions.prompts import (
    CONCEPT_PREFILL,
    PREFILL,
    PROMPT_VERSION,
    PROMPT_VERSION_L2,
    PROMPT_VERSION_L3,
    TRUNCATION_MARK,
)
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


# doc_id -> (edu_level, [(topic, [concepts])]) as concept extraction would have committed it.
CONCEPTS = {
    "d-a": ("middle_school", [("Prime numbers", ["Divisor", "Prime counting"])]),
    "d-b": ("high_school", [("Geometry", ["Pythagorean theorem", "Right triangle"])]),
}
# Level-3 walks: (walk_id, topics, concepts, reference documents).
WALKS = [("w-0-abc", ["Geometry", "Prime numbers"], ["Right triangle", "Divisor"], ["d-b", "d-a"])]


def commit_documents(cfg, rows=DOCS) -> None:
    table = [
        {"doc_id": d, "text": t, "source": "x.jsonl", "domain_score": s, "filter_reason": "kept"}
        for d, s, t in rows
    ]
    uri = Layout(cfg.storage.root_uri, SNAP).table("documents")
    commit_table(Storage(cfg.storage), uri, rows=table)


def combo(cid, level, refs, topics=(), concepts=()):
    return {"combo_id": cid, "level": level, "topics": list(topics), "concepts": list(concepts),
            "ref_doc_ids": list(refs)}  # fmt: skip


def commit_inputs(cfg, rows=DOCS, concepts=None, walks=()) -> None:
    """documents, doc_concepts and combinations as the upstream stages commit them.

    Level-1 combinations are the ``generation.max_documents`` best documents (the rule the
    combinations job applies); Level-2 one per document with concepts; Level-3 ``walks``.
    """
    import pandas as pd

    commit_documents(cfg, rows)
    concepts = {} if concepts is None else concepts
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    concept_rows = [
        {"doc_id": d, "edu_level": lvl, "topic": t, "concept": c}
        for d, (lvl, topics) in concepts.items()
        for t, cs in topics
        for c in cs
    ]
    commit_table(storage, layout.table("doc_concepts"), rows=concept_rows or None)
    docs = pd.DataFrame([{"doc_id": d, "domain_score": s} for d, s, _ in rows])
    l1 = prepare.select_documents(docs, cfg.generation.max_documents)["doc_id"]
    combos = [combo(f"l1-{d}", 1, [d]) for d in l1]
    combos += [
        combo(f"l2-{d}", 2, [d], [t for t, _ in topics], [c for _, cs in topics for c in cs])
        for d, (_, topics) in concepts.items()
    ]
    combos += [combo(f"l3-{w}", 3, refs, t, c) for w, t, c, refs in walks]
    commit_table(storage, layout.table("combinations"), rows=combos)


@pytest.fixture
def cfg(make_config):
    c = make_config("generation.max_documents=4", "generation.max_prompt_chars=500")
    commit_inputs(c)
    return c


def request_lines(storage: Storage, cfg, name: str, task: str = "questions_l1") -> list[dict]:
    uri = join(Layout(cfg.storage.root_uri, SNAP).llm_task(task), "requests", name)
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
    assert (stats.rows_in, stats.rows_out) == (4, 4)
    assert stats.extra["requests_by_level"] == {"1": 4, "2": 0, "3": 0}


def test_documents_are_chosen_by_fine_score_where_it_exists():
    import pandas as pd

    # d-cold has the best cold-start score but the refine job scored the others higher.
    docs = pd.DataFrame(
        [
            {"doc_id": "d-cold", "domain_score": 0.99, "fine_score": None},
            {"doc_id": "d-fine-low", "domain_score": 0.95, "fine_score": 6.6},
            {"doc_id": "d-fine-high", "domain_score": 0.50, "fine_score": 8.1},
            {"doc_id": "d-fine-tie", "domain_score": 0.60, "fine_score": 8.1},
        ]
    )
    chosen = list(prepare.select_documents(docs, 3)["doc_id"])
    assert chosen == ["d-fine-tie", "d-fine-high", "d-fine-low"]
    no_refine = docs.drop(columns="fine_score")  # the refine job fell back: domain score
    assert list(prepare.select_documents(no_refine, 2)["doc_id"]) == ["d-cold", "d-fine-low"]


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


def test_a_changed_request_set_voids_old_markers_and_deletes_nothing(make_config):
    cfg = make_config("generation.max_documents=2")
    commit_inputs(cfg)
    storage = Storage(cfg.storage)
    layout = Layout(cfg.storage.root_uri, SNAP)
    task = layout.llm_task("questions_l1")
    prepare.run(make_ctx(cfg, num_shards=1))
    journal = join(task, "responses", "shard-00000-of-00001.jsonl")
    storage.write_text(journal, "old\n")
    mark_done(storage, task, "shard-00000-of-00001")
    assert require_task_done(storage, layout, "questions_l1")
    bigger = make_config("generation.max_documents=3")
    commit_inputs(bigger)
    prepare.run(make_ctx(bigger, num_shards=1))
    # The old marker names the old request file's hash: refused, though still there.
    with pytest.raises(IncompleteTaskError, match="shard-00000-of-00001"):
        require_task_done(storage, layout, "questions_l1")
    assert storage.read_text(journal) == "old\n"
    assert len(request_lines(storage, bigger, "shard-00000-of-00001.jsonl")) == 3


def test_prepare_writes_empty_shards_when_documents_are_few(make_config):
    cfg = make_config()
    commit_inputs(cfg, DOCS[:1])
    prepare.run(make_ctx(cfg, num_shards=3))
    storage = Storage(cfg.storage)
    assert len(request_lines(storage, cfg, "shard-00000-of-00003.jsonl")) == 1
    assert request_lines(storage, cfg, "shard-00002-of-00003.jsonl") == []


def test_prepare_refuses_uncommitted_inputs(make_config):
    with pytest.raises(UncommittedInputError, match="combinations"):
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


def write_responses(
    storage, cfg, shard: str, responses, done=True, extra_lines=(), task="questions_l1"
):
    """Hand-written journal lines: (ChatResponse, first_attempt_or_None)."""
    task = Layout(cfg.storage.root_uri, SNAP).llm_task(task)
    lines = [response_to_line(r, MODEL, 2 if f else 1, f) for r, f in responses]
    storage.write_text(
        join(task, "responses", shard + ".jsonl"), dumps_lines([*lines, *extra_lines])
    )
    if done:
        mark_done(storage, task, shard, requests=len(lines))


def resp(cid, text, p=100, c=20, finish="stop", error=None):
    return ChatResponse(cid, text, p, c, finish, error)


def finish_empty_levels(storage, cfg, num_shards, tasks=("questions_l2", "questions_l3")):
    """Mark the shards of levels without combinations done, as the runner does."""
    for task in tasks:
        for i in range(num_shards):
            write_responses(storage, cfg, f"shard-{i:05d}-of-{num_shards:05d}", [], task=task)


@pytest.fixture
def answered(cfg):
    """Four documents in two shards: ok | error  and  repaired-garbled | not suitable."""
    prepare.run(make_ctx(cfg, num_shards=2))
    storage = Storage(cfg.storage)
    finish_empty_levels(storage, cfg, 2)
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
    for task in ("questions_l1", "questions_l2", "questions_l3"):
        for i in range(2):
            run_shard(storage, layout, get_task(task), ShardSpec(i, 2), ScriptedEngine(), cfg)
    stats = collect.run(make_ctx(cfg))
    assert (stats.rows_in, stats.rows_out, stats.quarantined) == (4, 3, {"not_suitable": 1})
    assert stats.extra["num_repaired"] == 3
    assert stats.tokens == {"prompt": 70, "completion": 35}
    table = read_table(storage, layout.table("questions"))
    assert sorted(table["combo_id"]) == ["l1-d-a", "l1-d-b", "l1-d-mid"]
    assert set(table["model"]) == {"scripted"}


# -- Levels 2 and 3 --------------------------------------------------------------------------


def concept_block(n, concepts, q):
    return f"<Q{n}>\nSelected Concepts: [{', '.join(concepts)}]\nQuestion: {q}\n</Q{n}>\n"


@pytest.fixture
def cfg_levels(make_config):
    c = make_config(
        "generation.max_documents=4",
        "generation.max_prompt_chars=600",
        "questions.num_questions_l2=4",
        "questions.num_questions_l3=2",
    )
    commit_inputs(c, concepts=CONCEPTS, walks=WALKS)
    return c


def test_prepare_writes_level_2_and_3_requests_with_their_concepts_and_documents(cfg_levels):
    cfg = cfg_levels
    stats = prepare.run(make_ctx(cfg, num_shards=1))
    storage = Storage(cfg.storage)
    name = "shard-00000-of-00001.jsonl"
    l2 = request_lines(storage, cfg, name, "questions_l2")
    l3 = request_lines(storage, cfg, name, "questions_l3")
    assert [r["custom_id"] for r in l2] == ["l2-d-a", "l2-d-b"]
    assert [r["custom_id"] for r in l3] == ["l3-w-0-abc"]
    user_l2 = l2[0]["body"]["messages"][-2]["content"]
    assert "How many primes are below 20?" in user_l2
    assert "Prime numbers" in user_l2 and "Prime counting" in user_l2
    assert "Pythagorean" not in user_l2  # only the document's own concepts
    assert l2[0]["body"]["messages"][-1] == {"role": "assistant", "content": CONCEPT_PREFILL}
    user_l3 = l3[0]["body"]["messages"][-2]["content"]
    for text in ("Right triangle", "Divisor", "Geometry", "a^2+b^2=c^2", "primes are below 20"):
        assert text in user_l3
    assert stats.extra["requests_by_level"] == {"1": 4, "2": 2, "3": 1}
    assert (stats.rows_in, stats.rows_out) == (7, 7)
    manifest = storage.read_json(
        join(
            Layout(cfg.storage.root_uri, SNAP).llm_task("questions_l3"),
            "requests",
            "_manifest.json",
        )
    )
    assert manifest["prompt_version"] == PROMPT_VERSION_L3


def test_prepare_bounds_levels_2_and_3_and_counts_missing_documents(make_config):
    cfg = make_config("generation.max_documents=4", "questions.max_combinations_l2=1")
    walks = [*WALKS, ("w-1-zzz", ["Geometry"], ["Divisor", "Right triangle"], ["d-gone"])]
    commit_inputs(cfg, concepts=CONCEPTS, walks=walks)
    stats = prepare.run(make_ctx(cfg, num_shards=1))
    assert stats.extra["requests_by_level"] == {"1": 4, "2": 1, "3": 1}
    assert stats.quarantined == {"l3_missing_document": 1}
    stats.check_balance()


def test_collect_levels_2_and_3_carry_concepts_and_sources(cfg_levels):
    cfg = cfg_levels
    prepare.run(make_ctx(cfg, num_shards=1))
    storage = Storage(cfg.storage)
    shard = "shard-00000-of-00001"
    write_responses(storage, cfg, shard, [(resp(f"l1-{d}", OK_TEXT), None)
                                          for d in ("d-a", "d-b", "d-c", "d-mid")])  # fmt: skip
    l2_text = concept_block(1, ["Divisor", "Prime counting"], "How many divisors does $36$ have?")
    write_responses(
        storage, cfg, shard,
        [(resp("l2-d-a", l2_text), None), (resp("l2-d-b", "I cannot help"), None)],
        task="questions_l2",
    )  # fmt: skip
    l3_text = concept_block(
        1,
        ["Right triangle", "Divisor"],
        "A right triangle has integer legs dividing $12$. Find them.",
    )
    write_responses(storage, cfg, shard, [(resp("l3-w-0-abc", l3_text), None)], task="questions_l3")
    stats = collect.run(make_ctx(cfg))
    table = read_table(storage, Layout(cfg.storage.root_uri, SNAP).table("questions"))
    by_combo = {c: g for c, g in table.groupby("combo_id")}
    l2 = by_combo["l2-d-a"].iloc[0]
    assert (l2["level"], list(l2["selected_concepts"])) == (2, ["Divisor", "Prime counting"])
    assert (list(l2["source_doc_ids"]), l2["edu_level"], l2["orig_tag"]) == (
        ["d-a"], "middle_school", "newly_created",
    )  # fmt: skip
    assert l2["prompt_version"] == PROMPT_VERSION_L2
    l3 = by_combo["l3-w-0-abc"].iloc[0]
    assert (l3["level"], list(l3["source_doc_ids"])) == (3, ["d-b", "d-a"])
    assert list(l3["selected_concepts"]) == ["Right triangle", "Divisor"]
    assert l3["edu_level"] is None
    assert stats.extra["by_level"]["2"] == {
        "combinations": 2,
        "with_questions": 1,
        "questions": 1,
        "quarantined": {"unparseable": 1},
    }  # fmt: skip
    assert stats.extra["by_level"]["3"]["questions"] == 1
    assert stats.extra["by_level"]["1"]["questions"] == 8
    assert (stats.rows_in, stats.rows_out) == (7, 6)
    stats.check_balance()


def test_registered_level_tasks_parse_their_own_format():
    l2, l3 = get_task("questions_l2"), get_task("questions_l3")
    text = concept_block(1, ["a", "b"], "What is the sum of the first $10$ odd numbers?")
    assert l2.is_parseable(text) and l3.is_parseable(text)
    assert not l2.is_parseable("Here you go: what is x?")
    assert l2.repair_prefill == CONCEPT_PREFILL
