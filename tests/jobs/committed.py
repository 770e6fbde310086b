"""Test helpers: put a table in place the way a stage commits its output; mark a shard done."""

from __future__ import annotations

import hashlib
from typing import Any

from jobs.commit import StageOutput, StageStats
from jobs.storage import Storage, join
from jobs.tables import write_table


def commit_table(
    storage: Storage,
    uri: str,
    stats: StageStats | None = None,
    rows: list[dict[str, Any]] | None = None,
    table_schema: Any = None,
    files: dict[str, Any] | None = None,
    commit: bool = True,
) -> StageOutput:
    """Write ``rows`` (one part file) and JSON ``files`` under ``uri``; commit unless told not.

    ``stats`` None leaves ``_stats.json`` out, as a stage without row counts does.
    """
    out = StageOutput(storage, uri, "1")
    tmp = out.begin()
    if rows is not None:
        write_table(storage, rows, tmp, table_schema)
    for name, body in (files or {}).items():
        storage.write_json(join(tmp, name), body)
    if commit:
        out.commit({"job": "test"}, stats)
    return out


def mark_done(storage: Storage, task_uri: str, stem: str, **extra: Any) -> None:
    """Mark shard ``stem`` of the LLM task at ``task_uri`` done for its current request file,
    as the runner before part files did (the journal ``responses/{stem}.jsonl`` beside it)."""
    requests = storage.read_bytes(join(task_uri, "requests", stem + ".jsonl"))
    marker = {"requests_sha256": hashlib.sha256(requests).hexdigest(), **extra}
    storage.write_json(join(task_uri, "responses", stem + ".done"), marker)
