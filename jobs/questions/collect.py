"""Turn the finished question responses of all three levels into the ``questions`` table.

``python -m jobs.questions.collect --snapshot S`` needs every shard of ``questions_l1``,
``questions_l2`` and ``questions_l3`` done. Each response is parsed with its level's parser;
combinations that yield questions go to ``questions``, the rest to ``quarantine/questions``
with the raw model text and a reason: ``not_suitable`` (the model declined), ``unparseable``
(no usable block even after the repair prompt), ``request_error`` or ``missing_response``.
Rows are counted per combination (request). Every question row carries its ``level``,
``combo_id``, ``selected_concepts`` and ``source_doc_ids`` (from ``combinations``), so a
question traces back to the corpus documents it was grounded in.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import StageStats, require_committed
from jobs.llm.shards import (
    Collected,
    ResponseSet,
    commit_collected,
    failure_reason,
    load_responses,
    response_raw,
)
from jobs.questions.parse import ParsedQuestion, ParseResult
from jobs.questions.prepare import LEVELS, TASKS
from jobs.questions.tasks import parse_for_level
from jobs.storage import Storage, join
from jobs.tables import quarantine_row, read_table

log = logging.getLogger(__name__)

STAGE = "questions"
# P-K levels -> the questions table's edu_level vocabulary ("other" has no counterpart).
EDU_LEVELS = {
    "primary_school": "elementary",
    "middle_school": "middle_school",
    "high_school": "high_school",
    "college": "college",
    "graduate_school": "grad_school",
    "competition": "competition",
}


def question_id(combo_id: str, index: int) -> str:
    """Stable id of the ``index``-th (1-based) question of a combination."""
    return hashlib.sha1(f"{combo_id}:{index}".encode()).hexdigest()


@dataclass(frozen=True)
class Combo:
    """What the collector needs to know of one combination."""

    level: int
    source_doc_ids: tuple[str, ...]
    edu_level: str | None = None  # from concept extraction (Level-2), else None


def question_rows(
    combo_id: str, combo: Combo, questions: Sequence[ParsedQuestion], **meta: str
) -> list[dict[str, Any]]:
    """Rows of the questions table for one combination."""
    return [
        {
            "question_id": question_id(combo_id, index),
            "combo_id": combo_id,
            "level": combo.level,
            "question": q.question,
            "selected_concepts": list(q.selected_concepts),
            # Levels 2 and 3 only create questions; their level comes from the document.
            "orig_tag": q.orig_tag or "newly_created",
            "edu_level": q.edu_level or combo.edu_level,
            "source_doc_ids": list(combo.source_doc_ids),
            "model": meta["model"],
            "prompt_version": meta["prompt_version"],
            "snapshot": meta["snapshot"],
        }
        for index, q in enumerate(questions, start=1)
    ]


@dataclass
class _Tally:
    reasons: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    parsed_ok: int = 0
    answered: int = 0
    repaired: int = 0
    truncated: int = 0
    questions: int = 0


def collect_level(
    level: int,
    responses: ResponseSet,
    combos: Mapping[str, Combo],
    snapshot: str,
    out: Collected,
) -> _Tally:
    """Parse one level's responses into ``out``; returns that level's tally."""
    version = responses.manifest.get("prompt_version", "unknown")
    tally = _Tally()
    for request, line, shard in responses.pairs:
        cid = request.custom_id
        combo = combos.get(cid)
        reason = failure_reason(line) if combo is not None else "unknown_combination"
        result: ParseResult | None = None
        if reason is None:
            tally.answered += 1
            tally.repaired += line.attempts > 1
            tally.truncated += line.finish_reason == "length"
            result = parse_for_level(level, line.text)
            tally.skipped.update(result.skipped)
            if result.status == "ok":
                tally.parsed_ok += 1
            else:
                reason = result.status
        doc_id = combo.source_doc_ids[0] if combo and combo.source_doc_ids else None
        if reason is not None:
            tally.reasons[reason] += 1
            extra = {"parse_error": result.error, "skipped": result.skipped} if result else {}
            raw = response_raw(request, line, level=level, **extra)
            out.quarantine.append(quarantine_row(STAGE, reason, raw, snapshot, doc_id, shard))
            continue
        meta = {"model": responses.model_of(cid), "prompt_version": version, "snapshot": snapshot}
        rows = question_rows(cid, combo, result.questions, **meta)
        tally.questions += len(rows)
        out.rows.extend(rows)
    return tally


def collect_questions(
    responses: Mapping[int, ResponseSet], combos: Mapping[str, Combo], snapshot: str
) -> Collected:
    """Parse every level's responses into question rows or one quarantine row per combo."""
    out = Collected()
    tallies = {lv: collect_level(lv, responses[lv], combos, snapshot, out) for lv in responses}
    reasons = sum((t.reasons for t in tallies.values()), Counter())
    answered = sum(t.answered for t in tallies.values())
    tokens: Counter = Counter()
    for r in responses.values():
        tokens.update(r.tokens)
    out.stats = StageStats(
        rows_in=sum(len(r.pairs) for r in responses.values()),
        rows_out=sum(t.parsed_ok for t in tallies.values()),
        quarantined=dict(sorted(reasons.items())),
        tokens=dict(tokens),
        extra={
            "num_questions": len(out.rows),
            # Share of answered requests that parsed into questions or a clean NOT SUITABLE.
            "parse_rate": round((answered - reasons["unparseable"]) / answered, 4)
            if answered
            else 0.0,
            "num_repaired": sum(t.repaired for t in tallies.values()),
            "num_truncated": sum(t.truncated for t in tallies.values()),
            "blocks_skipped": dict(
                sorted(sum((t.skipped for t in tallies.values()), Counter()).items())
            ),
            "unknown_responses": sum(r.unknown_ids for r in responses.values()),
            "by_level": {
                str(lv): {
                    "combinations": len(responses[lv].pairs),
                    "with_questions": t.parsed_ok,
                    "questions": t.questions,
                    "quarantined": dict(sorted(t.reasons.items())),
                }
                for lv, t in tallies.items()
            },
        },
    )
    out.stats.check_balance()
    return out


def read_combos(storage: Storage, ctx: JobContext) -> dict[str, Combo]:
    """combo_id -> level, source documents and (Level-2) the document's education level."""
    combos_uri, concepts_uri = ctx.layout.table("combinations"), ctx.layout.table("doc_concepts")
    require_committed(storage, combos_uri)
    combos = read_table(storage, combos_uri, columns=["combo_id", "level", "ref_doc_ids"])
    levels: dict[str, str] = {}
    if storage.exists(join(concepts_uri, "_SUCCESS")):
        concepts = read_table(storage, concepts_uri, columns=["doc_id", "edu_level"])
        for doc, lvl in zip(concepts["doc_id"], concepts["edu_level"], strict=True):
            if isinstance(lvl, str) and lvl in EDU_LEVELS:
                levels.setdefault(str(doc), EDU_LEVELS[lvl])
    out = {}
    for cid, level, refs in zip(
        combos["combo_id"], combos["level"], combos["ref_doc_ids"], strict=True
    ):
        docs = tuple(str(d) for d in refs)
        edu = levels.get(docs[0]) if int(level) == 2 and docs else None
        out[str(cid)] = Combo(int(level), docs, edu)
    return out


def run(ctx: JobContext) -> StageStats:
    """Load responses of every level → parse → commit ``questions`` and its quarantine."""
    storage = Storage(ctx.cfg.storage)
    responses = {lv: load_responses(storage, ctx.layout, TASKS[lv]) for lv in LEVELS}
    collected = collect_questions(responses, read_combos(storage, ctx), ctx.snapshot)
    inputs = [ctx.layout.table("combinations")]
    for lv in LEVELS:
        task_uri = ctx.layout.llm_task(TASKS[lv])
        inputs += [join(task_uri, "requests"), join(task_uri, "responses")]
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
        "%d combinations: %d with questions (%d questions), quarantined %s; by level %s",
        s.rows_in,
        s.rows_out,
        s.extra["num_questions"],
        s.quarantined,
        {lv: v["questions"] for lv, v in s.extra["by_level"].items()},
    )
    return s


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("Collect the Level-1, -2 and -3 questions from the LLM responses")
    return run_job("questions.collect", list(argv) if argv is not None else None, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
