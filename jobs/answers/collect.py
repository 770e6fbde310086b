r"""Turn the finished ``answers`` responses into the ``qa`` table.

``python -m jobs.answers.collect --snapshot S`` needs every shard ``.done``. A reply whose
last ``\boxed{}`` gives a final answer becomes a ``qa`` row; the rest go to
``quarantine/answers`` with the raw text and a reason: ``no_boxed_answer`` (also after the
repair follow-up), ``request_error``, ``missing_response`` or ``unknown_question`` (the
questions table changed after the requests were written). One sample per question, so
``agreement`` is null.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from jobs.answers.parse import parse_answer
from jobs.answers.prepare import REQUEST_PREFIX, TASK
from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import StageStats, require_committed
from jobs.llm.batchfile import ResponseLine
from jobs.llm.shards import (
    Collected,
    ResponseSet,
    commit_collected,
    failure_reason,
    load_responses,
    response_raw,
)
from jobs.storage import Storage, join
from jobs.tables import quarantine_row, read_table

log = logging.getLogger(__name__)

STAGE = "answers"
QUESTION_COLUMNS = ["question_id", "combo_id", "level", "question", "source_doc_ids"]


def answer_text(line: ResponseLine) -> str:
    """The full answer: a repaired reply is the first reply's reasoning plus the follow-up."""
    if line.attempts > 1 and line.first_attempt:
        return line.first_attempt.rstrip() + "\n\n" + line.text.strip()
    return line.text


def _qa_row(question: Mapping[str, Any], line: ResponseLine, final: str, **meta: str) -> dict:
    return {
        "question_id": question["question_id"],
        "combo_id": question["combo_id"],
        "level": int(question["level"]),
        "question": question["question"],
        "answer": answer_text(line),
        "final_answer": final,
        "num_tokens": line.spent_completion_tokens,  # both turns, when repaired
        "agreement": None,  # one sample per question: nothing to agree with
        "model": meta["model"],
        "prompt_version": meta["prompt_version"],
        "source_doc_ids": list(question["source_doc_ids"]),
        "snapshot": meta["snapshot"],
    }


def collect_answers(
    responses: ResponseSet, questions: Mapping[str, Mapping[str, Any]], snapshot: str
) -> Collected:
    """Extract the final answer of every response into qa rows or quarantine rows."""
    version = str(responses.manifest.get("prompt_version", "unknown"))
    out = Collected()
    reasons: Counter = Counter()
    answered = repaired = truncated = 0
    for request, line, shard in responses.pairs:
        qid = request.custom_id.removeprefix(REQUEST_PREFIX)
        question = questions.get(qid)
        reason, final, extra = failure_reason(line), None, {"question_id": qid}
        if reason is None:
            answered += 1
            repaired += line.attempts > 1
            truncated += line.finish_reason == "length"
            result = parse_answer(answer_text(line))
            final = result.final_answer
            if result.status != "ok":
                reason, extra["parse_error"] = "no_boxed_answer", result.error
            elif question is None:
                reason = "unknown_question"
        if reason is not None:
            reasons[reason] += 1
            docs = list(question["source_doc_ids"]) if question is not None else []
            raw = response_raw(request, line, **extra)
            row = quarantine_row(STAGE, reason, raw, snapshot, docs[0] if docs else None, shard)
            out.quarantine.append(row)
            continue
        model = responses.model_of(request.custom_id)
        out.rows.append(
            _qa_row(question, line, final, model=model, prompt_version=version, snapshot=snapshot)
        )
    out.stats = StageStats(
        rows_in=len(responses.pairs),
        rows_out=len(out.rows),
        quarantined=dict(sorted(reasons.items())),
        tokens=responses.tokens,
        extra={
            # Share of answered requests with a usable boxed answer (after repair).
            "parse_rate": round(1 - reasons["no_boxed_answer"] / answered, 4) if answered else 0.0,
            "num_repaired": repaired,
            "num_truncated": truncated,
            "unknown_responses": responses.unknown_ids,
        },
    )
    out.stats.check_balance()
    return out


def read_questions(storage: Storage, uri: str) -> dict[str, dict[str, Any]]:
    """The committed questions table, keyed by question_id."""
    require_committed(storage, uri)
    frame = read_table(storage, uri, columns=QUESTION_COLUMNS)
    return {row["question_id"]: row for row in frame.to_dict("records")}


def run(ctx: JobContext) -> StageStats:
    """Load responses and questions → extract answers → commit ``qa`` and its quarantine."""
    storage = Storage(ctx.cfg.storage)
    task_uri = ctx.layout.llm_task(TASK)
    questions_uri = ctx.layout.table("questions")
    responses = load_responses(storage, ctx.layout, TASK)
    collected = collect_answers(responses, read_questions(storage, questions_uri), ctx.snapshot)
    inputs = [questions_uri, join(task_uri, "requests"), join(task_uri, "responses")]
    commit_collected(
        storage,
        collected,
        ctx.layout.table("qa"),
        ctx.layout.quarantine(STAGE),
        ctx.attempt,
        ctx.manifest("answers.collect", inputs),
    )
    s = collected.stats
    log.info("%d questions: %d answered, quarantined %s", s.rows_in, s.rows_out, s.quarantined)
    return s


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("Collect answers from the finished LLM responses")
    return run_job("answers.collect", list(argv) if argv is not None else None, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
