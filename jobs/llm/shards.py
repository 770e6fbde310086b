"""Request sets and response sets of one LLM task, shared by every LLM stage.

``publish_requests`` commits the request shards; it never deletes responses: they are
stored under a key of their request file's hash (and the model's), and a ``.done`` marker is
checked against the request file it answers, so a collector never pairs new requests with
answers to old ones, and an unchanged shard keeps its answers whatever happened to prepare.
``load_responses`` refuses to read a task whose shards are not all (validly) finished, and
returns each request with its response (or None).
``commit_collected`` writes a collector's table and quarantine.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.cli import JobContext, base_parser
from jobs.commit import MANIFEST, SUCCESS, StageOutput, StageStats, require_committed
from jobs.layout import Layout
from jobs.llm.batchfile import ResponseLine, parse_requests, write_request_shards
from jobs.llm.engine import ChatRequest
from jobs.llm.journal import ShardFiles, read_shard_lines, requests_hash, verified_done
from jobs.llm.results import IncompleteTaskError, require_task_done
from jobs.llm.tasks import generation_for
from jobs.storage import Storage, basename, join
from jobs.tables import schema, write_table

log = logging.getLogger(__name__)

REQUESTS = "requests"
RESPONSES = "responses"


def request_seed(base_seed: int, custom_id: str) -> int:
    """A per-request seed: fixed by the config seed and the id, not by shard placement."""
    digest = hashlib.sha256(f"{base_seed}:{custom_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF


def make_request(custom_id: str, messages: Sequence[dict[str, str]], gen: Any) -> ChatRequest:
    """One chat request with the run's sampling settings and a seed of its own."""
    return ChatRequest(
        custom_id=custom_id,
        messages=tuple(messages),
        temperature=gen.temperature,
        top_p=gen.top_p,
        max_tokens=gen.max_new_tokens,
        seed=request_seed(gen.seed, custom_id),
    )


def _fingerprint(storage: Storage, uris: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for uri in uris:
        digest.update(basename(uri).encode() + b"\x00")
        digest.update(storage.read_bytes(uri) + b"\x01")
    return digest.hexdigest()


def _committed_fingerprint(storage: Storage, requests_uri: str) -> str | None:
    if not storage.exists(join(requests_uri, SUCCESS)):
        return None
    try:
        return storage.read_json(join(requests_uri, MANIFEST)).get("fingerprint")
    except (ValueError, AttributeError):
        return None


def publish_requests(
    storage: Storage,
    task_uri: str,
    attempt: str,
    requests: Sequence[ChatRequest],
    num_shards: int,
    model: str,
    manifest: dict[str, Any],
    stats: StageStats,
) -> str:
    """Commit ``requests`` as ``num_shards`` shards under ``{task_uri}/requests``.

    Same requests → byte-identical shards, so every shard keeps its key and the responses
    already generated (finished shards are skipped by the runner). A shard whose requests
    changed gets a new key: its old responses are never read again, nor its old marker
    trusted. Nothing is deleted, so a prepare killed mid-commit (``_SUCCESS`` withdrawn)
    loses no response. Returns the request-set fingerprint.
    """
    requests_uri = join(task_uri, REQUESTS)
    out = StageOutput(storage, requests_uri, attempt, manifest.get("run_id"))
    tmp = out.begin()
    uris = write_request_shards(storage, tmp, requests, num_shards, model)
    fingerprint = _fingerprint(storage, uris)
    previous = _committed_fingerprint(storage, requests_uri)
    if previous != fingerprint:
        log.info(
            "request set %s -> %s: changed shards get new keys, unchanged ones keep theirs",
            previous,
            fingerprint,
        )
    body = {
        **manifest,
        "model": model,
        "num_requests": len(requests),
        "num_shards": num_shards,
        "shards": [basename(u) for u in uris],
        "fingerprint": fingerprint,
    }
    out.commit(body, stats)
    log.info("%d requests in %d shards under %s", len(requests), num_shards, requests_uri)
    return fingerprint


def commit_requests(
    ctx: JobContext,
    job: str,
    task: str,
    requests: Sequence[ChatRequest],
    stats: StageStats,
    inputs: list[str],
    prompt_version: str,
) -> str:
    """Commit one prepare job's requests for ``task`` with its manifest (a prepare job's end).

    The shard count is ``--num-shards`` when the caller gave one, else
    ``generation.num_shards`` (the DAG maps that many shards of every task, whatever engine
    answers them). The model recorded is the task's (``generation_for``). Returns the
    request-set fingerprint.
    """
    stats.check_balance()
    model = generation_for(ctx.cfg, task).model
    manifest = ctx.manifest(job, inputs, task=task, prompt_version=prompt_version)
    num_shards = getattr(ctx.args, "num_shards", None) or ctx.cfg.generation.num_shards
    storage = Storage(ctx.cfg.storage)
    return publish_requests(
        storage,
        ctx.layout.llm_task(task),
        ctx.attempt,
        requests,
        num_shards,
        model,
        manifest,
        stats,
    )


def prepare_parser(description: str) -> argparse.ArgumentParser:
    """The base job flags plus ``--num-shards`` (default: generation.num_shards)."""
    p = base_parser(description)
    p.add_argument("--num-shards", type=_positive, default=None, help="request shards to write")
    return p


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number


@dataclass
class ResponseSet:
    """Every request of a task with its response (None when the runner wrote none)."""

    manifest: dict[str, Any]
    pairs: list[tuple[ChatRequest, ResponseLine | None, str]] = field(default_factory=list)
    unknown_ids: int = 0
    models: dict[str, str] = field(default_factory=dict)  # custom_id -> model that answered

    def model_of(self, custom_id: str) -> str:
        """The model named in the response body, else the one the requests were written for."""
        return self.models.get(custom_id) or str(self.manifest.get("model", "unknown"))

    @property
    def tokens(self) -> dict[str, int]:
        """Tokens spent, repairs included."""
        lines = [r for _, r, _ in self.pairs if r is not None]
        return {
            "prompt": sum(r.spent_prompt_tokens for r in lines),
            "completion": sum(r.spent_completion_tokens for r in lines),
        }


def load_responses(storage: Storage, layout: Layout, task: str) -> ResponseSet:
    """Read the committed request set of ``task`` and its responses; all shards must be done.

    Raises :class:`jobs.llm.results.IncompleteTaskError` naming unfinished shards.
    """
    requests_uri = join(layout.llm_task(task), REQUESTS)
    require_committed(storage, requests_uri)
    result = ResponseSet(storage.read_json(join(requests_uri, MANIFEST)))
    for shard in require_task_done(storage, layout, task):
        files = ShardFiles.of(layout, task, shard)
        # The marker is checked against the very bytes parsed here, not an earlier read.
        data = storage.read_bytes(files.requests)
        marker = verified_done(storage, files, requests_hash(data))
        if marker is None:
            raise IncompleteTaskError(f"task {task!r}: {shard.stem} changed while being read")
        requests = parse_requests(data, files.requests)
        wanted = {r.custom_id for r in requests}
        by_id: dict[str, ResponseLine] = {}
        for obj in read_shard_lines(storage, files, marker):
            line = ResponseLine.from_json(obj)
            if line.custom_id not in wanted:
                result.unknown_ids += 1
                continue
            by_id[line.custom_id] = line  # merged: one line per id
            model = ((obj.get("response") or {}).get("body") or {}).get("model")
            if model:
                result.models[line.custom_id] = str(model)
        result.pairs.extend((r, by_id.get(r.custom_id), basename(files.requests)) for r in requests)
    if result.unknown_ids:
        log.warning("%s: ignored %d responses to unknown requests", task, result.unknown_ids)
    return result


def failure_reason(line: ResponseLine | None) -> str | None:
    """``missing_response`` / ``request_error`` for responses that carry no usable text."""
    if line is None:
        return "missing_response"
    if line.error:
        return "request_error"
    return None


def response_raw(request: ChatRequest, line: ResponseLine | None, **extra: Any) -> dict[str, Any]:
    """What a quarantine row keeps of a failed response: the raw text and its context."""
    raw: dict[str, Any] = {"custom_id": request.custom_id, **extra}
    if line is not None:
        raw.update(
            text=line.text,
            first_attempt=line.first_attempt,
            attempts=line.attempts,
            finish_reason=line.finish_reason,
            error=line.error,
        )
    return raw


@dataclass
class Collected:
    """The rows and accounting of one collect run (built purely; nothing written yet)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    stats: StageStats = field(default_factory=StageStats)


def commit_collected(
    storage: Storage,
    collected: Collected,
    table_uri: str,
    quarantine_uri: str,
    attempt: str,
    manifest: dict[str, Any],
) -> None:
    """Commit quarantine first, then the table, so a committed table implies its quarantine.

    ``table_uri``'s last segment names the schema (``questions`` or ``qa``).
    """
    n_quarantined = len(collected.quarantine)
    run_id = manifest.get("run_id")
    q_out = StageOutput(storage, quarantine_uri, attempt, run_id)
    write_table(storage, collected.quarantine, q_out.begin(), schema("quarantine"))
    q_stats = StageStats(
        n_quarantined, n_quarantined, extra={"by_reason": collected.stats.quarantined}
    )
    q_out.commit({**manifest, "table": "quarantine"}, q_stats)
    t_out = StageOutput(storage, table_uri, attempt, run_id)
    write_table(storage, collected.rows, t_out.begin(), schema(basename(table_uri)))
    t_out.commit({**manifest, "table": basename(table_uri)}, collected.stats)
