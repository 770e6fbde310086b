"""Turn the finished ``concepts`` responses into the ``doc_concepts`` table.

``python -m jobs.concepts.collect --snapshot S`` needs every shard done. Each reply is
parsed (:func:`jobs.concepts.parse.parse_concepts`); a document gives one row per
(topic, key concept), and a topic without concepts one row with null concept columns.
Names become graph node ids through :func:`jobs.concepts.normalise.node_key`: topics
``t:<key>``, concepts ``c:<key>``, so a topic and a concept of the same name stay two nodes.
The model's strings are kept in ``topic_raw`` / ``concept_raw``. Documents without a usable
topic land in ``quarantine/doc_concepts`` with the raw reply and a reason (``unparseable``,
``request_error``, ``missing_response``); rows are counted per document.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import StageStats
from jobs.concepts.normalise import display_name, node_key
from jobs.concepts.parse import ConceptResult, parse_concepts
from jobs.concepts.prepare import TASK, doc_id_of
from jobs.concepts.prompts import EXAMPLE_KEYS
from jobs.concepts.tasks import reply_text
from jobs.llm.shards import (
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

STAGE = "doc_concepts"
TOPIC_PREFIX, CONCEPT_PREFIX = "t:", "c:"


def concept_rows(doc_id: str, result: ConceptResult, **meta: str) -> list[dict[str, Any]]:
    """Rows of ``doc_concepts`` for one parsed reply; names without a usable key are dropped."""
    base = {"doc_id": doc_id, "edu_level": result.edu_level, "subject": result.subject, **meta}
    rows: list[dict[str, Any]] = []
    for topic in result.topics:
        tkey = node_key(topic.name)
        if not tkey:
            continue
        head = {
            **base,
            "topic_id": TOPIC_PREFIX + tkey,
            "topic": display_name(topic.name),
            "topic_raw": topic.name,
        }
        seen: set[str] = set()
        for concept in topic.concepts:
            ckey = node_key(concept)
            if not ckey or ckey in seen:
                continue
            seen.add(ckey)
            rows.append(
                {
                    **head,
                    "concept_id": CONCEPT_PREFIX + ckey,
                    "concept": display_name(concept),
                    "concept_raw": concept,
                }
            )
        if not seen:
            rows.append({**head, "concept_id": None, "concept": None, "concept_raw": None})
    return rows


def collect_concepts(responses: ResponseSet, snapshot: str) -> Collected:
    """Parse every reply into concept rows or one quarantine row per document."""
    version = responses.manifest.get("prompt_version", "unknown")
    out = Collected()
    reasons: Counter = Counter()
    skipped: Counter = Counter()
    parsed_ok = answered = repaired = 0
    for request, line, shard in responses.pairs:
        doc_id = doc_id_of(request.custom_id)
        reason = failure_reason(line)
        result = None
        rows: list[dict[str, Any]] = []
        if reason is None:
            answered += 1
            repaired += line.attempts > 1
            result = parse_concepts(reply_text(line), EXAMPLE_KEYS)
            skipped.update(result.skipped)
            meta = {
                "model": responses.model_of(request.custom_id),
                "prompt_version": version,
                "snapshot": snapshot,
            }
            rows = concept_rows(doc_id, result, **meta) if result.status == "ok" else []
            if not rows:
                reason = "unparseable"
        if reason is not None:
            reasons[reason] += 1
            extra = {"parse_error": result.error, "skipped": result.skipped} if result else {}
            raw = response_raw(request, line, **extra)
            out.quarantine.append(quarantine_row(STAGE, reason, raw, snapshot, doc_id, shard))
            continue
        parsed_ok += 1
        out.rows.extend(rows)
    topics = {r["topic_id"] for r in out.rows}
    concepts = {r["concept_id"] for r in out.rows if r["concept_id"]}
    out.stats = StageStats(
        rows_in=len(responses.pairs),
        rows_out=parsed_ok,
        quarantined=dict(sorted(reasons.items())),
        tokens=responses.tokens,
        extra={
            "num_documents": parsed_ok,
            "num_rows": len(out.rows),
            "num_topics": len(topics),
            "num_concepts": len(concepts),
            "parse_rate": round(parsed_ok / answered, 4) if answered else 0.0,
            "num_repaired": repaired,
            "items_skipped": dict(sorted(skipped.items())),
            "unknown_responses": responses.unknown_ids,
        },
    )
    out.stats.check_balance()
    return out


def run(ctx: JobContext) -> StageStats:
    """Load responses → parse and normalise → commit ``doc_concepts`` and its quarantine."""
    storage = Storage(ctx.cfg.storage)
    task_uri = ctx.layout.llm_task(TASK)
    collected = collect_concepts(load_responses(storage, ctx.layout, TASK), ctx.snapshot)
    commit_collected(
        storage,
        collected,
        ctx.layout.table(STAGE),
        ctx.layout.quarantine(STAGE),
        ctx.attempt,
        ctx.manifest("concepts.collect", [join(task_uri, "requests"), join(task_uri, "responses")]),
    )
    s = collected.stats
    log.info(
        "%d documents: %d with concepts (%d topics, %d concepts), quarantined %s",
        s.rows_in, s.rows_out, s.extra["num_topics"], s.extra["num_concepts"], s.quarantined,
    )  # fmt: skip
    return s


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("Collect the extracted topics and key concepts (doc_concepts)")
    return run_job("concepts.collect", list(argv) if argv is not None else None, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
