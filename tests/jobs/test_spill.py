"""jobs.spill: rows spilled by bucket, read back in the order they came, and ranked rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from jobs.spill import Spill, hash_buckets, in_rank_order, num_buckets


def test_a_bucket_reads_back_its_rows_in_the_order_they_were_added(tmp_path):
    spill = Spill(tmp_path, "t", 3)
    spill.add(pa.table({"k": ["a", "b", "c", "d"], "v": [1, 2, 3, 4]}), np.array([2, 0, 2, 0]))
    spill.add(pa.table({"k": ["e", "f"], "v": [5, 6]}), np.array([0, 2]))
    assert spill.rows == 6
    with pytest.raises(RuntimeError, match="close the spill"):
        spill.read(0)
    tables = list(spill.drain())
    assert [t.to_pydict() for t in tables] == [
        {"k": ["b", "d", "e"], "v": [2, 4, 5]},
        {"k": [], "v": []},  # a bucket no row went to: empty, with the columns
        {"k": ["a", "c", "f"], "v": [1, 3, 6]},
    ]
    assert not any(p.exists() for p in spill.paths)  # each file goes once read


def test_later_tables_take_the_first_tables_schema(tmp_path):
    spill = Spill(tmp_path, "t", 1)
    spill.add(pa.table({"v": pa.array([1], pa.int64())}), np.array([0]))
    spill.add(pa.table({"v": pa.array([2], pa.int32())}), np.array([0]))
    spill.add(pa.table({"v": pa.array([], pa.int64())}), np.array([], dtype=np.int64))
    (table,) = spill.drain()
    assert table.schema.field("v").type == pa.int64() and table["v"].to_pylist() == [1, 2]


def test_hash_buckets_are_stable_spread_and_read_slices_right():
    keys = pa.array(["d-1", "d-2", None, "ünïcode", "d-1", ""])
    buckets = hash_buckets(keys, 7)
    assert buckets.tolist() == hash_buckets(keys, 7).tolist()
    assert buckets[0] == buckets[4] and buckets[2] == buckets[5]  # null as the empty key
    assert all(0 <= b < 7 for b in buckets)
    many = pa.array([f"doc-{i:07d}" for i in range(50_000)])
    spread = np.bincount(hash_buckets(many, 10), minlength=10)
    assert spread.min() > 4_500 and spread.max() < 5_500  # about 5,000 each
    # A slice, a chunked array and a large_string array hash as their plain copy does.
    whole = hash_buckets(many, 10)
    assert hash_buckets(many.slice(123, 40), 10).tolist() == whole[123:163].tolist()
    chunked = pa.chunked_array([many.slice(0, 10), many.slice(10, 20)])
    assert hash_buckets(chunked, 10).tolist() == whole[:30].tolist()
    assert hash_buckets(many.cast(pa.large_string()), 10).tolist() == whole.tolist()
    assert hash_buckets(pa.array([], pa.string()), 3).tolist() == []


def test_num_buckets():
    assert [num_buckets(n, 10) for n in (0, 1, 10, 11, 95)] == [1, 1, 1, 2, 10]


@pytest.mark.parametrize("bucket_rows", [1, 2, 3, 100])
def test_in_rank_order_puts_rows_in_the_ranked_order_whatever_the_buckets(tmp_path, bucket_rows):
    rng = np.random.default_rng(5)
    ids = [f"d{i:03d}" for i in range(60)]
    ranked = pa.array([ids[i] for i in rng.permutation(60)[:40]])  # 20 ids are not ranked
    order = rng.permutation(60)
    batches = [
        pa.RecordBatch.from_pydict(
            {"doc_id": [ids[i] for i in chunk], "text": [f"text of {ids[i]}" for i in chunk]}
        )
        for chunk in np.array_split(order, 7)
    ]
    tables = list(in_rank_order(batches, "doc_id", ranked, tmp_path, bucket_rows))
    rows = [r for t in tables for r in t.to_pylist()]
    assert [r["doc_id"] for r in rows] == ranked.to_pylist()
    assert all(r["text"] == f"text of {r['doc_id']}" for r in rows)
    assert all(len(t) <= bucket_rows for t in tables)  # one rank range a table
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_in_rank_order_keeps_two_rows_of_one_key_in_arrival_order(tmp_path):
    batches = [
        pa.RecordBatch.from_pydict({"doc_id": ["b", "a"], "n": [1, 2]}),
        pa.RecordBatch.from_pydict({"doc_id": ["a", "c"], "n": [3, 4]}),
    ]
    tables = list(in_rank_order(batches, "doc_id", pa.array(["a", "b"]), tmp_path, 1))
    assert [r for t in tables for r in t.to_pylist()] == [
        {"doc_id": "a", "n": 2},
        {"doc_id": "a", "n": 3},
        {"doc_id": "b", "n": 1},
    ]
