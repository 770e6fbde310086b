"""Turn the finished ``questions_l1`` responses into the ``questions`` table.

``python -m jobs.questions.collect --snapshot S`` needs every shard ``.done``. Each response
is parsed; documents that yield questions go to ``questions``, the rest to
``quarantine/questions`` with the raw model text and a reason: ``not_suitable`` (the model
declined the document), ``unparseable`` (no usable block even after the repair prompt),
``request_error`` or ``missing_response``. Rows are counted per document (request).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import StageStats
from jobs.questions.parse import ParsedQuestion, parse_questions
from jobs.questions.prepare import COMBO_PREFIX, TASK
from jobs.questions.prompts import EXAMPLE_KEYS
from jobs.questions.shards import (
    Collected,
    ResponseSet,
    commit_collected,
    failure_reason,
    load_responses,
    response_raw,
)
from jobs.storage import Storage, join
from jobs.tables import quarantine_row

log = logging.getLogger(__name__)

STAGE = "questions"


def question_id(combo_id: str, index: int) -> str:
    """Stable id of the ``index``-th (1-based) question of a combination."""
    return hashlib.sha1(f"{combo_id}:{index}".encode()).hexdigest()


def question_rows(
    combo_id: str, doc_id: str, questions: Sequence[ParsedQuestion], **meta: str
) -> list[dict[str, Any]]:
    """Rows of the questions table for one Level-1 combination (one document)."""
    return [
        {
            "question_id": question_id(combo_id, index),
            "combo_id": combo_id,
            "level": 1,
            "question": q.question,
            "selected_concepts": [],  # Level-1 prompts pick no concepts
            "orig_tag": q.orig_tag,
            "edu_level": q.edu_level,
            "source_doc_ids": [doc_id],
            "model": meta["model"],
            "prompt_version": meta["prompt_version"],
            "snapshot": meta["snapshot"],
        }
        for index, q in enumerate(questions, start=1)
    ]


def collect_questions(responses: ResponseSet, snapshot: str) -> Collected:
    """Parse every response into question rows or one quarantine row per document."""
    version = responses.manifest.get("prompt_version", "unknown")
    out = Collected()
    reasons: Counter = Counter()
    skipped: Counter = Counter()
    parsed_ok = answered = repaired = truncated = 0
    for request, line, shard in responses.pairs:
        cid = request.custom_id
        doc_id = cid[len(COMBO_PREFIX) :] if cid.startswith(COMBO_PREFIX) else cid
        reason = failure_reason(line)
        result = None
        if reason is None:
            answered += 1
            repaired += line.attempts > 1
            truncated += line.finish_reason == "length"
            result = parse_questions(line.text, EXAMPLE_KEYS)
            skipped.update(result.skipped)
            if result.status == "ok":
                parsed_ok += 1
            else:
                reason = result.status
        if reason is not None:
            reasons[reason] += 1
            extra = {"parse_error": result.error, "skipped": result.skipped} if result else {}
            raw = response_raw(request, line, **extra)
            out.quarantine.append(quarantine_row(STAGE, reason, raw, snapshot, doc_id, shard))
            continue
        meta = {"model": responses.model_of(cid), "prompt_version": version, "snapshot": snapshot}
        out.rows.extend(question_rows(cid, doc_id, result.questions, **meta))
    out.stats = StageStats(
        rows_in=len(responses.pairs),
        rows_out=parsed_ok,
        quarantined=dict(sorted(reasons.items())),
        tokens=responses.tokens,
        extra={
            "num_questions": len(out.rows),
            # Share of answered requests that parsed into questions or a clean NOT SUITABLE.
            "parse_rate": round((answered - reasons["unparseable"]) / answered, 4)
            if answered
            else 0.0,
            "num_repaired": repaired,
            "num_truncated": truncated,
            "blocks_skipped": dict(sorted(skipped.items())),
            "unknown_responses": responses.unknown_ids,
        },
    )
    out.stats.check_balance()
    return out


def run(ctx: JobContext) -> StageStats:
    """Load responses → parse → commit ``questions`` and ``quarantine/questions``."""
    storage = Storage(ctx.cfg.storage)
    task_uri = ctx.layout.llm_task(TASK)
    responses = load_responses(storage, ctx.layout, TASK)
    collected = collect_questions(responses, ctx.snapshot)
    inputs = [join(task_uri, "requests"), join(task_uri, "responses")]
    commit_collected(
        storage,
        collected,
        ctx.layout.table(STAGE),
        ctx.layout.quarantine(STAGE),
        ctx.attempt,
        ctx.manifest("questions.collect", inputs),
    )
    s = collected.stats
    log.info(
        "%d documents: %d with questions (%d questions), quarantined %s",
        s.rows_in,
        s.rows_out,
        s.extra["num_questions"],
        s.quarantined,
    )
    return s


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("Collect Level-1 questions from the finished LLM responses")
    return run_job("questions.collect", list(argv) if argv is not None else None, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
