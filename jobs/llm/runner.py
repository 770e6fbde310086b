"""Run one LLM shard: requests JSONL in, per-batch response part files out, resumable.

Where the files live and how attempts merge: :mod:`jobs.llm.journal`. A run reuses every
successful response already stored under the shard key (requests + model fingerprint) and
generates the rest: requests never answered and requests that failed. Each batch is written
as one part file of this run's attempt, so a killed shard loses at most the batch in flight.
Batches are ``generation.batch_size`` requests, except for engines that declare
``batches_internally = True`` (vLLM schedules any number itself): they get the pending
requests of the shard in chunks of at most ``generation.chunk_size`` (plus one call per chunk
for its repairs), one part file each, so a preempted GPU pod loses at most one chunk.
The shard is marked done only when at most ``generation.max_error_share`` of its requests
failed; otherwise the run fails and its retry regenerates exactly the failed requests.
"generation" here is the task's engine settings (:func:`jobs.llm.tasks.generation_for`,
e.g. ``answers.engine``): the engine, the fingerprint and every knob above come from it.
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

from jobs.commit import SUCCESS, require_committed
from jobs.config import GenerationConfig, PipelineConfig
from jobs.errors import TransientError
from jobs.layout import Layout
from jobs.llm.batchfile import (
    ResponseLine,
    ShardSpec,
    dumps_lines,
    parse_requests,
    response_to_line,
)
from jobs.llm.engine import ChatRequest, ChatResponse, Engine
from jobs.llm.fingerprint import model_fingerprint
from jobs.llm.journal import (
    ShardFiles,
    list_attempts,
    merge_responses,
    new_attempt,
    part_uri,
    requests_hash,
    shard_key,
    verified_done,
)
from jobs.llm.prompt_data import clean_text
from jobs.llm.results import InconsistentShardsError, MissingRequestsError
from jobs.llm.tasks import LLMTask, generation_for, generation_key
from jobs.storage import Storage, basename, join

__all__ = ["ShardErrorShareExceeded", "ShardFiles", "derive_seed", "run_shard"]

log = logging.getLogger(__name__)


class ShardErrorShareExceeded(TransientError, RuntimeError):
    """More of a shard's requests failed than ``generation.max_error_share`` allows.

    Transient (exit 75): the retry regenerates only the failed requests.
    """


def derive_seed(base_seed: int, shard_index: int, batch_index: int) -> int:
    """A per-batch seed fixed by the config seed and the batch's place in its shard."""
    digest = hashlib.sha256(f"{base_seed}:{shard_index}:{batch_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _request_bytes(storage: Storage, uri: str) -> bytes:
    """The request file as read once: its hash and its requests both come from these bytes."""
    if not storage.exists(uri):
        raise MissingRequestsError(
            f"request shard {uri} does not exist (run the prepare job first)"
        )
    return storage.read_bytes(uri)


class StaleRequestsError(TransientError, RuntimeError):
    """The shard's request file changed (prepare replaced it) while this run worked on it.

    Transient (exit 75): a retry reads the new requests; nothing of this run is marked done.
    """


def _check_requests_unchanged(run: _ShardRun, doing: str) -> None:
    """Stop unless the committed request file is still the one this run read."""
    folder = run.files.requests.rsplit("/", 1)[0]
    if not run.storage.exists(join(folder, SUCCESS)) or (
        requests_hash(_request_bytes(run.storage, run.files.requests)) != run.requests_sha256
    ):
        raise StaleRequestsError(
            f"{run.files.requests} changed while {run.task.name} {run.shard.stem} ran "
            f"(prepare replaced it); not {doing}"
        )


def _is_parseable(task: LLMTask, text: str) -> bool:
    try:
        return bool(task.is_parseable(text))  # type: ignore[misc]
    except Exception as exc:  # a parser crash means "cannot parse", not a dead shard
        log.warning("task %s: parser raised %r; treating output as unparseable", task.name, exc)
        return False


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
        {"role": "assistant", "content": clean_text(bad_text)},  # model text is data too
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
    gen: GenerationConfig  # the task's engine settings (generation_for)
    key: str
    requests_sha256: str
    fingerprint: dict[str, Any]

    @property
    def key_prefix(self) -> str:
        return self.files.key_prefix(self.key)


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
    loading a model. A finished shard (``.done`` for the same shard key) is left untouched.
    Raises :class:`ShardErrorShareExceeded` when too many requests failed.
    """
    started = time.monotonic()
    files = ShardFiles.of(layout, task.name, shard)
    # Prepare jobs commit the request folder atomically; half-written shards are not trusted.
    require_committed(storage, join(layout.llm_task(task.name), "requests"))
    request_data = _request_bytes(storage, files.requests)
    requests_sha256 = requests_hash(request_data)
    # The settings the job builds the engine from (jobs.llm.run_shard), so the key names it.
    gen = generation_for(cfg, task.name)
    fingerprint = model_fingerprint(gen)
    key = shard_key(requests_sha256, fingerprint["sha256"])
    run = _ShardRun(storage, files, task, shard, cfg, gen, key, requests_sha256, fingerprint)
    marker = verified_done(storage, files, requests_sha256)
    if marker is not None and marker.get("shard_key") == key:
        log.info("%s %s: already done (%s), skipping", task.name, shard.stem, files.done)
        return marker
    if storage.exists(files.done):
        # Other requests or another model: the old marker must not vouch for this shard. A
        # zombie (its requests replaced since it read them) must not withdraw a valid one.
        _check_requests_unchanged(run, "withdrawing the stale marker")
        log.warning("%s: not for shard key %s; redoing", files.done, key)
        storage.delete(files.done)
        storage.delete(files.stats)
    defaults = {
        "temperature": gen.temperature,
        "top_p": gen.top_p,
        "max_tokens": gen.max_new_tokens,
    }
    requests = parse_requests(request_data, files.requests, defaults)
    stored = merge_responses(storage, run.key_prefix)
    stray = set(stored) - {r.custom_id for r in requests}
    if stray:
        raise InconsistentShardsError(
            f"{run.key_prefix}: {len(stray)} stored custom_ids not in {files.requests}"
        )
    # Never answered, or failed: a stored success is reused, a stored error is not.
    todo = {r.custom_id for r in requests if (stored.get(r.custom_id) or {"error": 1})["error"]}
    failed = sum(1 for cid in todo if cid in stored)
    log.info(
        "%s %s (key %s): %d requests, %d reused, %d to generate (%d failed before)",
        task.name, shard.stem, key, len(requests), len(requests) - len(todo), len(todo), failed,
    )  # fmt: skip
    # The replies this attempt already found parseable, so _finish need not parse them again.
    parseable: set[str] = set()
    model = _generate(run, engine, requests, todo, parseable) if todo else None
    return _finish(run, requests, len(todo), model, started, manifest or {}, parseable)


def _plan(run: _ShardRun, engine: Engine, requests: list[ChatRequest], todo: set[str]):
    """The engine calls of this attempt: one per batch, or per chunk if the engine batches.

    Batches are planned over the whole shard, so batch b always gets the same seed whether
    or not its batch-mates were answered before, and however the pending requests are
    chunked for an engine that batches internally.
    """
    size, batches = run.gen.batch_size, []
    for b, start in enumerate(range(0, len(requests), size)):
        seed = derive_seed(run.gen.seed, run.shard.index, b)
        batch = [
            r if r.seed is not None else dataclasses.replace(r, seed=seed)
            for r in requests[start : start + size]
            if r.custom_id in todo
        ]
        if batch:
            batches.append(batch)
    if getattr(engine, "batches_internally", False):
        pending = [r for batch in batches for r in batch]
        chunk = run.gen.chunk_size
        return [pending[i : i + chunk] for i in range(0, len(pending), chunk)]
    return batches


def _generate(
    run: _ShardRun,
    engine: Engine | Callable[[], Engine],
    requests: list[ChatRequest],
    todo: set[str],
    parseable: set[str],
) -> str:
    """Generate the ``todo`` requests into a new attempt, one part file per engine call.

    Adds to ``parseable`` the ids whose first reply passed the task's parse check.
    """
    from tqdm import tqdm

    if not hasattr(engine, "generate"):
        engine = engine()  # type: ignore[operator]
    attempt = new_attempt(run.storage, run.key_prefix)
    log.info("%s %s: writing attempt %s", run.task.name, run.shard.stem, attempt)
    t0, tokens = time.monotonic(), 0
    bar = tqdm(
        total=len(todo), desc=f"{run.task.name} {run.shard.stem}", unit="req", file=sys.stderr
    )
    for n, batch in enumerate(_plan(run, engine, requests, todo)):  # type: ignore[arg-type]
        results = _generate_batch(engine, run.task, batch)  # type: ignore[arg-type]
        if run.task.repairs:  # a reply without an error that was not repaired parsed
            parseable.update(f.custom_id for f, first in results if first is None and not f.error)
        lines = [
            response_to_line(final, engine.model_name, 2 if first else 1, first)  # type: ignore[union-attr]
            for final, first in results
        ]
        # One PUT per batch: a kill loses at most this batch, and no object is rewritten.
        run.storage.write_text(part_uri(attempt, n), dumps_lines(lines))
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
    parseable: set[str],
) -> dict[str, Any]:
    """Check every request is answered and few enough failed, then write stats and marker.

    ``parseable``: ids whose stored reply this process already parsed (not parsed again).
    """
    storage, files, task = run.storage, run.files, run.task
    merged = merge_responses(storage, run.key_prefix)
    if set(merged) != {r.custom_id for r in requests}:
        raise RuntimeError(f"{run.key_prefix}: responses do not answer each request exactly once")
    raw = [merged[r.custom_id] for r in requests]
    lines = [ResponseLine.from_json(obj) for obj in raw]
    ok = [x for x in lines if not x.error]
    errors, limit = len(lines) - len(ok), run.gen.max_error_share
    if errors > limit * len(lines):
        raise ShardErrorShareExceeded(
            f"{task.name} {run.shard.stem}: {errors} of {len(lines)} requests failed "
            f"({errors / len(lines):.1%}), over "
            f"{generation_key(run.cfg, task.name)}.max_error_share={limit}; the shard "
            f"is not marked done, and a retry regenerates only the {errors} failed requests"
        )
    stats = {
        "task": task.name,
        "shard": run.shard.stem,
        "requests": len(requests),
        "responses": len(lines),
        "errors": errors,
        "repaired": sum(1 for x in lines if x.attempts > 1),
        "unparseable": sum(
            1
            for x in ok
            if task.repairs and x.custom_id not in parseable and not _is_parseable(task, x.text)
        ),
        "finish_reasons": _count(x.finish_reason or "none" for x in lines),
        "tokens": {
            "prompt_tokens": sum(x.spent_prompt_tokens for x in lines),
            "completion_tokens": sum(x.spent_completion_tokens for x in lines),
        },
    }
    marker = {
        **manifest,
        **stats,
        "model": model or next(iter(_models(raw)), None),
        "generated_this_attempt": generated,
        "resumed_with": len(requests) - generated,
        "wall_s": round(time.monotonic() - started, 3),
        "requests_sha256": run.requests_sha256,
        "shard_key": run.key,
        "model_fingerprint": run.fingerprint,
        "responses_uri": run.key_prefix,
        "attempts": [basename(a) for a in list_attempts(storage, run.key_prefix)],
        "max_error_share": limit,
    }
    # A zombie whose requests prepare replaced meanwhile must not mark them done (readers
    # would refuse the marker anyway: they check it against the request file).
    _check_requests_unchanged(run, "marking the shard done")
    storage.write_json(files.stats, stats)
    storage.write_json(files.done, marker)  # last: its presence means the shard is complete
    log.info(
        "%s %s: done: %d responses (%d errors, %d repaired), tokens %s",
        task.name, run.shard.stem, len(lines), errors, stats["repaired"], stats["tokens"],
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
