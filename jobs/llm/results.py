"""Reading a finished LLM task: which shards exist, whether all are done, responses, tokens.

Collect jobs use these instead of globbing the responses folder themselves, so "done" means
the same thing everywhere: every request shard has its ``.done`` marker.
"""

from __future__ import annotations

import re

from jobs.errors import PermanentError
from jobs.layout import Layout
from jobs.llm.batchfile import ResponseLine, ShardSpec
from jobs.llm.journal import ShardFiles, read_shard_lines
from jobs.storage import Storage, basename, join

_REQUEST_FILE = re.compile(r"^shard-(\d{5})-of-(\d{5})\.jsonl$")


class IncompleteTaskError(PermanentError, RuntimeError):
    """A collect job asked for a task whose shards are not all finished."""


def task_shards(storage: Storage, layout: Layout, task: str) -> list[ShardSpec]:
    """The request shards of ``task`` (from its ``requests/`` folder), in index order."""
    uri = join(layout.llm_task(task), "requests")
    shards = []
    for child in storage.list(uri):
        match = _REQUEST_FILE.match(basename(child))
        if match:
            shards.append(ShardSpec(int(match.group(1)), int(match.group(2))))
    if not shards:
        raise FileNotFoundError(f"task {task!r}: no request shards under {uri}")
    counts = {s.count for s in shards}
    if len(counts) != 1 or len(shards) != shards[0].count:
        raise ValueError(
            f"task {task!r}: request shards under {uri} are inconsistent "
            f"({len(shards)} files, counts {sorted(counts)})"
        )
    return sorted(shards, key=lambda s: s.index)


def require_task_done(storage: Storage, layout: Layout, task: str) -> list[ShardSpec]:
    """All shards of ``task``; raises naming the unfinished ones unless every one is done."""
    shards = task_shards(storage, layout, task)
    missing = [s.stem for s in shards if not storage.exists(ShardFiles.of(layout, task, s).done)]
    if missing:
        raise IncompleteTaskError(
            f"task {task!r}: {len(missing)} of {len(shards)} shards not done: {', '.join(missing)}"
        )
    return shards


def read_task_responses(storage: Storage, layout: Layout, task: str) -> dict[str, ResponseLine]:
    """Every response of a finished task, by custom_id."""
    out: dict[str, ResponseLine] = {}
    for shard in require_task_done(storage, layout, task):
        files = ShardFiles.of(layout, task, shard)
        for obj in read_shard_lines(storage, files):
            line = ResponseLine.from_json(obj)
            if line.custom_id in out:
                raise ValueError(
                    f"{files.responses}: custom_id {line.custom_id!r} answered in two shards"
                )
            out[line.custom_id] = line
    return out


def task_token_totals(storage: Storage, layout: Layout, task: str) -> dict[str, int]:
    """Tokens spent on ``task`` (repair attempts included), summed over finished shards."""
    totals = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0, "shards_done": 0}
    for shard in task_shards(storage, layout, task):
        stats_uri = ShardFiles.of(layout, task, shard).stats
        if not storage.exists(stats_uri):
            continue
        stats = storage.read_json(stats_uri)
        totals["prompt_tokens"] += int(stats["tokens"]["prompt_tokens"])
        totals["completion_tokens"] += int(stats["tokens"]["completion_tokens"])
        totals["requests"] += int(stats["requests"])
        totals["shards_done"] += 1
    return totals
