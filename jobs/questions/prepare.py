"""Write the Level-1 question requests: one P-L1 chat request per selected document.

``python -m jobs.questions.prepare --snapshot S --num-shards N`` reads the committed
``documents`` table, takes the ``generation.max_documents`` best documents (domain score
descending, then doc_id, so reruns pick the same set) and commits N request shards under
``llm/questions_l1/requests``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import StageStats, require_committed
from jobs.config import GenerationConfig
from jobs.llm.engine import ChatRequest
from jobs.questions.prompts import PROMPT_VERSION, build_messages
from jobs.questions.shards import make_request, publish_requests
from jobs.storage import Storage
from jobs.tables import read_table

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

TASK = "questions_l1"
COMBO_PREFIX = "l1-"


def combo_id(doc_id: str) -> str:
    """Level-1 combinations are single documents: the request id is the combo id."""
    return COMBO_PREFIX + doc_id


def select_documents(docs: pd.DataFrame, max_documents: int) -> pd.DataFrame:
    """The ``max_documents`` highest-scoring documents, ties broken by doc_id."""
    ordered = docs.assign(_score=docs["domain_score"].astype(float).fillna(float("-inf")))
    ordered = ordered.sort_values(["_score", "doc_id"], ascending=[False, True], kind="mergesort")
    return ordered.drop(columns="_score").head(max_documents).reset_index(drop=True)


def build_requests(docs: pd.DataFrame, gen: GenerationConfig) -> list[ChatRequest]:
    """One P-L1 request per document row, in row order."""
    out = []
    for doc_id, text in zip(docs["doc_id"], docs["text"], strict=True):
        messages = build_messages(str(text or ""), gen.max_prompt_chars)
        out.append(make_request(combo_id(str(doc_id)), messages, gen))
    return out


def run(ctx: JobContext) -> StageStats:
    """Read documents → select → build requests → commit shards."""
    storage = Storage(ctx.cfg.storage)
    gen = ctx.cfg.generation
    docs_uri = ctx.layout.table("documents")
    require_committed(storage, docs_uri)
    docs = read_table(storage, docs_uri, columns=["doc_id", "text", "domain_score"])
    selected = select_documents(docs, gen.max_documents)
    requests = build_requests(selected, gen)
    num_shards = ctx.args.num_shards or gen.num_shards
    stats = StageStats(
        rows_in=len(selected),
        rows_out=len(requests),
        extra={"documents_available": len(docs), "max_documents": gen.max_documents},
    )
    stats.check_balance()
    manifest = ctx.manifest(
        "questions.prepare", [docs_uri], task=TASK, prompt_version=PROMPT_VERSION
    )
    publish_requests(
        storage,
        ctx.layout.llm_task(TASK),
        ctx.attempt,
        requests,
        num_shards,
        gen.model,
        manifest,
        stats,
    )
    log.info("selected %d of %d documents", len(selected), len(docs))
    return stats


def parser(description: str = "Write Level-1 question requests") -> argparse.ArgumentParser:
    """The base job flags plus ``--num-shards`` (default: generation.num_shards)."""
    p = base_parser(description)
    p.add_argument("--num-shards", type=_positive, default=None, help="request shards to write")
    return p


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    return run_job("questions.prepare", list(argv) if argv is not None else None, run, parser())


if __name__ == "__main__":
    raise SystemExit(main())
