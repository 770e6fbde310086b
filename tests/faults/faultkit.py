"""Helpers of the fault suite: answers-stage inputs, job subprocesses, the commit checks."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from jobs.answers import prepare
from jobs.cli import JobContext
from jobs.commit import MANIFEST, STATS, SUCCESS, StageOutput
from jobs.layout import Layout
from jobs.llm.batchfile import dumps_lines, response_to_line
from jobs.llm.engine import ChatResponse
from jobs.storage import Storage, join
from jobs.tables import read_table, schema, write_table

REPO = Path(__file__).resolve().parents[2]
SNAP = "faults"
MODEL = "smollm2-135m-instruct"
QIDS = [f"q{i}" for i in range(1, 9)]
NO_BOX = {"q2"}  # answered without \boxed{}: quarantined no_boxed_answer
ERRORED = {"q5"}  # engine error: quarantined request_error


def qrow(qid: str) -> dict[str, Any]:
    n = int(qid[1:])
    return {
        "question_id": qid,
        "combo_id": f"l1-d{n}",
        "level": 1,
        "question": f"What is ${n}+{n}$?",
        "selected_concepts": [],
        "orig_tag": "newly_created",
        "edu_level": "college",
        "source_doc_ids": [f"d{n}"],
        "model": MODEL,
        "prompt_version": "p-l1/v1",
        "snapshot": SNAP,
    }


def ctx(cfg, attempt: str = "1", num_shards: int | None = None) -> JobContext:
    args = argparse.Namespace(num_shards=num_shards)
    return JobContext(cfg, SNAP, "faults", attempt, Layout(cfg.storage.root_uri, SNAP), args)


def commit_questions(cfg) -> None:
    """The answer jobs' committed inputs: ``questions`` and ``questions_clean``."""
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    for table in ("questions", "questions_clean"):
        out = StageOutput(storage, layout.table(table), "1")
        write_table(storage, [qrow(q) for q in QIDS], out.begin(), schema("questions"))
        out.commit({"job": "test"}, None)


def reply(cid: str) -> ChatResponse:
    qid = cid.removeprefix("ans-")
    n = int(qid[1:])
    if qid in ERRORED:
        return ChatResponse.failed(cid, "engine timeout", 50)
    if qid in NO_BOX:
        return ChatResponse(cid, f"It is {2 * n}.", 50, 8, "stop")
    return ChatResponse(cid, f"{n}+{n} = {2 * n}, so $\\boxed{{{2 * n}}}$.", 50, 12, "stop")


def request_ids(storage: Storage, uri: str) -> list[str]:
    return [json.loads(line)["custom_id"] for line in storage.read_text(uri).splitlines()]


def answered(cfg, num_shards: int = 2) -> None:
    """Committed questions, prepared answer requests and finished shards of replies."""
    commit_questions(cfg)
    prepare.run(ctx(cfg, num_shards=num_shards))
    storage = Storage(cfg.storage)
    task = Layout(cfg.storage.root_uri, SNAP).llm_task("answers")
    for i in range(num_shards):
        stem = f"shard-{i:05d}-of-{num_shards:05d}"
        ids = request_ids(storage, join(task, "requests", stem + ".jsonl"))
        lines = [response_to_line(reply(cid), MODEL, 1, None) for cid in ids]
        storage.write_text(join(task, "responses", stem + ".jsonl"), dumps_lines(lines))
        # A marker is checked against its request file (jobs/llm/journal.py verified_done).
        sha = hashlib.sha256(storage.read_bytes(join(task, "requests", stem + ".jsonl")))
        storage.write_json(
            join(task, "responses", stem + ".done"), {"requests_sha256": sha.hexdigest()}
        )


def run_process(
    module: str,
    root_uri: str,
    *sets: str,
    attempt: str = "1",
    fault: str | None = None,
    extra: list[str] | None = None,
) -> subprocess.CompletedProcess:
    """``python -m module`` on the fault snapshot, as a task runner starts it."""
    env = {k: v for k, v in os.environ.items() if k != "SYNTHLLM_FAULT"}
    if fault:
        env["SYNTHLLM_FAULT"] = fault
    argv = [sys.executable, "-m", module, "--snapshot", SNAP, "--attempt", attempt]
    argv += extra or []
    for item in (f'storage.root_uri="{root_uri}"', *sets):
        argv += ["--set", item]
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def committed_rows(
    storage: Storage, uri: str, id_column: str, tmp_ok: bool = False
) -> list[dict[str, Any]]:
    """Check ``uri`` is committed, balanced, free of duplicates and (unless ``tmp_ok``) of
    ``_tmp`` leftovers; its rows sorted by id. Raises AssertionError naming what is wrong.
    """
    assert storage.exists(join(uri, SUCCESS)), f"{uri}: no {SUCCESS}"
    assert storage.exists(join(uri, MANIFEST)), f"{uri}: no {MANIFEST}"
    assert tmp_ok or not storage.exists(join(uri, "_tmp")), f"{uri}: _tmp left behind"
    stats = storage.read_json(join(uri, STATS))
    assert stats["rows_in"] == stats["rows_out"] + stats["rows_quarantined"], stats
    rows = read_table(storage, uri).to_dict("records")
    ids = [r[id_column] for r in rows]
    assert len(ids) == len(set(ids)), f"{uri}: duplicate {id_column}"
    return sorted(rows, key=lambda r: str(r[id_column]))


def comparable(rows: list[dict[str, Any]]) -> str:
    """Rows as one canonical JSON string (numpy values as text), for equality checks."""
    return json.dumps(
        rows, sort_keys=True, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)
    )
