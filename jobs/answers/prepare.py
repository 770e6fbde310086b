"""Write the answer requests: one chat request per committed question.

``python -m jobs.answers.prepare --snapshot S --num-shards N`` reads the committed
``questions`` table (every level) and commits N request shards under
``llm/answers/requests``, ordered by question_id so that reruns write byte-identical shards.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from jobs.answers.prompts import PROMPT_VERSION, build_messages
from jobs.cli import JobContext, run_job
from jobs.commit import StageStats, require_committed
from jobs.config import GenerationConfig
from jobs.llm.engine import ChatRequest
from jobs.llm.shards import commit_requests, make_request, prepare_parser
from jobs.storage import Storage
from jobs.tables import read_table

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

TASK = "answers"
REQUEST_PREFIX = "ans-"


def request_id(question_id: str) -> str:
    """The custom_id of the answer request for one question."""
    return REQUEST_PREFIX + question_id


def build_requests(questions: pd.DataFrame, gen: GenerationConfig) -> list[ChatRequest]:
    """One answer request per question, ordered by question_id."""
    ordered = questions.sort_values("question_id", kind="mergesort")
    out = []
    for qid, text in zip(ordered["question_id"], ordered["question"], strict=True):
        out.append(make_request(request_id(str(qid)), build_messages(str(text)), gen))
    return out


def run(ctx: JobContext) -> StageStats:
    """Read questions → build requests → commit shards."""
    storage = Storage(ctx.cfg.storage)
    questions_uri = ctx.layout.table("questions")
    require_committed(storage, questions_uri)
    questions = read_table(storage, questions_uri, columns=["question_id", "question"])
    requests = build_requests(questions, ctx.cfg.generation)
    stats = StageStats(rows_in=len(questions), rows_out=len(requests))
    commit_requests(ctx, "answers.prepare", TASK, requests, stats, [questions_uri], PROMPT_VERSION)
    log.info("%d answer requests", len(requests))
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = prepare_parser("Write answer requests for the committed questions")
    return run_job("answers.prepare", list(argv) if argv is not None else None, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
