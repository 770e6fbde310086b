"""The published-question index: which normalised questions every published snapshot holds.

``{root}/datasets/synthllm/_index/{snapshot}/`` is a committed prefix (``_SUCCESS`` last)
with one Parquet file of ``(question_key, question_id, level, snapshot)`` rows, written by
``publish`` for the questions it published. ``clean_questions`` reads every committed
snapshot's prefix except its own, so a daily run or a backfill never republishes a question
and a rerun of a snapshot does not count its own earlier publication. ``_index`` cannot be
a snapshot name (snapshot names start with a letter or digit).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from jobs.commit import SUCCESS, StageOutput
from jobs.questions.cleaning import question_key
from jobs.storage import Storage, basename, join
from jobs.tables import write_table

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

COLUMNS = ("question_key", "question_id", "level", "snapshot")


def index_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("question_key", pa.string()),
            ("question_id", pa.string()),
            ("level", pa.int32()),
            ("snapshot", pa.string()),
        ]
    )


def index_rows(qa: pd.DataFrame, snapshot: str) -> list[dict]:
    """One index row per published question (``question_id``, ``question``, ``level``)."""
    return [
        {"question_key": question_key(q), "question_id": str(qid), "level": int(lv),
         "snapshot": snapshot}
        for qid, q, lv in zip(qa["question_id"], qa["question"], qa["level"], strict=True)
    ]  # fmt: skip


def write_index(
    storage: Storage, index_uri: str, snapshot: str, qa: pd.DataFrame, attempt: str, manifest: dict
) -> int:
    """Replace ``snapshot``'s entry in the index with the questions of ``qa``; returns rows."""
    out = StageOutput(storage, join(index_uri, snapshot), attempt)
    rows = index_rows(qa, snapshot)
    write_table(storage, rows, out.begin(), index_schema())
    out.commit(manifest, None)
    log.info("question index: %d questions of snapshot %s", len(rows), snapshot)
    return len(rows)


def indexed_snapshots(storage: Storage, index_uri: str, exclude: str) -> list[str]:
    """URIs of every committed snapshot entry of the index except ``exclude``'s."""
    out = []
    for child in storage.list(index_uri):
        name = basename(child.rstrip("/"))
        if name == exclude or name.startswith(("_", ".")):
            continue
        if storage.exists(join(child, SUCCESS)):
            out.append(child)
        else:
            log.warning("question index: %s is not committed, skipped", child)
    return sorted(out)
