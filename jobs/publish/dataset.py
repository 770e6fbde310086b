"""The published files and their manifest: bytes, checksums and provenance.

:func:`stream_qa_files` writes ``qa.parquet`` and ``qa.jsonl`` without holding the table in
memory: input batches are spooled to an uncompressed Arrow IPC file on local disk, which is
memory-mapped (pages the OS may drop, not heap), and only the ``question_id`` column plus
one int64 sort index per row are materialised to order it; rows then go out
``batch_rows`` at a time, one Parquet row group and one run of JSON lines per batch.
The bytes equal :func:`encode_parquet` / :func:`encode_jsonl` of the sorted table whenever
it fits in one batch (bar the pandas schema metadata, which the streamed file does not carry);
above that the Parquet file has one row group per batch, same rows, same order.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

PARQUET_FILE = "data/qa.parquet"
JSONL_FILE = "data/qa.jsonl"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "README.md"
# Rows materialised at once while streaming the published files (one Parquet row group).
BATCH_ROWS = 50_000
_HASH_BLOCK = 1 << 20


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


def _contract_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    import pyarrow as pa

    missing = [name for name in schema.names if name not in batch.schema.names]
    if missing:
        raise ValueError(f"qa table lacks contract columns {missing}")
    arrays = [batch.column(f.name).cast(f.type) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def sorted_batches(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, workdir: Path, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """``batches`` in the contract schema, sorted by ``question_id`` (stable, nulls last).

    Spools to ``workdir/spool.arrow`` and memory-maps it back; see the module docstring.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    spool = Path(workdir) / "spool.arrow"
    with pa.OSFile(str(spool), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(_contract_batch(batch, schema))
    with pa.memory_map(str(spool), "r") as source:
        table = pa.ipc.open_file(source).read_all()  # zero-copy views of the mapped file
        order = pc.sort_indices(table, sort_keys=[("question_id", "ascending", "at_end")])
        for start in range(0, table.num_rows, batch_rows):
            chunk = table.take(order.slice(start, batch_rows)).combine_chunks()
            yield from chunk.to_batches()
        del table
    spool.unlink()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def stream_qa_files(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, workdir: Path, batch_rows: int
) -> dict[str, dict[str, Any]]:
    """Write the Parquet and JSONL files under ``workdir`` from sorted batches.

    Returns ``{PARQUET_FILE: {"path", "sha256", "bytes", "rows"}, JSONL_FILE: {...}}``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    workdir = Path(workdir)
    paths = {name: workdir / name for name in (PARQUET_FILE, JSONL_FILE)}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    rows, jsonl_hash = 0, hashlib.sha256()
    with (
        pq.ParquetWriter(str(paths[PARQUET_FILE]), schema, compression="zstd") as parquet,
        paths[JSONL_FILE].open("wb") as jsonl,
    ):
        for batch in sorted_batches(batches, schema, workdir, batch_rows):
            parquet.write_table(pa.Table.from_batches([batch], schema=schema))
            data = encode_jsonl(batch.to_pylist())
            jsonl.write(data)
            jsonl_hash.update(data)
            rows += batch.num_rows
    out = {
        PARQUET_FILE: {"sha256": _file_sha256(paths[PARQUET_FILE])},
        JSONL_FILE: {"sha256": jsonl_hash.hexdigest()},
    }
    for name, info in out.items():
        info.update(path=paths[name], bytes=paths[name].stat().st_size, rows=rows)
    return out


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
    files: Mapping[str, Mapping[str, Any]],
    num_rows: int,
    stage_stats: Mapping[str, Mapping[str, Any] | None],
    table_rows: Mapping[str, int],
    provenance: Mapping[str, Any],
) -> dict[str, Any]:
    """The dataset's ``manifest.json``: counts, tokens, provenance and file checksums.

    Row counts are the rows of each table (``table_rows``), else the stage's ``rows_out``;
    ``provenance`` carries models, prompt versions, licences, verdicts and links;
    ``files`` maps each file name to its ``sha256`` and ``bytes`` (see :func:`stream_qa_files`).
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
            name: {"sha256": info["sha256"], "bytes": info["bytes"], "rows": num_rows}
            for name, info in files.items()
        },
        **provenance,
    }
