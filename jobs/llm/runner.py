"""Run one LLM shard: requests JSONL in, an append-only response journal out, resumable.

Files of shard ``i`` of task ``T`` (DESIGN.md sections 2 and 5)::

    {run}/llm/T/requests/shard-i-of-N.jsonl        written by the stage's prepare job
    {run}/llm/T/responses/shard-i-of-N.jsonl       journal: one line per custom_id, appended
    {run}/llm/T/responses/shard-i-of-N.meta.json   fingerprint of the requests the journal answers
    {run}/llm/T/responses/shard-i-of-N.stats.json  token accounting (written when complete)
    {run}/llm/T/responses/shard-i-of-N.done        completion marker, written last

Each batch's lines are appended and flushed in one write, so a killed shard loses at most the
batch in flight; the rerun keeps every complete line byte for byte and generates the rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jobs.commit import require_committed
from jobs.config import PipelineConfig
from jobs.layout import Layout
from jobs.llm.batchfile import (
    ResponseLine,
    ShardSpec,
    dumps_lines,
    parse_journal,
    read_requests,
    response_to_line,
)
from jobs.llm.engine import ChatRequest, ChatResponse, Engine
from jobs.llm.tasks import LLMTask
from jobs.storage import Storage, join

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardFiles:
    """URIs of one shard's files."""

    requests: str
    responses: str
    meta: str
    stats: str
    done: str

    @classmethod
    def of(cls, layout: Layout, task: str, shard: ShardSpec) -> ShardFiles:
        base = layout.llm_task(task)
        out = join(base, "responses", shard.stem)
        return cls(
            requests=join(base, "requests", shard.stem + ".jsonl"),
            responses=out + ".jsonl",
            meta=out + ".meta.json",
            stats=out + ".stats.json",
            done=out + ".done",
        )


def derive_seed(base_seed: int, shard_index: int, batch_index: int) -> int:
    """A per-batch seed fixed by the config seed and the batch's place in its shard."""
    digest = hashlib.sha256(f"{base_seed}:{shard_index}:{batch_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _fingerprint(storage: Storage, uri: str) -> str:
    if not storage.exists(uri):
        raise FileNotFoundError(f"request shard {uri} does not exist (run the prepare job first)")
    return hashlib.sha256(storage.read_bytes(uri)).hexdigest()


def _is_parseable(task: LLMTask, text: str) -> bool:
    try:
        return bool(task.is_parseable(text))  # type: ignore[misc]
    except Exception as exc:  # a parser crash means "cannot parse", not a dead shard
        log.warning("task %s: parser raised %r; treating output as unparseable", task.name, exc)
        return False


def _discard(storage: Storage, files: ShardFiles, why: str) -> None:
    log.warning("%s: %s; discarding the old responses and starting over", files.responses, why)
    for uri in (files.responses, files.stats, files.done, files.meta):
        storage.delete(uri)


def _load_journal(storage: Storage, files: ShardFiles, fingerprint: str) -> dict[str, Any]:
    """Complete journal lines by custom_id; drops a torn tail and stale journals."""
    if (
        storage.exists(files.meta)
        and storage.read_json(files.meta).get("requests_sha256") != fingerprint
    ):
        _discard(storage, files, f"answers other requests than {files.requests}")
    storage.write_json(files.meta, {"requests_sha256": fingerprint, "requests_uri": files.requests})
    if not storage.exists(files.responses):
        return {}
    data = storage.read_bytes(files.responses)
    journal = parse_journal(data, files.responses)
    if journal.torn:
        log.warning(
            "%s: dropping a torn last line (%d bytes)",
            files.responses,
            len(data) - journal.good_bytes,
        )
        storage.write_bytes(files.responses, data[: journal.good_bytes])
    done: dict[str, Any] = {}
    for line in journal.lines:
        if line["custom_id"] in done:
            raise ValueError(f"{files.responses}: duplicate custom_id {line['custom_id']!r}")
        done[line["custom_id"]] = line
    return done


def _generate_batch(
    engine: Engine, task: LLMTask, batch: list[ChatRequest]
) -> list[tuple[ChatResponse, ChatResponse | None]]:
    """Generate one batch and repair unparseable answers once: (final, first_attempt or None)."""
    firsts = _checked(engine, batch)
    bad = [
        i
        for i, r in enumerate(firsts)
        if task.repairs and not r.error and not _is_parseable(task, r.text)
    ]
    finals: list[ChatResponse | None] = [None] * len(batch)
    if bad:
        repairs = [
            dataclasses.replace(
                batch[i],
                messages=_repair_conversation(task, batch[i], firsts[i].text),
            )
            for i in bad
        ]
        for i, resp in zip(bad, _checked(engine, repairs), strict=True):
            finals[i] = resp
    return [(f, firsts[i]) if f is not None else (firsts[i], None) for i, f in enumerate(finals)]


def _repair_conversation(task: LLMTask, req: ChatRequest, bad_text: str) -> tuple[dict, ...]:
    """The first conversation, the model's bad answer, and the repair request.

    A prefilled first answer already holds its prefill, so that turn is replaced, not kept.
    """
    history = req.messages[:-1] if req.prefill is not None else req.messages
    turns = [
        *history,
        {"role": "assistant", "content": bad_text},
        {"role": "user", "content": task.repair_prompt(bad_text)},  # type: ignore[misc]
    ]
    if task.repair_prefill:
        turns.append({"role": "assistant", "content": task.repair_prefill})
    return tuple(turns)


def _checked(engine: Engine, batch: Sequence[ChatRequest]) -> list[ChatResponse]:
    out = engine.generate(batch)
    if [r.custom_id for r in out] != [r.custom_id for r in batch]:
        raise RuntimeError(f"engine {engine.model_name} broke the contract: responses out of order")
    return out


@dataclass(frozen=True)
class _ShardRun:
    """What every step of one shard run needs."""

    storage: Storage
    files: ShardFiles
    task: LLMTask
    shard: ShardSpec
    cfg: PipelineConfig


def run_shard(
    storage: Storage,
    layout: Layout,
    task: LLMTask,
    shard: ShardSpec,
    engine: Engine | Callable[[], Engine],
    cfg: PipelineConfig,
    manifest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Bring one shard to completion and return its ``.done`` marker body.

    ``engine`` may be a zero-argument factory, so a finished shard is skipped without
    loading a model. A finished shard (``.done`` for the same requests) is left untouched.
    """
    started = time.monotonic()
    run = _ShardRun(storage, ShardFiles.of(layout, task.name, shard), task, shard, cfg)
    files = run.files
    # Prepare jobs commit the request folder atomically; half-written shards are not trusted.
    require_committed(storage, join(layout.llm_task(task.name), "requests"))
    fingerprint = _fingerprint(storage, files.requests)
    if storage.exists(files.done):
        marker = storage.read_json(files.done)
        if marker.get("requests_sha256") == fingerprint:
            log.info("%s %s: already done (%s), skipping", task.name, shard.stem, files.done)
            return marker
        _discard(storage, files, "the .done marker belongs to other requests")
    gen = cfg.generation
    defaults = {
        "temperature": gen.temperature,
        "top_p": gen.top_p,
        "max_tokens": gen.max_new_tokens,
    }
    requests = read_requests(storage, files.requests, defaults)
    journal = _load_journal(storage, files, fingerprint)
    stray = set(journal) - {r.custom_id for r in requests}
    if stray:
        raise ValueError(f"{files.responses}: {len(stray)} custom_ids not in {files.requests}")
    todo = [r for r in requests if r.custom_id not in journal]
    log.info(
        "%s %s: %d requests, %d already answered, %d to generate",
        task.name, shard.stem, len(requests), len(journal), len(todo),
    )  # fmt: skip
    model = _generate_missing(run, engine, requests, set(journal), len(todo)) if todo else None
    return _finish(run, requests, len(todo), model, started, manifest or {})


def _generate_missing(
    run: _ShardRun,
    engine: Engine | Callable[[], Engine],
    requests: list[ChatRequest],
    answered: set[str],
    todo: int,
) -> str:
    """Generate, batch by batch, every request without a journal line; returns the model."""
    from tqdm import tqdm

    if not hasattr(engine, "generate"):
        engine = engine()  # type: ignore[operator]
    size, t0, tokens = run.cfg.generation.batch_size, time.monotonic(), 0
    bar = tqdm(total=todo, desc=f"{run.task.name} {run.shard.stem}", unit="req", file=sys.stderr)
    # Batches are planned over the whole shard, so batch b always gets the same seed.
    for b, start in enumerate(range(0, len(requests), size)):
        seed = derive_seed(run.cfg.generation.seed, run.shard.index, b)
        batch = [
            r if r.seed is not None else dataclasses.replace(r, seed=seed)
            for r in requests[start : start + size]
            if r.custom_id not in answered
        ]
        if not batch:
            continue
        results = _generate_batch(engine, run.task, batch)  # type: ignore[arg-type]
        lines = [
            response_to_line(final, engine.model_name, 2 if first else 1, first)  # type: ignore[union-attr]
            for final, first in results
        ]
        # One write per batch: a kill loses at most this batch, never half of a line's batch-mates.
        run.storage.append_text(run.files.responses, dumps_lines(lines))
        tokens += sum(f.completion_tokens + (p.completion_tokens if p else 0) for f, p in results)
        bar.update(len(batch))
        bar.set_postfix(tok_s=f"{tokens / max(time.monotonic() - t0, 1e-9):.1f}")
    bar.close()
    return engine.model_name  # type: ignore[union-attr]


def _finish(
    run: _ShardRun,
    requests: list[ChatRequest],
    generated: int,
    model: str | None,
    started: float,
    manifest: dict[str, Any],
) -> dict[str, Any]:
    """Check the journal answers every request once, then write stats and the marker."""
    storage, files, task = run.storage, run.files, run.task
    data = storage.read_bytes(files.responses) if storage.exists(files.responses) else b""
    journal = parse_journal(data, files.responses)
    lines = [ResponseLine.from_json(obj) for obj in journal.lines]
    ids = [line.custom_id for line in lines]
    if len(ids) != len(set(ids)) or set(ids) != {r.custom_id for r in requests}:
        raise RuntimeError(f"{files.responses}: journal does not answer each request exactly once")
    ok = [x for x in lines if not x.error]
    stats = {
        "task": task.name,
        "shard": run.shard.stem,
        "requests": len(requests),
        "responses": len(lines),
        "errors": len(lines) - len(ok),
        "repaired": sum(1 for x in lines if x.attempts > 1),
        "unparseable": sum(1 for x in ok if task.repairs and not _is_parseable(task, x.text)),
        "finish_reasons": _count(x.finish_reason or "none" for x in lines),
        "tokens": {
            "prompt_tokens": sum(x.spent_prompt_tokens for x in lines),
            "completion_tokens": sum(x.spent_completion_tokens for x in lines),
        },
    }
    marker = {
        **manifest,
        **stats,
        "model": model or next(iter(_models(journal.lines)), None),
        "generated_this_attempt": generated,
        "resumed_with": len(requests) - generated,
        "wall_s": round(time.monotonic() - started, 3),
        "requests_sha256": storage.read_json(files.meta)["requests_sha256"],
    }
    storage.write_json(files.stats, stats)
    storage.write_json(files.done, marker)  # last: its presence means the shard is complete
    log.info(
        "%s %s: done: %d responses (%d errors, %d repaired), tokens %s",
        task.name, run.shard.stem, len(lines), stats["errors"], stats["repaired"], stats["tokens"],
    )  # fmt: skip
    return marker


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def _models(lines: list[dict[str, Any]]) -> list[str]:
    return sorted(
        {((x.get("response") or {}).get("body") or {}).get("model") for x in lines} - {None}
    )
