"""Write the concept-extraction requests: one P-K chat request per selected document.

``python -m jobs.concepts.prepare --snapshot S --num-shards N`` reads the committed
``documents`` table, takes the ``concepts.max_documents`` best documents (default: as many
as Level-1 uses, chosen the same way: fine-grained score where there is one, then domain
score, descending, then doc_id) and commits N request shards under ``llm/concepts/requests``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.cli import JobContext, run_job
from jobs.commit import StageStats, require_committed
from jobs.concepts.prompts import PROMPT_VERSION, build_messages
from jobs.llm.shards import RequestShards, commit_prepared, make_request, prepare_parser
from jobs.questions.prepare import RANK_COLUMNS, select_documents
from jobs.spill import BUCKET_ROWS, in_rank_order
from jobs.storage import Storage
from jobs.tables import iter_table_batches, read_columns

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

TASK = "concepts"
REQUEST_PREFIX = "k-"
# Rows read from a table at a time, and rows of a spill bucket (what the job holds at once).
BATCH_ROWS = 20_000
SPILL_ROWS = BUCKET_ROWS


def request_id(doc_id: str) -> str:
    """The custom_id of one document's extraction request."""
    return REQUEST_PREFIX + doc_id


def doc_id_of(custom_id: str) -> str:
    """The document a request id names."""
    return custom_id[len(REQUEST_PREFIX) :] if custom_id.startswith(REQUEST_PREFIX) else custom_id


def run(ctx: JobContext) -> StageStats:
    """Read documents → select → one P-K request each → commit shards.

    Two passes over ``documents``, in batches: the ranking columns of every document (to
    choose them), then the chosen documents' texts, put back in rank order through a spill
    (:func:`jobs.spill.in_rank_order`). The job holds the chosen ids and one bucket of
    texts; the requests go to their shard files as they are made.
    """
    import pyarrow as pa

    storage = Storage(ctx.cfg.storage)
    gen = ctx.cfg.generation
    docs_uri = ctx.layout.table("documents")
    require_committed(storage, docs_uri)
    keys = document_keys(storage, docs_uri)  # fine_score only when the refine job made it
    limit = ctx.cfg.concepts.max_documents or gen.max_documents
    ranked = pa.array(select_documents(keys, limit)["doc_id"], pa.string())
    available = len(keys)
    del keys
    texts = iter_table_batches(storage, docs_uri, BATCH_ROWS, columns=["doc_id", "text"])
    with (
        tempfile.TemporaryDirectory(prefix="synthllm-concepts-prepare-") as folder,
        RequestShards.for_task(ctx, TASK) as shards,
    ):
        for table in in_rank_order(texts, "doc_id", ranked, Path(folder), SPILL_ROWS):
            for d, t in zip(table["doc_id"].to_pylist(), table["text"].to_pylist(), strict=True):
                messages = build_messages(str(t or ""), gen.max_prompt_chars)
                shards.add(make_request(request_id(str(d)), messages, gen))
        stats = StageStats(
            rows_in=len(ranked),
            rows_out=shards.count,
            extra={"documents_available": available, "max_documents": limit},
        )
        commit_prepared(ctx, shards, "concepts.prepare", TASK, stats, [docs_uri], PROMPT_VERSION)
    log.info("concept extraction for %d of %d documents", len(ranked), available)
    return stats


def document_keys(storage: Storage, docs_uri: str) -> pd.DataFrame:
    """``doc_id`` and the ranking columns the table has, of every document, read in batches
    (a Parquet file read for columns it lacks gives those it has)."""
    keys = read_columns(storage, docs_uri, ["doc_id", *RANK_COLUMNS], BATCH_ROWS)
    if keys is None:
        import pandas as pd

        return pd.DataFrame({"doc_id": pd.Series([], dtype=object)})
    return keys.to_pandas()


def main(argv: Sequence[str] | None = None) -> int:
    parser = prepare_parser("Write concept-extraction (P-K) requests")
    return run_job("concepts.prepare", list(argv) if argv is not None else None, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
