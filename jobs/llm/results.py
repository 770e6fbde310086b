"""Reading a finished LLM task: which shards exist, whether all are done, responses, tokens.

Collect jobs use these instead of globbing the responses folder themselves, so "done" means
the same thing everywhere: every request shard has a ``.done`` marker that vouches for the
request file as it is now (:func:`jobs.llm.journal.verified_done`).
"""

from __future__ import annotations

import re

from jobs.commit import committed_files
from jobs.errors import PermanentError
from jobs.layout import Layout
from jobs.llm.batchfile import ResponseLine, ShardSpec
from jobs.llm.journal import ShardFiles, ShardNotDoneError, read_shard_lines, verified_done
from jobs.storage import Storage, basename, join

_REQUEST_FILE = re.compile(r"^shard-(\d{5})-of-(\d{5})\.jsonl$")


class IncompleteTaskError(ShardNotDoneError):
    """A collect job asked for a task whose shards are not all finished (or stale)."""


class InconsistentShardsError(PermanentError, ValueError):
    """A task's shards do not fit together: shard counts, stray or twice-answered ids.

    Permanent: a rerun reads the same files; someone must look at how they got there.
    """


class MissingRequestsError(PermanentError, FileNotFoundError):
    """A request shard that must exist does not (its prepare job did not commit it)."""


def task_shards(storage: Storage, layout: Layout, task: str) -> list[ShardSpec]:
    """The request shards of ``task`` (those its ``requests/`` commit lists), in index order."""
    uri = join(layout.llm_task(task), "requests")
    shards = []
    for child in committed_files(storage, uri) or storage.list(uri):
        match = _REQUEST_FILE.match(basename(child))
        if match:
            shards.append(ShardSpec(int(match.group(1)), int(match.group(2))))
    if not shards:
        raise MissingRequestsError(f"task {task!r}: no request shards under {uri}")
    counts = {s.count for s in shards}
    if len(counts) != 1 or len(shards) != shards[0].count:
        raise InconsistentShardsError(
            f"task {task!r}: request shards under {uri} are inconsistent "
            f"({len(shards)} files, counts {sorted(counts)})"
        )
    return sorted(shards, key=lambda s: s.index)


def require_task_done(storage: Storage, layout: Layout, task: str) -> list[ShardSpec]:
    """All shards of ``task``; raises naming the unfinished ones unless every one is done."""
    shards = task_shards(storage, layout, task)
    missing = [
        s.stem for s in shards if verified_done(storage, ShardFiles.of(layout, task, s)) is None
    ]
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
                raise InconsistentShardsError(
                    f"{files.responses}: custom_id {line.custom_id!r} answered in two shards"
                )
            out[line.custom_id] = line
    return out


def task_token_totals(storage: Storage, layout: Layout, task: str) -> dict[str, int]:
    """Tokens spent on ``task`` (repair attempts included), summed over finished shards."""
    totals = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0, "shards_done": 0}
    for shard in task_shards(storage, layout, task):
        files = ShardFiles.of(layout, task, shard)
        if verified_done(storage, files) is None or not storage.exists(files.stats):
            continue  # the stats of a stale marker belong to other requests
        stats = storage.read_json(files.stats)
        totals["prompt_tokens"] += int(stats["tokens"]["prompt_tokens"])
        totals["completion_tokens"] += int(stats["tokens"]["completion_tokens"])
        totals["requests"] += int(stats["requests"])
        totals["shards_done"] += 1
    return totals
