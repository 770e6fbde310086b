"""Turn the finished ``concepts`` responses into the ``doc_concepts`` table.

``python -m jobs.concepts.collect --snapshot S`` needs every shard done. Each reply is
parsed (:func:`jobs.concepts.parse.parse_concepts`); a document gives one row per
(topic, key concept), and a topic without concepts one row with null concept columns.
Names become graph node ids through :func:`jobs.concepts.normalise.node_key`: topics
``t:<key>``, concepts ``c:<key>``, so a topic and a concept of the same name stay two nodes.
The model's strings are kept in ``topic_raw`` / ``concept_raw``. Documents without a usable
topic land in ``quarantine/doc_concepts`` with the raw reply and a reason (``unparseable``,
``request_error``, ``missing_response``); rows are counted per document.

The job streams (DESIGN.md section 9): responses are read one request shard at a time
(:func:`jobs.llm.shards.open_responses`) and rows go out in Parquet parts of
``concepts.collect_batch_rows`` rows (:class:`jobs.llm.shards.CollectWriter`), committed as
every collector commits. So memory is one shard's requests and replies plus one batch of
rows, whatever the number of documents (a shard's size is the task's requests over
``generation.num_shards``). The only state that grows over the run is the accounting: the
counters and the sets of distinct topic and concept ids behind ``num_topics`` and
``num_concepts``, which the vocabulary bounds, not the document count. The rows, their
order and the stats do not depend on the batch size; only the split into part files does.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import StageStats
from jobs.concepts.normalise import display_name, node_key
from jobs.concepts.parse import ConceptResult, parse_concepts
from jobs.concepts.prepare import TASK, doc_id_of
from jobs.concepts.prompts import EXAMPLE_KEYS
from jobs.concepts.tasks import reply_text
from jobs.llm.batchfile import ResponseLine
from jobs.llm.engine import ChatRequest
from jobs.llm.shards import CollectWriter, failure_reason, open_responses, response_raw
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


class Responses(Protocol):
    """What the collector reads: a :class:`jobs.llm.shards.ResponseStream` or ``ResponseSet``."""

    manifest: dict[str, Any]
    unknown_ids: int

    def __iter__(self) -> Iterator[tuple[ChatRequest, ResponseLine | None, str]]: ...

    def model_of(self, custom_id: str) -> str: ...

    @property
    def tokens(self) -> dict[str, int]: ...


class RowSink(Protocol):
    """Where rows go: a :class:`jobs.llm.shards.CollectWriter`, or ``Collected`` in memory."""

    def add_rows(self, rows: Iterable[Mapping[str, Any]]) -> None: ...

    def add_quarantine(self, row: Mapping[str, Any]) -> None: ...


@dataclass
class _Tally:
    """The run's accounting; the id sets are bounded by the vocabulary, not the documents."""

    documents: int = 0
    answered: int = 0
    parsed_ok: int = 0
    repaired: int = 0
    num_rows: int = 0
    reasons: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    topics: set[str] = field(default_factory=set)
    concepts: set[str] = field(default_factory=set)

    def count_document(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Count a document that gave ``rows``."""
        self.parsed_ok += 1
        self.num_rows += len(rows)
        self.topics.update(r["topic_id"] for r in rows)
        self.concepts.update(r["concept_id"] for r in rows if r["concept_id"])

    def stats(self, responses: Responses) -> StageStats:
        stats = StageStats(
            rows_in=self.documents,
            rows_out=self.parsed_ok,
            quarantined=dict(sorted(self.reasons.items())),
            tokens=dict(responses.tokens),
            extra={
                "num_documents": self.parsed_ok,
                "num_rows": self.num_rows,
                "num_topics": len(self.topics),
                "num_concepts": len(self.concepts),
                "parse_rate": round(self.parsed_ok / self.answered, 4) if self.answered else 0.0,
                "num_repaired": self.repaired,
                "items_skipped": dict(sorted(self.skipped.items())),
                "unknown_responses": responses.unknown_ids,
            },
        )
        stats.check_balance()
        return stats


def collect_concepts(responses: Responses, snapshot: str, sink: RowSink) -> StageStats:
    """Parse every reply into concept rows or one quarantine row per document, into ``sink``.

    Reads ``responses`` once, in order, and keeps no row: each document's rows go to ``sink``
    as soon as they are made. Returns the stats (checked: documents in = out + quarantined).
    """
    version = responses.manifest.get("prompt_version", "unknown")
    tally = _Tally()
    for request, line, shard in responses:
        tally.documents += 1
        doc_id = doc_id_of(request.custom_id)
        reason = failure_reason(line)
        result = None
        rows: list[dict[str, Any]] = []
        if reason is None:
            tally.answered += 1
            tally.repaired += line.attempts > 1
            result = parse_concepts(reply_text(line), EXAMPLE_KEYS)
            tally.skipped.update(result.skipped)
            meta = {
                "model": responses.model_of(request.custom_id),
                "prompt_version": version,
                "snapshot": snapshot,
            }
            rows = concept_rows(doc_id, result, **meta) if result.status == "ok" else []
            if not rows:
                reason = "unparseable"
        if reason is not None:
            tally.reasons[reason] += 1
            extra = {"parse_error": result.error, "skipped": result.skipped} if result else {}
            raw = response_raw(request, line, **extra)
            sink.add_quarantine(quarantine_row(STAGE, reason, raw, snapshot, doc_id, shard))
            continue
        tally.count_document(rows)
        sink.add_rows(rows)
    return tally.stats(responses)


def run(ctx: JobContext) -> StageStats:
    """Stream responses → parse and normalise → commit ``doc_concepts`` and its quarantine."""
    storage = Storage(ctx.cfg.storage)
    task_uri = ctx.layout.llm_task(TASK)
    responses = open_responses(storage, ctx.layout, TASK)  # refuses an unfinished task
    manifest = ctx.manifest(
        "concepts.collect", [join(task_uri, "requests"), join(task_uri, "responses")]
    )
    with CollectWriter(
        storage,
        ctx.layout.table(STAGE),
        ctx.layout.quarantine(STAGE),
        ctx.attempt,
        manifest.get("run_id"),
        ctx.cfg.concepts.collect_batch_rows,
    ) as out:
        s = collect_concepts(responses, ctx.snapshot, out)
        out.commit(manifest, s)
    log.info(
        "%d documents: %d with concepts (%d topics, %d concepts, %d rows in %d parts), "
        "quarantined %s",
        s.rows_in, s.rows_out, s.extra["num_topics"], s.extra["num_concepts"],
        s.extra["num_rows"], len(out.rows.files), s.quarantined,
    )  # fmt: skip
    return s


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("Collect the extracted topics and key concepts (doc_concepts)")
    return run_job("concepts.collect", list(argv) if argv is not None else None, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
