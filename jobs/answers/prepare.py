"""Write the answer requests: ``answers.num_samples`` (k) chat requests per committed question.

``python -m jobs.answers.prepare --snapshot S --num-shards N`` reads the committed
``questions_clean`` table (every level) and commits N request shards under
``llm/answers/requests``, ordered by question_id, then sample index, so that reruns write
byte-identical shards.

Sampling settings are the answering engine's (``answers.engine``, else ``generation``).
With k = 1 the request of question Q is ``ans-Q`` at ``generation.temperature``. With k > 1
the requests are ``ans-Q-s0`` … ``ans-Q-s{k-1}`` at ``answers.sample_temperature``; each has
its own seed (the seed hashes the custom_id), so the samples differ.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from jobs.answers.prompts import PROMPT_VERSION, build_messages
from jobs.cli import JobContext, run_job
from jobs.commit import StageStats, require_committed
from jobs.config import AnswersConfig, GenerationConfig
from jobs.llm.engine import ChatRequest
from jobs.llm.shards import commit_requests, make_request, prepare_parser
from jobs.llm.tasks import generation_for
from jobs.storage import Storage
from jobs.tables import read_table

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

TASK = "answers"
REQUEST_PREFIX = "ans-"
_SAMPLE_SUFFIX = re.compile(r"-s(\d+)$")


def request_id(question_id: str, sample: int | None = None) -> str:
    """The custom_id of one answer request: ``ans-Q`` (k = 1) or ``ans-Q-s{sample}``."""
    base = REQUEST_PREFIX + question_id
    return base if sample is None else f"{base}-s{sample}"


def parse_request_id(custom_id: str) -> tuple[str, int]:
    """(question_id, sample index) of a custom_id written by :func:`request_id`.

    Question ids are sha1 hex digests, so a ``-s<digits>`` tail is always the sample index.
    """
    qid = custom_id.removeprefix(REQUEST_PREFIX)
    m = _SAMPLE_SUFFIX.search(qid)
    return (qid[: m.start()], int(m.group(1))) if m else (qid, 0)


def build_requests(
    questions: pd.DataFrame, gen: GenerationConfig, answers: AnswersConfig | None = None
) -> list[ChatRequest]:
    """k answer requests per question, ordered by question_id, then sample index."""
    k = (answers or AnswersConfig(num_samples=1)).num_samples
    if k > 1:
        gen = gen.model_copy(update={"temperature": answers.sample_temperature})
    ordered = questions.sort_values("question_id", kind="mergesort")
    out = []
    for qid, text in zip(ordered["question_id"], ordered["question"], strict=True):
        messages = build_messages(str(text))
        samples = [None] if k == 1 else range(k)
        out += [make_request(request_id(str(qid), j), messages, gen) for j in samples]
    return out


def run(ctx: JobContext) -> StageStats:
    """Read questions → build requests → commit shards."""
    storage = Storage(ctx.cfg.storage)
    questions_uri = ctx.layout.table("questions_clean")
    require_committed(storage, questions_uri)
    questions = read_table(storage, questions_uri, columns=["question_id", "question"])
    # answers.engine's sampling settings when it is set: the shard key fingerprints those.
    requests = build_requests(questions, generation_for(ctx.cfg, TASK), ctx.cfg.answers)
    # Rows are questions; the k requests of each are recorded beside them.
    stats = StageStats(
        rows_in=len(questions),
        rows_out=len(questions),
        extra={"num_requests": len(requests), "num_samples": ctx.cfg.answers.num_samples},
    )
    commit_requests(ctx, "answers.prepare", TASK, requests, stats, [questions_uri], PROMPT_VERSION)
    log.info("%d answer requests for %d questions", len(requests), len(questions))
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = prepare_parser("Write answer requests for the committed questions")
    return run_job("answers.prepare", list(argv) if argv is not None else None, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
