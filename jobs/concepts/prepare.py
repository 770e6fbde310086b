"""Write the concept-extraction requests: one P-K chat request per selected document.

``python -m jobs.concepts.prepare --snapshot S --num-shards N`` reads the committed
``documents`` table, takes the ``concepts.max_documents`` best documents (default: as many
as Level-1 uses, chosen the same way: fine-grained score where there is one, then domain
score, descending, then doc_id) and commits N request shards under ``llm/concepts/requests``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from jobs.cli import JobContext, run_job
from jobs.commit import StageStats, require_committed
from jobs.concepts.prompts import PROMPT_VERSION, build_messages
from jobs.llm.shards import commit_requests, make_request, prepare_parser
from jobs.questions.prepare import select_documents
from jobs.storage import Storage
from jobs.tables import read_table

log = logging.getLogger(__name__)

TASK = "concepts"
REQUEST_PREFIX = "k-"


def request_id(doc_id: str) -> str:
    """The custom_id of one document's extraction request."""
    return REQUEST_PREFIX + doc_id


def doc_id_of(custom_id: str) -> str:
    """The document a request id names."""
    return custom_id[len(REQUEST_PREFIX) :] if custom_id.startswith(REQUEST_PREFIX) else custom_id


def run(ctx: JobContext) -> StageStats:
    """Read documents → select → one P-K request each → commit shards."""
    storage = Storage(ctx.cfg.storage)
    gen = ctx.cfg.generation
    docs_uri = ctx.layout.table("documents")
    require_committed(storage, docs_uri)
    docs = read_table(storage, docs_uri)  # fine_score only when the refine job made it
    limit = ctx.cfg.concepts.max_documents or gen.max_documents
    selected = select_documents(docs, limit)
    requests = [
        make_request(request_id(str(d)), build_messages(str(t or ""), gen.max_prompt_chars), gen)
        for d, t in zip(selected["doc_id"], selected["text"], strict=True)
    ]
    stats = StageStats(
        rows_in=len(selected),
        rows_out=len(requests),
        extra={"documents_available": len(docs), "max_documents": limit},
    )
    commit_requests(ctx, "concepts.prepare", TASK, requests, stats, [docs_uri], PROMPT_VERSION)
    log.info("concept extraction for %d of %d documents", len(selected), len(docs))
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = prepare_parser("Write concept-extraction (P-K) requests")
    return run_job("concepts.prepare", list(argv) if argv is not None else None, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
