r"""Turn the finished ``answers`` responses into the ``qa`` table, checking answers by agreement.

``python -m jobs.answers.collect --snapshot S`` needs every shard ``.done``. The k sampled
replies of a question (k = 1 in the local profile) are grouped; each usable reply's last
``\boxed{}`` gives a final answer, the final answers are clustered by math_verify
equivalence (``answers.verify_timeout_s`` per comparison; an overrun counts as unequal) and
the majority cluster's first sample becomes the ``qa`` row, with ``agreement`` (majority size /
k, failed samples counted in k: see :mod:`jobs.answers.agreement`) and ``num_samples`` (k).

One outcome per question, so rows in = rows out + quarantined counts questions. Quarantine
reasons (``quarantine/answers``, with the raw text):

- ``low_agreement``: agreement below ``answers.min_agreement`` (the record keeps the
  question id, every sample's final answer and answer text, and the agreement);
- no sample with a usable answer: the most common sample failure (ties: the first sample's)
  of ``no_boxed_answer`` (also after the repair follow-up), ``request_error`` or
  ``missing_response``; the record is the first sample's raw response plus every sample's
  reason;
- ``unknown_question``: the questions table changed after the requests were written.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.answers.agreement import (
    Agreement,
    Equivalence,
    agreement_by_level,
    exact_match,
    score_agreement,
)
from jobs.answers.parse import parse_answer
from jobs.answers.prepare import TASK, parse_request_id
from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import LevelFunnel, StageStats, require_committed
from jobs.evaluation.verify import Verifier, verifier_name
from jobs.llm.batchfile import ResponseLine
from jobs.llm.engine import ChatRequest
from jobs.llm.shards import (
    Collected,
    ResponseSet,
    commit_collected,
    failure_reason,
    load_responses,
    response_raw,
)
from jobs.storage import Storage, join
from jobs.tables import MAX_RAW_CHARS, quarantine_row, read_table

log = logging.getLogger(__name__)

STAGE = "answers"
QUESTION_COLUMNS = ["question_id", "combo_id", "level", "question", "source_doc_ids"]
LOW_AGREEMENT = "low_agreement"
UNKNOWN_QUESTION = "unknown_question"


def answer_text(line: ResponseLine) -> str:
    """The full answer: a repaired reply is the first reply's reasoning plus the follow-up."""
    if line.attempts > 1 and line.first_attempt:
        return line.first_attempt.rstrip() + "\n\n" + line.text.strip()
    return line.text


@dataclass
class Sample:
    """One sampled reply of a question: its final answer, or why it has none."""

    request: ChatRequest
    line: ResponseLine | None
    shard: str
    final: str | None = None
    reason: str | None = None
    parse_error: str | None = None


@dataclass
class _Tally:
    """Per-sample counts over the whole task (for parse rate and the logs)."""

    answered: int = 0
    repaired: int = 0
    truncated: int = 0
    failures: Counter = field(default_factory=Counter)


def _read_sample(request: ChatRequest, line: ResponseLine | None, shard: str, t: _Tally) -> Sample:
    sample = Sample(request, line, shard, reason=failure_reason(line))
    if sample.reason is None and line is not None:
        t.answered += 1
        t.repaired += line.attempts > 1
        t.truncated += line.finish_reason == "length"
        result = parse_answer(answer_text(line))
        sample.final = result.final_answer
        if result.status != "ok":
            sample.reason, sample.parse_error = "no_boxed_answer", result.error
    if sample.reason is not None:
        t.failures[sample.reason] += 1
    return sample


def group_samples(responses: ResponseSet, tally: _Tally) -> dict[str, list[Sample]]:
    """Samples per question_id, questions in id order and samples in sample-index order."""
    groups: dict[str, list[tuple[int, Sample]]] = {}
    for request, line, shard in responses.pairs:
        qid, index = parse_request_id(request.custom_id)
        groups.setdefault(qid, []).append((index, _read_sample(request, line, shard, tally)))
    return {qid: [s for _, s in sorted(groups[qid], key=lambda p: p[0])] for qid in sorted(groups)}


def _qa_row(question: Mapping[str, Any], sample: Sample, score: Agreement, **meta: str) -> dict:
    assert sample.line is not None
    return {
        "question_id": question["question_id"],
        "combo_id": question["combo_id"],
        "level": int(question["level"]),
        "question": question["question"],
        "answer": answer_text(sample.line),
        "final_answer": sample.final,
        "num_tokens": sample.line.spent_completion_tokens,  # both turns, when repaired
        "agreement": score.agreement,
        "num_samples": score.num_samples,
        "model": meta["model"],
        "prompt_version": meta["prompt_version"],
        "source_doc_ids": list(question["source_doc_ids"]),
        "snapshot": meta["snapshot"],
    }


def _common_failure(samples: Sequence[Sample]) -> str:
    """The most common failure of the samples; ties go to the earliest sample's."""
    counts = Counter(s.reason for s in samples if s.reason is not None)
    return counts.most_common(1)[0][0]  # most_common keeps first-seen order among ties


def _failed_raw(qid: str, samples: Sequence[Sample]) -> dict[str, Any]:
    """The first sample's raw response plus every sample's reason."""
    first = samples[0]
    extra: dict[str, Any] = {"question_id": qid, "num_samples": len(samples)}
    if first.parse_error:
        extra["parse_error"] = first.parse_error
    extra["sample_reasons"] = [s.reason for s in samples]
    return response_raw(first.request, first.line, **extra)


def _low_agreement_raw(qid: str, samples: Sequence[Sample], score: Agreement) -> dict[str, Any]:
    """Question id, agreement, clusters, every final answer and (clipped) answer text."""
    budget = (MAX_RAW_CHARS - 2000) // max(1, len(samples))  # keep the JSON whole
    return {
        "question_id": qid,
        "agreement": score.agreement,
        "num_samples": score.num_samples,
        "clusters": [list(c) for c in score.clusters],
        "final_answers": [s.final for s in samples],
        "answers": [answer_text(s.line)[:budget] if s.line else None for s in samples],
    }


def collect_answers(
    responses: ResponseSet,
    questions: Mapping[str, Mapping[str, Any]],
    snapshot: str,
    min_agreement: float = 0.0,
    equivalent: Equivalence = exact_match,
) -> Collected:
    """Score every question's samples into one qa row or one quarantine row."""
    version = str(responses.manifest.get("prompt_version", "unknown"))
    out, tally = Collected(), _Tally()
    reasons: Counter = Counter()
    scored: list[tuple[int, float, bool]] = []
    funnel = LevelFunnel()
    groups = group_samples(responses, tally)
    for qid, samples in groups.items():
        question = questions.get(qid)
        level = int(question["level"]) if question is not None else None
        docs = list(question["source_doc_ids"]) if question is not None else []
        finals = [s.final if s.reason is None else None for s in samples]
        score = score_agreement(finals, equivalent) if question is not None else None
        if score is None or score.representative is None:
            reason = UNKNOWN_QUESTION if question is None else _common_failure(samples)
            raw, shard = _failed_raw(qid, samples), samples[0].shard
        elif score.agreement < min_agreement:
            reason, raw = LOW_AGREEMENT, _low_agreement_raw(qid, samples, score)
            shard = samples[score.representative].shard
            scored.append((int(question["level"]), score.agreement, False))
        else:
            kept = samples[score.representative]
            model = responses.model_of(kept.request.custom_id)
            meta = {"model": model, "prompt_version": version, "snapshot": snapshot}
            out.rows.append(_qa_row(question, kept, score, **meta))
            scored.append((int(question["level"]), score.agreement, True))
            funnel.add(level, None)
            continue
        reasons[reason] += 1
        funnel.add(level, reason)
        out.quarantine.append(
            quarantine_row(STAGE, reason, raw, snapshot, docs[0] if docs else None, shard)
        )
    sizes = sorted({len(s) for s in groups.values()})
    out.stats = StageStats(
        rows_in=len(groups),
        rows_out=len(out.rows),
        quarantined=dict(sorted(reasons.items())),
        tokens=responses.tokens,
        extra={
            "num_requests": len(responses.pairs),
            # Share of answered requests with a usable boxed answer (after repair).
            "parse_rate": (
                round(1 - tally.failures["no_boxed_answer"] / tally.answered, 4)
                if tally.answered
                else 0.0
            ),
            "num_repaired": tally.repaired,
            "num_truncated": tally.truncated,
            "sample_failures": dict(sorted(tally.failures.items())),
            "unknown_responses": responses.unknown_ids,
            "answer_checking": {
                "num_samples": sizes[0] if len(sizes) == 1 else sizes,
                "min_agreement": min_agreement,
            },
            "agreement": {"by_level": agreement_by_level(scored)},
            "by_level": funnel.as_dict(),
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
    """Load responses and questions → score answers → commit ``qa`` and its quarantine."""
    storage = Storage(ctx.cfg.storage)
    settings = ctx.cfg.answers
    task_uri = ctx.layout.llm_task(TASK)
    questions_uri = ctx.layout.table("questions_clean")
    responses = load_responses(storage, ctx.layout, TASK)
    questions = read_questions(storage, questions_uri)
    # Started on the first comparison only: with k = 1 no worker process is needed.
    verifier = Verifier(settings.verify_timeout_s)
    try:
        collected = collect_answers(
            responses,
            questions,
            ctx.snapshot,
            settings.min_agreement,
            lambda a, b: verifier.check(a, b).correct,
        )
    finally:
        verifier.close()
    collected.stats.extra["answer_checking"].update(
        verifier=verifier_name(),
        verify_timeout_s=settings.verify_timeout_s,
        num_verify_timeouts=verifier.num_timeouts,
    )
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
    for level, figures in s.extra["agreement"]["by_level"].items():
        log.info("level %s agreement: %s", level, figures)
    return s


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("Collect answers from the finished LLM responses")
    return run_job("answers.collect", list(argv) if argv is not None else None, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
