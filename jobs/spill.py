"""Rows spilled to local files by bucket, then read back one bucket at a time.

A job whose tables outgrow memory -- a join of two tables, an order over a whole table --
writes each row to the bucket that will hold it with the rows it meets (the same hash of a
key, :func:`hash_buckets`) or that come next to it (a range of ranks), then works on one
bucket at a time: it holds one bucket, never a table. A bucket reads back in the order its
rows were added, so what a job derives from its input's order stays the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# Rows a spill bucket holds, by default: what a job holds at once, texts included.
BUCKET_ROWS = 20_000


def num_buckets(rows: int, bucket_rows: int = BUCKET_ROWS) -> int:
    """Buckets enough for ``rows`` at ``bucket_rows`` each (at least one)."""
    return max(1, math.ceil(rows / bucket_rows))


def hash_buckets(keys: pa.Array | pa.ChunkedArray, buckets: int) -> np.ndarray:
    """Each string key's bucket in ``0..buckets-1``, the same on every run and machine.

    A hash of each key's UTF-8 bytes computed on the Arrow buffers (no Python object per
    key): each byte times a pseudo-random 64-bit weight of its position, summed per key with
    the key's length, then mixed (splitmix64's finaliser). A null key goes where the empty
    string goes.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if keys.type != pa.string():
        keys = keys.cast(pa.string())
    if keys.null_count:
        keys = pc.fill_null(keys, "")
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    _, offsets_buf, data_buf = keys.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[keys.offset : keys.offset + n + 1]
    lengths = np.diff(offsets).astype(np.int64)
    lo, hi = int(offsets[0]), int(offsets[-1])
    filled = np.flatnonzero(lengths)
    h = lengths.astype(np.uint64) * np.uint64(_LENGTH_MUL)
    if filled.size:
        data = np.frombuffer(data_buf, dtype=np.uint8)[lo:hi].astype(np.uint64)
        position = np.arange(hi - lo, dtype=np.int64) - np.repeat(offsets[:-1] - lo, lengths)
        weights = _mixed(np.arange(int(lengths.max()), dtype=np.uint64) * np.uint64(_GOLDEN))
        h[filled] += np.add.reduceat(data * weights[position], (offsets[:-1] - lo)[filled])
    return (_mixed(h) % np.uint64(buckets)).astype(np.int64)


def _mixed(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise (a bijection of uint64)."""
    import numpy as np

    h = h ^ (h >> np.uint64(30))
    h *= np.uint64(_MIX1)
    h ^= h >> np.uint64(27)
    h *= np.uint64(_MIX2)
    return h ^ (h >> np.uint64(31))


# Odd 64-bit constants of hash_buckets: splitmix64's increment and finaliser multipliers
# (Steele et al. 2014), and one for the length.
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_LENGTH_MUL = 0xD6E8FEB86659FD93


class Spill:
    """``buckets`` Arrow IPC files in ``folder`` named after ``name``, one row schema.

    :meth:`add` appends each row of a table to the bucket given for it; :meth:`read` gives a
    bucket's rows in the order they were added (an empty table for a bucket with none).
    The schema is the first table's; later ones are cast to it.
    """

    def __init__(self, folder: Path, name: str, buckets: int) -> None:
        self.paths = [Path(folder) / f"{name}-{i:05d}.arrow" for i in range(buckets)]
        self._writers: list = [None] * buckets
        self.schema: pa.Schema | None = None
        self.rows = 0

    def add(self, table: pa.Table | pa.RecordBatch, bucket: np.ndarray) -> None:
        import numpy as np
        import pyarrow as pa

        if len(table) == 0:
            return
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if self.schema is None:
            self.schema = table.schema
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        order = np.argsort(bucket, kind="stable")
        ordered = bucket[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        for lo, hi in zip(starts, [*starts[1:], len(order)], strict=True):
            b = int(ordered[lo])
            if self._writers[b] is None:
                self._writers[b] = pa.ipc.new_file(str(self.paths[b]), self.schema)
            self._writers[b].write_table(table.take(order[lo:hi]))
        self.rows += len(table)

    def close(self) -> None:
        for i, writer in enumerate(self._writers):
            if writer is not None:
                writer.close()
                self._writers[i] = None

    def read(self, bucket: int) -> pa.Table:
        import pyarrow as pa

        if self._writers[bucket] is not None:
            raise RuntimeError(f"{self.paths[bucket]}: close the spill before reading it")
        if not self.paths[bucket].exists():
            return (self.schema or pa.schema([])).empty_table()
        with pa.OSFile(str(self.paths[bucket]), "rb") as source:
            return pa.ipc.open_file(source).read_all()

    def drain(self) -> Iterator[pa.Table]:
        """Every bucket in turn (closing the spill first), each file removed once read."""
        self.close()
        for bucket, path in enumerate(self.paths):
            table = self.read(bucket)
            path.unlink(missing_ok=True)
            yield table


def in_rank_order(
    batches: Iterable[pa.RecordBatch],
    key: str,
    ranked: pa.Array,
    folder: Path,
    bucket_rows: int = BUCKET_ROWS,
) -> Iterator[pa.Table]:
    """The rows of ``batches`` whose ``key`` is in ``ranked``, in ``ranked``'s order.

    Rows whose key ``ranked`` lacks are dropped; two rows with one key keep the order they
    came in. The rows are spilled by ranges of ``bucket_rows`` ranks and each range is
    sorted alone, so this holds one range, never all the rows; it yields one table a range.
    """
    import pyarrow.compute as pc

    spill = Spill(folder, f"ranked-{key}", num_buckets(len(ranked), bucket_rows))
    try:
        for batch in batches:
            rank = pc.index_in(batch[key], value_set=ranked)
            keep = pc.is_valid(rank)
            rows, rank = batch.filter(keep), rank.filter(keep)
            rows = rows.append_column("_rank", rank.cast("int64"))
            spill.add(rows, rank.to_numpy(zero_copy_only=False) // bucket_rows)
        for table in spill.drain():
            if len(table):
                yield table.take(pc.sort_indices(table["_rank"])).drop_columns(["_rank"])
    finally:
        spill.close()
