"""Write the answer requests: one chat request per committed question.

``python -m jobs.answers.prepare --snapshot S --num-shards N`` reads the committed
``questions`` table and commits N request shards under ``llm/answers/requests``, ordered by
question_id so that reruns write byte-identical shards.
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
from jobs.questions.prepare import parser as shard_parser
from jobs.questions.shards import make_request, publish_requests
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
    gen = ctx.cfg.generation
    questions_uri = ctx.layout.table("questions")
    require_committed(storage, questions_uri)
    questions = read_table(storage, questions_uri, columns=["question_id", "question"])
    requests = build_requests(questions, gen)
    stats = StageStats(rows_in=len(questions), rows_out=len(requests))
    stats.check_balance()
    manifest = ctx.manifest(
        "answers.prepare", [questions_uri], task=TASK, prompt_version=PROMPT_VERSION
    )
    publish_requests(
        storage,
        ctx.layout.llm_task(TASK),
        ctx.attempt,
        requests,
        ctx.args.num_shards or gen.num_shards,
        gen.model,
        manifest,
        stats,
    )
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = shard_parser("Write answer requests for the committed questions")
    return run_job("answers.prepare", list(argv) if argv is not None else None, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
