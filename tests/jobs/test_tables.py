"""Plain-Python Parquet tables: round trips, Spark-style prefixes, schemas, S3."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from jobs.config import StorageConfig
from jobs.storage import Storage, join
from jobs.tables import (
    MAX_RAW_CHARS,
    PartWriter,
    iter_table_batches,
    quarantine_row,
    read_columns,
    read_table,
    schema,
    write_table,
)


@pytest.fixture
def storage():
    return Storage(StorageConfig())


def test_round_trip_with_schema_keeps_types(storage, tmp_path):
    uri = f"file://{tmp_path}/qa"
    row = {
        "question_id": "q",
        "combo_id": "l1-d",
        "level": 1,
        "question": "2+2?",
        "answer": "\\boxed{4}",
        "final_answer": "4",
        "num_tokens": 7,
        "agreement": None,
        "model": "m",
        "prompt_version": "v",
        "source_doc_ids": ["d"],
        "snapshot": "s",
    }
    written = write_table(storage, [row], uri, schema("qa"))
    assert written == join(uri, "part-00000.parquet")
    frame = read_table(storage, uri)
    assert frame.to_dict("records")[0]["num_tokens"] == 7
    assert list(frame.iloc[0]["source_doc_ids"]) == ["d"]
    import pyarrow.parquet as pq

    file_schema = pq.read_schema(written.removeprefix("file://"))
    assert file_schema.field("level").type == pa.int32()
    assert file_schema.field("source_doc_ids").type == pa.list_(pa.string())


def test_empty_rows_still_carry_the_schema(storage, tmp_path):
    uri = f"file://{tmp_path}/questions"
    write_table(storage, [], uri, schema("questions"))
    frame = read_table(storage, uri)
    assert len(frame) == 0
    assert list(frame.columns) == schema("questions").names


def test_reads_spark_style_prefix_and_skips_hidden_entries(storage, tmp_path):
    uri = f"file://{tmp_path}/documents"
    write_table(storage, [{"doc_id": "a"}], join(uri, "x=1"))
    write_table(storage, [{"doc_id": "b"}], uri)
    write_table(storage, [{"doc_id": "stale"}], join(uri, "_tmp", "1"))
    storage.write_text(join(uri, "_SUCCESS"), "")
    storage.write_json(join(uri, "_manifest.json"), {})
    frame = read_table(storage, uri, columns=["doc_id"])
    assert sorted(frame["doc_id"]) == ["a", "b"]


def test_batches_of_named_columns_hold_those_each_file_has(storage, tmp_path):
    # concepts.prepare reads fine_score, which only the refine job writes, this way.
    uri = f"file://{tmp_path}/documents"
    write_table(storage, [{"doc_id": "a", "text": "t", "fine_score": 0.5}], join(uri, "x=1"))
    write_table(storage, [{"doc_id": "b", "text": "u"}], join(uri, "x=2"))
    batches = list(iter_table_batches(storage, uri, 10, ["doc_id", "fine_score"]))
    assert [b.schema.names for b in batches] == [["doc_id", "fine_score"], ["doc_id"]]
    assert [b["doc_id"].to_pylist() for b in batches] == [["a"], ["b"]]
    table = read_columns(storage, uri, ["doc_id", "fine_score"], batch_rows=1)
    assert table.column_names == ["doc_id", "fine_score"]  # the files' columns, promoted
    assert table.to_pylist() == [
        {"doc_id": "a", "fine_score": 0.5},
        {"doc_id": "b", "fine_score": None},
    ]
    assert read_columns(storage, f"file://{tmp_path}/absent", ["doc_id"]) is None


def test_absent_prefix_gives_empty_frame_with_requested_columns(storage, tmp_path):
    frame = read_table(storage, f"file://{tmp_path}/nothing", columns=["doc_id", "text"])
    assert list(frame.columns) == ["doc_id", "text"] and len(frame) == 0


def test_corrupt_file_is_named_in_the_error(storage, tmp_path):
    uri = f"file://{tmp_path}/bad"
    storage.write_bytes(join(uri, "part-0.parquet"), b"not parquet at all")
    with pytest.raises(ValueError, match="part-0.parquet"):
        read_table(storage, uri)


def _rows(n: int, start: int = 0) -> list[dict]:
    return [quarantine_row("s", "r", {"i": i}, "snap", f"d{i:03d}") for i in range(start, n)]


def test_part_writer_writes_parts_of_at_most_a_batch_in_row_order(storage, tmp_path):
    import pyarrow.parquet as pq

    uri = f"file://{tmp_path}/q"
    writer = PartWriter(storage, uri, schema("quarantine"), batch_rows=4)
    writer.add(_rows(3))
    assert (writer.files, writer.pending) == ([], 3)
    writer.add(_rows(14, start=3))  # one add bigger than two batches
    assert (len(writer.files), writer.pending) == (3, 2)
    files = writer.close()
    assert [f.rsplit("/", 1)[1] for f in files] == [f"part-{i:05d}.parquet" for i in range(4)]
    assert [pq.ParquetFile(f[7:]).metadata.num_rows for f in files] == [4, 4, 4, 2]
    assert read_table(storage, uri).to_dict("records") == _rows(14)
    assert writer.num_rows == 14 and writer.close() == files  # closing twice writes nothing
    with pytest.raises(RuntimeError, match="closed"):
        writer.add(_rows(1))


def test_part_writer_of_one_batch_or_none_writes_what_write_table_writes(storage, tmp_path):
    import pyarrow.parquet as pq

    for n in (0, 5):
        one, many = f"file://{tmp_path}/one-{n}", f"file://{tmp_path}/many-{n}"
        write_table(storage, _rows(n), one, schema("quarantine"))
        writer = PartWriter(storage, many, schema("quarantine"), batch_rows=5)
        writer.add(_rows(n))
        assert [f.rsplit("/", 1)[1] for f in writer.close()] == ["part-00000.parquet"]
        a, b = (pq.read_table(f"{u[7:]}/part-00000.parquet") for u in (one, many))
        assert a.equals(b) and a.schema == schema("quarantine") and a.num_rows == n


def test_unknown_schema_name():
    with pytest.raises(KeyError, match="known: doc_concepts, qa, quarantine, questions"):
        schema("nope")


def test_quarantine_row_truncates_raw_json():
    row = quarantine_row(
        "questions", "unparseable", {"text": "x" * 20_000}, "s", "d", "s3://b/p/shard.jsonl"
    )
    assert len(row["raw"]) == MAX_RAW_CHARS
    assert row["raw"].startswith('{"text": "xxx')
    assert (row["source_file"], row["doc_id"], row["stage"]) == ("shard.jsonl", "d", "questions")
    small = quarantine_row("answers", "request_error", {"b": 1, "a": "é"}, "s")
    assert json.loads(small["raw"]) == {"a": "é", "b": 1}
    assert small["source_file"] is None


def test_s3_round_trip(s3_bucket):
    endpoint, bucket = s3_bucket
    st = Storage(StorageConfig(root_uri=f"s3://{bucket}", s3_endpoint_url=endpoint))
    uri = f"s3://{bucket}/runs/s/quarantine/questions"
    rows = [quarantine_row("questions", "not_suitable", {"t": "NOT SUITABLE"}, "s", "d")]
    write_table(st, rows, uri, schema("quarantine"))
    st.write_text(join(uri, "_SUCCESS"), "")
    frame = read_table(st, uri)
    assert frame.to_dict("records") == rows
