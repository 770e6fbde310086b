"""Small Parquet tables in plain Python (pyarrow + pandas), for jobs that need no Spark.

The LLM stages read and write a few thousand rows; starting a JVM for that would cost more
than the work. Tables written here follow the same contract as Spark outputs (a prefix of
``part-*.parquet`` files committed by :class:`jobs.commit.StageOutput`), and readers accept
either writer's files. :func:`write_table` writes one part file; :class:`PartWriter` writes a
table that could grow as numbered part files of a bounded number of rows each, so a job never
holds more than one batch. The schemas of the tables these jobs own live here too.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.commit import committed_files
from jobs.storage import Storage, basename, join, resolve_uri

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# The raw column of a quarantine row holds at most this many characters (brief contract).
MAX_RAW_CHARS = 10_000
PART_FILE = "part-00000.parquet"  # the first part: write_table's only one
_PART_PATTERN = "part-{:05d}.parquet"
_PARQUET_TYPE = "application/vnd.apache.parquet"


def _schemas() -> dict[str, pa.Schema]:
    import pyarrow as pa

    strings = pa.list_(pa.string())
    return {
        "quarantine": pa.schema(
            [
                ("stage", pa.string()),
                ("reason", pa.string()),
                ("doc_id", pa.string()),
                ("source_file", pa.string()),
                ("raw", pa.string()),
                ("snapshot", pa.string()),
            ]
        ),
        "doc_concepts": pa.schema(
            [
                ("doc_id", pa.string()),
                ("edu_level", pa.string()),
                ("subject", pa.string()),
                ("topic_id", pa.string()),
                ("topic", pa.string()),
                ("topic_raw", pa.string()),
                ("concept_id", pa.string()),
                ("concept", pa.string()),
                ("concept_raw", pa.string()),
                ("model", pa.string()),
                ("prompt_version", pa.string()),
                ("snapshot", pa.string()),
            ]
        ),
        "questions": pa.schema(
            [
                ("question_id", pa.string()),
                ("combo_id", pa.string()),
                ("level", pa.int32()),
                ("question", pa.string()),
                ("selected_concepts", strings),
                ("orig_tag", pa.string()),
                ("edu_level", pa.string()),
                ("source_doc_ids", strings),
                ("model", pa.string()),
                ("prompt_version", pa.string()),
                ("snapshot", pa.string()),
            ]
        ),
        "qa": pa.schema(
            [
                ("question_id", pa.string()),
                ("combo_id", pa.string()),
                ("level", pa.int32()),
                ("question", pa.string()),
                ("answer", pa.string()),
                ("final_answer", pa.string()),
                ("num_tokens", pa.int32()),
                ("agreement", pa.float64()),
                ("num_samples", pa.int32()),
                ("model", pa.string()),
                ("prompt_version", pa.string()),
                ("source_doc_ids", strings),
                ("snapshot", pa.string()),
            ]
        ),
    }


def schema(name: str) -> pa.Schema:
    """The Arrow schema of a table this module knows (quarantine, doc_concepts, questions, qa)."""
    schemas = _schemas()
    if name not in schemas:
        raise KeyError(f"no schema for table {name!r} (known: {', '.join(sorted(schemas))})")
    return schemas[name]


def data_files(storage: Storage, uri: str) -> list[str]:
    """The Parquet files of a prefix: exactly those its commit's manifest lists.

    A prefix without that list (committed before commits were fenced, or written by hand)
    is listed instead, skipping ``_tmp`` and other hidden entries.
    """
    listed = committed_files(storage, uri)
    base = uri.rstrip("/")
    if listed is None:
        listed = storage.walk_files(uri)
        base = resolve_uri(base) if listed and listed[0].startswith("file://") else base
    out = []
    for f in listed:
        rel = f[len(base) + 1 :]
        if not f.endswith(".parquet"):
            continue
        if any(part.startswith(("_", ".")) for part in rel.split("/")):
            continue
        out.append(f)
    return out


def read_table(storage: Storage, uri: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read the Parquet files of ``uri`` (:func:`data_files`) into one DataFrame, in order.

    An absent or empty prefix gives an empty frame with ``columns`` (if named).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for f in data_files(storage, uri):
        try:
            tables.append(pq.read_table(io.BytesIO(storage.read_bytes(f)), columns=columns))
        except (pa.ArrowInvalid, KeyError) as exc:
            raise ValueError(f"{f}: cannot read Parquet ({exc})") from exc
    if not tables:
        return pd.DataFrame(columns=list(columns or []))
    table = pa.concat_tables(tables, promote_options="permissive")
    return table.to_pandas()


def iter_table_batches(
    storage: Storage, uri: str, batch_rows: int, columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Record batches of at most ``batch_rows`` rows of every Parquet file below ``uri``.

    Files come in file-name order, chosen as :func:`read_table` chooses them; an S3 file is
    streamed to a local temp file first, never read into memory whole.

    A file without rows yields one empty batch, so a reader still sees the table's columns.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="table-batches-") as tmp:
        for f in data_files(storage, uri):
            local = storage.local_path(f)
            if local is None:
                local = Path(tmp) / "part.parquet"
                storage.download_file(f, local)
            try:
                reader = pq.ParquetFile(str(local))
                if reader.metadata.num_rows == 0:
                    names = columns or reader.schema_arrow.names
                    empty = pa.RecordBatch.from_pylist([], schema=reader.schema_arrow)
                    yield empty.select(list(names))
                    continue
                yield from reader.iter_batches(batch_size=batch_rows, columns=columns)
            except (pa.ArrowInvalid, KeyError) as exc:
                raise ValueError(f"{f}: cannot read Parquet ({exc})") from exc


def read_columns(
    storage: Storage, uri: str, columns: Sequence[str], batch_rows: int = 100_000
) -> pa.Table | None:
    """The named columns of every Parquet file below ``uri`` as one Arrow table, read in
    batches (:func:`iter_table_batches`), so the other columns never load; a file lacking a
    column gives those it has. None where the prefix holds no file."""
    import pyarrow as pa

    parts = [
        pa.Table.from_batches([b]) for b in iter_table_batches(storage, uri, batch_rows, columns)
    ]
    return pa.concat_tables(parts, promote_options="permissive") if parts else None


def write_table(
    storage: Storage,
    rows: pd.DataFrame | Sequence[Mapping[str, Any]],
    uri: str,
    table_schema: pa.Schema | None = None,
) -> str:
    """Write rows as one Parquet file under ``uri`` (a StageOutput tmp prefix); returns its URI.

    With ``table_schema`` the columns are exactly the schema's, so an empty table still has
    the right types for downstream readers and validators.
    """
    import pyarrow as pa

    if isinstance(rows, Sequence):
        table = pa.Table.from_pylist(list(rows), schema=table_schema)
    else:
        table = pa.Table.from_pandas(rows, schema=table_schema, preserve_index=False)
    out = join(uri, PART_FILE)
    _put_parquet(storage, table, out)
    return out


def _put_parquet(storage: Storage, table: pa.Table, uri: str) -> None:
    """One Parquet file in one write (one PUT on S3), zstd like Spark's outputs."""
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    storage.write_bytes(uri, buf.getvalue(), _PARQUET_TYPE)


class PartWriter:
    """Rows written as ``part-00000.parquet``, ``part-00001.parquet``… under ``uri``.

    Rows are buffered and written ``batch_rows`` at a time, so at most one batch (plus the
    rows of the last :meth:`add`) is ever held; every part holds at most ``batch_rows`` rows.
    ``uri`` is a :class:`jobs.commit.StageOutput` staging prefix. Parts are numbered in write
    order, which is the order readers concatenate them in (:func:`data_files`), so a table
    written here reads back in the order its rows were added. A table that fits one batch is
    one ``part-00000.parquet``, exactly as :func:`write_table` writes it; a table without rows
    still gets one (empty) part carrying the schema.
    """

    def __init__(
        self, storage: Storage, uri: str, table_schema: pa.Schema, batch_rows: int
    ) -> None:
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
        self.storage = storage
        self.uri = uri
        self.schema = table_schema
        self.batch_rows = batch_rows
        self.num_rows = 0  # rows added so far
        self.files: list[str] = []  # parts written so far
        self._buffer: list[Mapping[str, Any]] = []
        self._closed = False

    @property
    def pending(self) -> int:
        """Rows added but not yet written: always under ``batch_rows`` between calls."""
        return len(self._buffer)

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Buffer ``rows``; write every full batch the buffer holds."""
        if self._closed:
            raise RuntimeError(f"{self.uri}: PartWriter is closed")
        before = len(self._buffer)
        self._buffer.extend(rows)
        self.num_rows += len(self._buffer) - before
        while len(self._buffer) >= self.batch_rows:
            self._write(self.batch_rows)

    def close(self) -> list[str]:
        """Write what is left (an empty part if nothing was written); returns the parts."""
        if not self._closed and (self._buffer or not self.files):
            self._write(len(self._buffer))
        self._closed = True
        return self.files

    def _write(self, count: int) -> None:
        import pyarrow as pa

        batch, self._buffer = self._buffer[:count], self._buffer[count:]
        out = join(self.uri, _PART_PATTERN.format(len(self.files)))
        _put_parquet(self.storage, pa.Table.from_pylist(batch, schema=self.schema), out)
        self.files.append(out)


def quarantine_row(
    stage: str,
    reason: str,
    raw: Mapping[str, Any],
    snapshot: str,
    doc_id: str | None = None,
    source_file: str | None = None,
) -> dict[str, Any]:
    """One quarantine row; ``raw`` is stored as JSON text, cut to :data:`MAX_RAW_CHARS`."""
    text = json.dumps(dict(raw), ensure_ascii=False, sort_keys=True, default=str)
    return {
        "stage": stage,
        "reason": reason,
        "doc_id": doc_id,
        "source_file": basename(source_file) if source_file else None,
        "raw": text[:MAX_RAW_CHARS],
        "snapshot": snapshot,
    }
