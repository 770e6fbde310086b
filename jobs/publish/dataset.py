"""The published files and their manifest: bytes, checksums and provenance (pure functions)."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

PARQUET_FILE = "data/qa.parquet"
JSONL_FILE = "data/qa.jsonl"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "README.md"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def qa_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """The qa rows with the contract's exact schema, sorted by ``question_id`` for stable bytes."""
    import pyarrow as pa

    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise ValueError(f"qa table lacks contract columns {missing}")
    ordered = frame.sort_values("question_id", kind="stable").reset_index(drop=True)
    return pa.Table.from_pandas(ordered[schema.names], schema=schema, preserve_index=False)


def encode_parquet(table: pa.Table) -> bytes:
    """One Parquet file (zstd), the format training jobs read."""
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def encode_jsonl(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """JSON lines, UTF-8, keys in schema order: the format people read and grep."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def type_name(arrow_type: pa.DataType) -> str:
    """Readable Arrow type for the card: ``list<string>`` rather than ``list<item: string>``."""
    import pyarrow as pa

    if pa.types.is_list(arrow_type):
        return f"list<{type_name(arrow_type.value_type)}>"
    return str(arrow_type)


def distinct(values: Iterable[Any]) -> list[str]:
    """Sorted distinct non-null values, as strings."""
    return sorted({str(v) for v in values if v is not None and v == v})


def licence_counts(meta_by_doc: Mapping[str, Any], doc_ids: Iterable[str]) -> dict[str, int]:
    """How many source documents behind the dataset carry each licence (``meta.licence``)."""
    counts: Counter[str] = Counter()
    for doc_id in set(doc_ids):
        meta = meta_by_doc.get(doc_id)
        meta = dict(meta) if meta is not None else {}
        counts[meta.get("licence") or meta.get("license") or "unknown"] += 1
    return dict(sorted(counts.items()))


def build_manifest(
    *,
    snapshot: str,
    run_id: str,
    code_version: str,
    files: Mapping[str, bytes],
    num_rows: int,
    stage_stats: Mapping[str, Mapping[str, Any] | None],
    table_rows: Mapping[str, int],
    provenance: Mapping[str, Any],
) -> dict[str, Any]:
    """The dataset's ``manifest.json``: counts, tokens, provenance and file checksums.

    Row counts are the rows of each table (``table_rows``), else the stage's ``rows_out``;
    ``provenance`` carries models, prompt versions, licences, verdicts and links.
    """
    row_counts = {s: st.get("rows_out") for s, st in stage_stats.items() if st is not None}
    row_counts.update(table_rows)
    row_counts["qa"] = num_rows
    return {
        "dataset": "synthllm",
        "snapshot": snapshot,
        "source_snapshot": snapshot,
        "created_from": {"run_id": run_id},
        "code_version": code_version,
        "row_counts": row_counts,
        "tokens": {s: dict(st.get("tokens") or {}) for s, st in stage_stats.items() if st},
        "files": {
            name: {"sha256": sha256_hex(data), "bytes": len(data), "rows": num_rows}
            for name, data in files.items()
        },
        **provenance,
    }
