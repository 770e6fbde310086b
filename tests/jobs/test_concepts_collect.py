"""concepts.collect streams: shard by shard, rows in bounded part files, the same output.

Tasks here are built straight from requests (no documents table): ``n`` documents in
request shards of ``shard_size``, each document's reply chosen by its index, so quarantine
reasons fall in every shard and every batch.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import tracemalloc
from typing import Any

import pyarrow.parquet as pq
import pytest
from committed import mark_done

import jobs.tables
from jobs.cli import JobContext
from jobs.commit import MANIFEST, STATS, StageStats
from jobs.concepts import collect
from jobs.concepts.prepare import TASK, request_id
from jobs.concepts.prompts import PROMPT_VERSION
from jobs.layout import Layout
from jobs.llm.batchfile import dumps_lines, response_to_line
from jobs.llm.engine import ChatResponse
from jobs.llm.shards import Collected, load_responses, make_request, publish_requests
from jobs.storage import Storage, join
from jobs.tables import read_table

SNAP = "2026-01-02"
MODEL = "smollm2-135m-instruct"
GOOD = """<level>High School</level>
<subject>Algebra</subject>
<topic>Topics: 1. Quadratic equations 2. Factoring</topic>
<key_concept>Key Concepts:
1. Quadratic equations:
1.1 Discriminant
1.2 Vertex form
2. Factoring:
2.1 Discriminants
</key_concept>"""  # 3 rows: a concept of two topics counts once per topic
ONLY_TOPIC = (
    "<level>Primary School</level>\n<subject>Arithmetic</subject>\n"
    "<topic>Topics: 1. Fractions</topic>"
)  # 1 row, null concept
# reply kind -> rows it gives (None: quarantined, for the reason named)
KINDS = ("good", "varied", "junk", "topic", "error", "missing", "varied")
ROWS = {"good": 3, "varied": 3, "topic": 1}
REASONS = {"junk": "unparseable", "error": "request_error", "missing": "missing_response"}


def varied(i: int) -> str:
    """A reply whose concept names vary with ``i`` (five distinct values), two topics."""
    return (
        "<level>College</level>\n<subject>Calculus</subject>\n"
        "<topic>Topics: 1. Limits 2. Series</topic>\n<key_concept>Key Concepts:\n"
        f"1. Limits:\n1.1 Limit rule {i % 5}\n1.2 Squeeze theorem\n2. Series:\n2.1 Ratio test\n"
        "</key_concept>"
    )


def make_ctx(cfg, attempt: str = "1") -> JobContext:
    args = argparse.Namespace()
    return JobContext(cfg, SNAP, "test-run", attempt, Layout(cfg.storage.root_uri, SNAP), args)


def reply(i: int, kind: str) -> ChatResponse | None:
    cid = request_id(f"d{i:05d}")
    texts = {"good": GOOD, "varied": varied(i), "topic": ONLY_TOPIC, "junk": "No idea."}
    if kind == "missing":
        return None
    if kind == "error":
        return ChatResponse(cid, "", 50, 0, "error", "engine died")
    return ChatResponse(cid, texts[kind], 100 + i, 20, "stop")


def build_task(cfg, n: int, shard_size: int) -> list[str]:
    """Commit ``n`` requests in shards of ``shard_size``, answer them, mark every shard done.

    The first shard also answers one request it does not have (an unknown response).
    Returns the kinds by document index.
    """
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    task_uri = layout.llm_task(TASK)
    messages = [{"role": "user", "content": "Extract the concepts."}]
    requests = [make_request(request_id(f"d{i:05d}"), messages, cfg.generation) for i in range(n)]
    num_shards = math.ceil(n / shard_size)
    manifest = {"run_id": "prep", "prompt_version": PROMPT_VERSION}
    publish_requests(
        storage, task_uri, "1", requests, num_shards, MODEL, manifest, StageStats(n, n)
    )
    kinds = [KINDS[i % len(KINDS)] for i in range(n)]
    for shard in range(num_shards):
        stem = f"shard-{shard:05d}-of-{num_shards:05d}"
        # round robin (jobs.llm.batchfile.split_requests): document i is in shard i % N
        answers = [reply(i, kinds[i]) for i in range(shard, n, num_shards)]
        lines = [response_to_line(r, MODEL) for r in answers if r is not None]
        if shard == 0:
            lines.append(response_to_line(reply(10**6, "good"), MODEL))
        storage.write_text(join(task_uri, "responses", stem + ".jsonl"), dumps_lines(lines))
        mark_done(storage, task_uri, stem)
    return kinds


def outputs(cfg) -> dict[str, Any]:
    """The committed rows (in read order), quarantine rows, stats and part files."""
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    table, quarantine = layout.table("doc_concepts"), layout.quarantine("doc_concepts")
    stats = storage.read_json(join(table, STATS))
    stats.pop("wall_s")
    q_stats = storage.read_json(join(quarantine, STATS))
    q_stats.pop("wall_s")
    return {
        "rows": read_table(storage, table).to_dict("records"),
        "quarantine": read_table(storage, quarantine).to_dict("records"),
        "stats": stats,
        "q_stats": q_stats,
        "parts": storage.read_json(join(table, MANIFEST))["commit"]["files"],
        "q_parts": storage.read_json(join(quarantine, MANIFEST))["commit"]["files"],
    }


def part_sizes(cfg, output: str, parts: list[str]) -> list[int]:
    uri = Layout(cfg.storage.root_uri, SNAP).table(output)
    local = Storage(cfg.storage).local_path(uri)
    return [pq.ParquetFile(local / p).metadata.num_rows for p in parts]


def test_batched_output_equals_the_unbatched_one_and_the_expected_counts(make_config):
    small = make_config("concepts.collect_batch_rows=3")
    kinds = build_task(small, 23, shard_size=5)
    batched = collect.run(make_ctx(small))
    got = outputs(small)
    sizes = part_sizes(small, "doc_concepts", got["parts"])  # before the next run replaces them
    whole = make_config()  # the default batch holds every row of this task: one part each
    assert whole.concepts.collect_batch_rows > 100
    unbatched = collect.run(make_ctx(whole, attempt="2"))
    want = outputs(whole)

    assert want["parts"] == ["part-00000.parquet"] and want["q_parts"] == ["part-00000.parquet"]
    num_rows = sum(ROWS.get(k, 0) for k in kinds)
    assert len(got["parts"]) == math.ceil(num_rows / 3) > 5
    assert max(sizes) == 3 and sum(sizes) == num_rows
    assert len(got["q_parts"]) > 1
    for key in ("rows", "quarantine", "stats", "q_stats"):
        assert got[key] == want[key], key  # rows in the same order, not just the same set
    assert batched == unbatched

    # ... and both are what the job computes with everything in memory, and what we expect.
    reference = Collected()
    storage, layout = Storage(whole.storage), Layout(whole.storage.root_uri, SNAP)
    in_memory = collect.collect_concepts(load_responses(storage, layout, TASK), SNAP, reference)
    assert got["rows"] == reference.rows and got["quarantine"] == reference.quarantine
    assert in_memory == batched
    reasons = {r: sum(REASONS.get(k) == r for k in kinds) for r in REASONS.values()}
    n_ok = sum(k in ROWS for k in kinds)
    answered = sum(k not in ("error", "missing") for k in kinds)
    assert (batched.rows_in, batched.rows_out, batched.quarantined) == (23, n_ok, reasons)
    assert got["stats"]["rows_quarantined"] == len(got["quarantine"]) == sum(reasons.values())
    extra = batched.extra
    assert (extra["num_rows"], len(got["rows"])) == (num_rows, num_rows)
    varied_keys = {f"c:limit rule {i % 5}" for i, k in enumerate(kinds) if k == "varied"}
    concepts = {"c:discriminant", "c:vertex form", "c:squeeze theorem", "c:ratio test"}
    topics = {"t:quadratic equation", "t:factoring", "t:fraction", "t:limit", "t:series"}
    assert {r["topic_id"] for r in got["rows"]} == topics
    assert {r["concept_id"] for r in got["rows"]} - {None} == concepts | varied_keys
    assert (extra["num_topics"], extra["num_concepts"]) == (5, 4 + len(varied_keys))
    assert extra["parse_rate"] == round(n_ok / answered, 4)
    assert extra["unknown_responses"] == 1
    spent = [50 if k == "error" else 100 + i for i, k in enumerate(kinds) if k != "missing"]
    assert batched.tokens == {"prompt": sum(spent), "completion": 20 * answered}


def test_no_part_and_no_write_exceeds_the_batch(make_config, monkeypatch):
    cfg = make_config("concepts.collect_batch_rows=4")
    build_task(cfg, 30, shard_size=7)
    put, add_rows = jobs.tables._put_parquet, collect.CollectWriter.add_rows
    written: list[int] = []
    pending: list[int] = []

    def spy_put(storage, table, uri):
        written.append(table.num_rows)
        put(storage, table, uri)

    def spy_add_rows(self, rows):
        add_rows(self, rows)
        pending.append(self.rows.pending)

    monkeypatch.setattr(jobs.tables, "_put_parquet", spy_put)
    monkeypatch.setattr(collect.CollectWriter, "add_rows", spy_add_rows)
    stats = collect.run(make_ctx(cfg))
    num_rows, num_quarantined = stats.extra["num_rows"], stats.rows_quarantined
    assert max(written) == 4  # every part is one batch at most
    assert sum(written) == num_rows + num_quarantined
    assert len(written) == math.ceil(num_rows / 4) + math.ceil(num_quarantined / 4)
    assert len(pending) == stats.rows_out and max(pending) < 4  # under a batch between docs


def _peak_bytes(cfg, attempt: str = "1") -> tuple[int, StageStats]:
    tracemalloc.start()
    try:
        stats = collect.run(make_ctx(cfg, attempt))
        return tracemalloc.get_traced_memory()[1], stats
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_number_of_documents(make_config, tmp_path, monkeypatch):
    # Parsing is most of the time and none of the memory: the replies repeat (8 texts), so
    # each is parsed once. ConceptResult is frozen, so sharing one is safe.
    monkeypatch.setattr(collect, "parse_concepts", functools.cache(collect.parse_concepts))
    cfgs = {}
    for name, n in (("warm", 50), ("small", 200), ("large", 2000)):
        cfgs[name] = make_config("concepts.collect_batch_rows=64", root=tmp_path / name)
        build_task(cfgs[name], n, shard_size=50)
    _peak_bytes(cfgs["warm"])  # imports and caches, not measured
    small, s_stats = _peak_bytes(cfgs["small"])
    large, l_stats = _peak_bytes(cfgs["large"])
    whole_cfg = make_config("concepts.collect_batch_rows=1000000000", root=tmp_path / "large")
    whole, _ = _peak_bytes(whole_cfg, attempt="2")  # the same 2000 documents, one batch
    assert (s_stats.rows_in, l_stats.rows_in) == (200, 2000)
    assert l_stats.extra["num_rows"] > 2500
    # 10x the documents: all rows held would be ~10x; streamed, the peak is one shard and
    # one batch either way (generous bound, for any machine's allocator and Python).
    assert large < 2 * small, (small, large)
    # The measure sees rows held: the same documents in one batch peak far higher.
    assert whole > 3 * large, (large, whole)


def test_quarantine_spread_over_shards_and_batches_keeps_reasons_and_balance(make_config):
    cfg = make_config("concepts.collect_batch_rows=2")
    kinds = build_task(cfg, 20, shard_size=4)  # 5 shards
    stats = collect.run(make_ctx(cfg))
    got = outputs(cfg)
    quarantined = [(i, k) for i, k in enumerate(kinds) if k in REASONS]
    expected = sorted(
        (f"d{i:05d}", REASONS[k], f"shard-{i % 5:05d}-of-00005.jsonl") for i, k in quarantined
    )
    rows = got["quarantine"]
    assert sorted((r["doc_id"], r["reason"], r["source_file"]) for r in rows) == expected
    assert len({r["source_file"] for r in rows}) == 5  # every shard quarantines something
    assert len(got["q_parts"]) == math.ceil(len(expected) / 2)
    assert max(part_sizes(cfg, "quarantine/doc_concepts", got["q_parts"])) == 2
    raw = {r["doc_id"]: json.loads(r["raw"]) for r in rows}
    for i, kind in quarantined:
        body = raw[f"d{i:05d}"]
        assert body["custom_id"] == request_id(f"d{i:05d}")
        if kind == "junk":
            assert body["text"] == "No idea." and "parse_error" in body
        elif kind == "error":
            assert body["error"] == "engine died"
        else:
            assert "text" not in body  # no response: nothing but the request's id
    stats.check_balance()
    assert stats.rows_in == 20 == got["stats"]["rows_out"] + got["stats"]["rows_quarantined"]
    assert got["q_stats"]["rows_in"] == got["q_stats"]["rows_out"] == len(rows)
    assert got["q_stats"]["by_reason"] == stats.quarantined == got["stats"]["quarantined_by_reason"]


def test_a_failure_midway_commits_nothing_and_leaves_no_staging(make_config, monkeypatch):
    cfg = make_config("concepts.collect_batch_rows=2")
    build_task(cfg, 20, shard_size=4)
    real, calls = collect.parse_concepts, []

    def failing(text, keys):
        calls.append(text)
        if len(calls) == 9:
            raise RuntimeError("boom")
        return real(text, keys)

    monkeypatch.setattr(collect, "parse_concepts", failing)
    with pytest.raises(RuntimeError, match="boom"):
        collect.run(make_ctx(cfg))
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    for uri in (layout.table("doc_concepts"), layout.quarantine("doc_concepts")):
        assert storage.list(uri) == [], uri  # no _SUCCESS, no part, no _tmp left


def test_progress_is_logged_once_per_shard_with_the_requests_so_far(make_config, caplog):
    cfg = make_config()
    build_task(cfg, 12, shard_size=4)  # 3 shards
    with caplog.at_level("INFO", logger="jobs.llm.shards"):
        collect.run(make_ctx(cfg))
    lines = [r.getMessage() for r in caplog.records if "shards through" in r.getMessage()]
    assert [line.split(" (")[0] for line in lines] == [
        f"{TASK}: {n} of 3 shards through" for n in (1, 2, 3)
    ]
    assert [int(line.split("), ")[1].split()[0]) for line in lines] == [4, 8, 12]
