"""The prepare jobs read their tables in batches and join them through spills.

Their request shards must be byte for byte what an in-memory join gives (the reference
here, written the way the jobs worked before they streamed), whatever the batch and bucket
sizes: ordering, per-level bounds, missing documents and each document's own topics included.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
from committed import commit_table

from jobs.cli import JobContext
from jobs.concepts import prepare as concepts_prepare
from jobs.concepts.prompts import build_messages as pk_messages
from jobs.layout import Layout
from jobs.llm.batchfile import dumps_line, request_to_line, split_requests
from jobs.llm.shards import make_request
from jobs.llm.tasks import generation_for
from jobs.questions import prepare
from jobs.storage import Storage, join

SNAP = "2026-02-02"
NUM_SHARDS = 3


def make_ctx(cfg) -> JobContext:
    args = argparse.Namespace(num_shards=NUM_SHARDS)
    return JobContext(cfg, SNAP, "test-run", "1", Layout(cfg.storage.root_uri, SNAP), args)


def random_inputs(seed: int) -> tuple[list[dict], list[dict], list[dict]]:
    """documents, doc_concepts and combinations, with what real runs can hold: documents
    without text, combinations citing documents that are gone, one or two references."""
    rng = np.random.default_rng(seed)
    docs = [
        {
            "doc_id": f"d{i:02d}",
            "text": None
            if i % 11 == 5
            else f"Document {i}: " + "x^2 + y " * int(rng.integers(1, 40)),
            "domain_score": float(rng.random()),
            "fine_score": None if i % 3 else float(rng.random()),
        }
        for i in range(30)
    ]
    with_concepts = [f"d{i:02d}" for i in rng.permutation(30)[:20]]
    concepts = [
        {"doc_id": d, "edu_level": "high_school", "topic": f"T{t}", "concept": f"C{c}"}
        for d in with_concepts
        for t in rng.permutation(6)[: int(rng.integers(1, 4))]
        for c in rng.permutation(9)[: int(rng.integers(1, 4))]
    ]
    concepts += [dict(concepts[0]), dict(concepts[1], concept=None)]  # a repeat, a null
    rng.shuffle(concepts)  # a document's rows come in no particular order
    gone = [f"gone-{i}" for i in range(4)]
    combos = [
        {"combo_id": f"l1-d{i:02d}", "level": 1, "ref_doc_ids": [f"d{i:02d}"]} for i in range(25)
    ]
    combos += [{"combo_id": f"l1-{g}", "level": 1, "ref_doc_ids": [g]} for g in gone[:2]]
    combos += [
        {
            "combo_id": f"l2-{d}",
            "level": 2,
            "ref_doc_ids": [d],
            "topics": ["T1"],
            "concepts": ["C1"],
        }
        for d in [*with_concepts, gone[2]]
    ]
    combos[-1]["combo_id"] = "l2-0-gone"  # sorts first: inside the Level-2 bound
    pool = [d["doc_id"] for d in docs] + gone
    for w in range(40):
        refs = list(rng.choice(pool, size=int(rng.integers(1, 3)), replace=False))
        combos.append(
            {
                "combo_id": f"l3-{rng.integers(10**6):06d}-{w}",
                "level": 3,
                "ref_doc_ids": refs,
                "topics": [f"T{int(rng.integers(6))}"],
                "concepts": [f"C{int(rng.integers(9))}", f"C{int(rng.integers(9))}"],
            }
        )
    combos.append({"combo_id": "l3-no-refs", "level": 3, "ref_doc_ids": [], "concepts": ["C1"]})
    combos.append({"combo_id": "l3-null-refs", "level": 3, "ref_doc_ids": None, "concepts": ["C1"]})
    order = rng.permutation(len(combos))
    combos = [{"topics": [], "concepts": [], **combos[i]} for i in order]
    return docs, concepts, combos


def reference_lines(cfg, docs, concepts, combos) -> tuple[dict[int, list[list[str]]], dict]:
    """Each level's shard lines and missing counts, from whole tables held in memory."""
    texts = {d["doc_id"]: str(d["text"] or "") for d in docs}
    doc_topics: dict = {}  # each document's topics in first-seen order, concepts likewise
    for row in concepts:
        own = doc_topics.setdefault(row["doc_id"], {}).setdefault(row["topic"], [])
        if isinstance(row["concept"], str) and row["concept"] not in own:
            own.append(row["concept"])
    doc_topics = {d: list(topics.items()) for d, topics in doc_topics.items()}
    limits = {1: None, 2: cfg.questions.max_combinations_l2, 3: cfg.questions.max_combinations_l3}
    lines, missing = {}, {}
    for level in prepare.LEVELS:
        rows = sorted((c for c in combos if c["level"] == level), key=lambda c: c["combo_id"])
        rows = rows[: limits[level]]
        requests, missing[level] = [], 0
        for c in rows:
            refs = c["ref_doc_ids"] or []
            found = [texts[d] for d in refs if d in texts]
            if len(found) != len(refs) or not found:
                missing[level] += 1
                continue
            messages = prepare.level_messages(
                level, found, doc_topics.get(refs[0], []), c["topics"], c["concepts"], cfg
            )
            requests.append(make_request(c["combo_id"], messages, cfg.generation))
        model = generation_for(cfg, prepare.TASKS[level]).model
        lines[level] = [
            [dumps_line(request_to_line(r, model)) for r in shard]
            for shard in split_requests(requests, NUM_SHARDS)
        ]
    return lines, missing


def committed_lines(cfg, task: str) -> list[list[str]]:
    storage = Storage(cfg.storage)
    uri = join(Layout(cfg.storage.root_uri, SNAP).llm_task(task), "requests")
    names = storage.read_json(join(uri, "_manifest.json"))["shards"]
    return [storage.read_text(join(uri, n)).splitlines(keepends=True) for n in names]


@pytest.mark.parametrize(("batch_rows", "spill_rows"), [(2, 1), (7, 3), (20_000, 20_000)])
def test_questions_prepare_matches_the_in_memory_join(
    make_config, monkeypatch, batch_rows, spill_rows
):
    cfg = make_config(
        "generation.max_prompt_chars=300",
        "questions.max_combinations_l2=12",
        "questions.max_combinations_l3=35",
    )
    docs, concepts, combos = random_inputs(seed=3)
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    commit_table(storage, layout.table("documents"), rows=docs)
    commit_table(storage, layout.table("doc_concepts"), rows=concepts)
    commit_table(storage, layout.table("combinations"), rows=combos)
    monkeypatch.setattr(prepare, "BATCH_ROWS", batch_rows)
    monkeypatch.setattr(prepare, "SPILL_ROWS", spill_rows)

    stats = prepare.run(make_ctx(cfg))

    want, missing = reference_lines(cfg, docs, concepts, combos)
    for level in prepare.LEVELS:
        assert committed_lines(cfg, prepare.TASKS[level]) == want[level], f"level {level}"
    assert missing[1] == 2 and missing[2] >= 1 and missing[3] >= 2  # the fixture's gaps
    assert stats.quarantined == {f"l{lv}_missing_document": n for lv, n in missing.items() if n}
    assert stats.extra["requests_by_level"] == {
        str(lv): sum(len(s) for s in want[lv]) for lv in prepare.LEVELS
    }
    stats.check_balance()


@pytest.mark.parametrize(("batch_rows", "spill_rows"), [(2, 1), (4, 5), (20_000, 20_000)])
def test_concepts_prepare_matches_the_ranked_selection(
    make_config, monkeypatch, batch_rows, spill_rows
):
    cfg = make_config("generation.max_prompt_chars=300", "concepts.max_documents=17")
    docs, _, _ = random_inputs(seed=4)
    commit_table(
        Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP).table("documents"), rows=docs
    )
    monkeypatch.setattr(concepts_prepare, "BATCH_ROWS", batch_rows)
    monkeypatch.setattr(concepts_prepare, "SPILL_ROWS", spill_rows)

    stats = concepts_prepare.run(make_ctx(cfg))

    chosen = prepare.select_documents(pd.DataFrame(docs), 17)
    requests = [
        make_request(
            concepts_prepare.request_id(d),
            pk_messages(str(t or ""), cfg.generation.max_prompt_chars),
            cfg.generation,
        )
        for d, t in zip(chosen["doc_id"], chosen["text"], strict=True)
    ]
    model = generation_for(cfg, concepts_prepare.TASK).model
    want = [
        [dumps_line(request_to_line(r, model)) for r in shard]
        for shard in split_requests(requests, NUM_SHARDS)
    ]
    assert committed_lines(cfg, concepts_prepare.TASK) == want
    assert (stats.rows_in, stats.rows_out) == (17, 17)
    assert stats.extra == {"documents_available": 30, "max_documents": 17}
