"""Ingest: pure rules on literal bytes, then the Spark job on a tiny real snapshot."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from jobs.ingest import rules
from jobs.ingest.rules import Fields, IngestInputError, parse_line

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ingest"
SNAP = "snap-a"
FILE = "file:///data/corpus/snap-a/part-1.jsonl.gz"


def sha1(s: str) -> str:
    return hashlib.sha1(s.encode()).hexdigest()


def jl(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


# -- rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"id": 1, "text": "unterminated', rules.MALFORMED_JSON),
        (b"[1, 2, 3]", rules.NOT_AN_OBJECT),
        (b'{"text": "bad \xff\xfe byte"}', rules.INVALID_UTF8),
        (b'{"text": "lone \\ud800 surrogate"}', rules.INVALID_UTF8),
        (b'{"id": "x", "title": "no text"}', rules.MISSING_TEXT),
        (b'{"id": "x", "text": null}', rules.MISSING_TEXT),
        (b'{"text": " \\r\\n\\t "}', rules.EMPTY_TEXT),
        (b'{"text": 42}', rules.NON_STRING_TEXT),
        (b'{"text": ["a"]}', rules.NON_STRING_TEXT),
        (b'{"text": "' + b"y" * 11 + b'"}', rules.TEXT_TOO_LONG),
        (b"   ", rules.BLANK),
    ],
)
def test_parse_line_rejects_with_exact_reason(line, reason):
    row = parse_line(line, FILE, Fields(max_text_chars=10))
    assert row["reason"] == reason
    assert row["raw"] == line.decode("utf-8", "replace")


def test_parse_line_normalises_a_good_row():
    line = jl(
        {
            "id": "g1",
            "text": "  a\r\nb\rc  ",
            "url": "u",
            "source": "wiki",
            "n": 3,
            "ok": True,
            "tags": ["t"],
            "none": None,
        }
    )
    row = parse_line(b"\xef\xbb\xbf" + line, FILE, Fields())  # a BOM is not invalid input
    assert row["reason"] is None
    assert row["text"] == "a\nb\nc" and row["num_chars"] == 5
    assert row["doc_id"] == sha1("wiki:g1")
    assert (row["url"], row["source"]) == ("u", "wiki")
    assert row["meta"] == {"id": "g1", "n": "3", "ok": "true", "source_file": FILE}


def test_doc_id_without_id_or_source_uses_text_and_file_stem():
    row = parse_line(jl({"text": " same text "}), FILE, Fields())
    assert row["doc_id"] == sha1("same text") and row["source"] == "part-1"
    numeric = parse_line(jl({"id": 7, "text": "t"}), FILE, Fields())
    assert numeric["doc_id"] == sha1("part-1:7")
    custom = parse_line(jl({"key": "k", "body": "t"}), FILE, Fields(text="body", id="key"))
    assert custom["reason"] is None and custom["doc_id"] == sha1("part-1:k")


def test_genuine_replacement_character_is_valid_text():
    row = parse_line(jl({"text": "caf\u00e9 \ufffd"}), FILE, Fields())
    assert row["reason"] is None and row["text"] == "caf\u00e9 \ufffd"


def test_raw_is_truncated():
    row = parse_line(b"{" + b"x" * 20_000, FILE, Fields())
    assert row["reason"] == rules.MALFORMED_JSON and len(row["raw"]) == rules.RAW_MAX_CHARS


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("a.jsonl", True),
        ("sub/b.jsonl.gz", True),
        ("c.parquet", True),
        ("_corpus.json", False),
        ("_x.jsonl", False),
        (".hidden.jsonl", False),
        ("_tmp/a.jsonl", False),
        ("n.txt", False),
    ],
)
def test_is_input_file(path, ok):
    assert rules.is_input_file(path) is ok


def test_spark_path_to_uri():
    assert rules.spark_path_to_uri("file:/tmp/a%20b.jsonl") == "file:///tmp/a b.jsonl"
    assert rules.spark_path_to_uri("file:///tmp/x.jsonl") == "file:///tmp/x.jsonl"
    assert rules.spark_path_to_uri("s3a://bkt/k/x.parquet") == "s3://bkt/k/x.parquet"


# -- the Spark job -----------------------------------------------------------------------------


def _corpus(tmp_path: Path, snapshot: str = SNAP) -> Path:
    folder = tmp_path / "data" / "corpus" / snapshot
    folder.mkdir(parents=True)
    return folder


def _write_snapshot(folder: Path) -> None:
    """3 good rows (fixture) + every bad kind + a second gzip file + a Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    bad = [
        b'{"id": "m1", "text": "broken',
        b'{"id": "u1", "text": "bad \xff byte"}',
        jl({"id": "t0", "title": "no text field"}),
        jl({"id": "e1", "text": "   \n  "}),
        jl({"id": "n1", "text": 42}),
        jl({"id": "l1", "text": "x" * 60}),
        jl({"id": "g1", "text": "second copy", "source": "wiki"}),
        b"",
    ]
    good = (FIXTURES / "good.jsonl").read_bytes()
    (folder / "a.jsonl").write_bytes(good + b"\n".join(bad) + b"\n")
    b_rows = [
        jl({"id": "g1", "text": "third copy", "source": "wiki"}),
        jl({"id": 10, "text": "Num id"}),
    ]
    (folder / "b.jsonl.gz").write_bytes(gzip.compress(b"\n".join(b_rows) + b"\n", mtime=0))
    table = pa.table({"id": ["p1", "p2"], "text": ["Parquet text one", None]})
    pq.write_table(table, folder / "c.parquet")
    (folder / "_corpus.json").write_text("{}")
    (folder / ".hidden.jsonl").write_text("not json")
    (folder / "notes.txt").write_text("ignored")


def _run(make_config, attempt: str, *extra: str) -> int:
    from jobs.ingest.ingest import main

    cfg = make_config()
    root = cfg.storage.root_uri
    argv = ["--snapshot", SNAP, "--attempt", attempt, "--set", f'storage.root_uri="{root}"']
    for item in ("ingest.max_text_chars=50", "spark.shuffle_partitions=2", *extra):
        argv += ["--set", item]
    return main(argv)


def _read(spark, folder: Path):
    return spark.read.parquet(f"file://{folder}")


def test_ingest_end_to_end(spark, make_config, tmp_path):
    _write_snapshot(_corpus(tmp_path))
    assert _run(make_config, "1") == 0
    run = tmp_path / "data" / "runs" / SNAP
    docs_dir, q_dir = run / "documents_raw", run / "quarantine" / "ingest"
    for d in (docs_dir, q_dir):
        assert {"_SUCCESS", "_manifest.json", "_stats.json"} <= {p.name for p in d.iterdir()}
        assert not (d / "_tmp").exists()

    docs = {r.doc_id: r for r in _read(spark, docs_dir).collect()}
    assert docs[sha1("wiki:g1")].text == "Integrate x squared\nfrom 0 to 1."  # first copy kept
    assert docs[sha1("wiki:g1")].url == "https://example.org/g1"
    assert docs[sha1("wiki:g1")].meta["lang"] == "en" and docs[sha1("wiki:g1")].meta["score"] == "3"
    assert docs[sha1("A text without an id.")].source == "a"
    assert docs[sha1("a:g3")].text == "caf\u00e9 \ufffd kept"
    assert docs[sha1("b:10")].num_chars == 6
    assert docs[sha1("c:p1")].text == "Parquet text one"
    assert len(docs) == 5 and {r.snapshot for r in docs.values()} == {SNAP}

    q = _read(spark, q_dir).collect()
    reasons = sorted(r.reason for r in q)
    assert reasons == sorted(
        [
            "malformed_json",
            "invalid_utf8",
            "missing_text",
            "missing_text",
            "empty_text",
            "non_string_text",
            "text_too_long",
            "duplicate_id",
            "duplicate_id",
        ]
    )
    dups = [r for r in q if r.reason == "duplicate_id"]
    assert {r.doc_id for r in dups} == {sha1("wiki:g1")}
    assert {r.raw for r in dups} == {
        jl({"id": "g1", "text": t, "source": "wiki"}).decode()
        for t in ("second copy", "third copy")
    }
    bad_utf8 = next(r for r in q if r.reason == "invalid_utf8")
    assert bad_utf8.raw == '{"id": "u1", "text": "bad \ufffd byte"}'
    assert bad_utf8.source_file == f"file://{tmp_path}/data/corpus/{SNAP}/a.jsonl"
    assert {r.stage for r in q} == {"ingest"}
    assert any(r.reason == "missing_text" and r.source_file.endswith("c.parquet") for r in q)

    stats = json.loads((docs_dir / "_stats.json").read_text())
    assert (stats["rows_in"], stats["rows_out"], stats["rows_quarantined"]) == (14, 5, 9)
    assert stats["quarantined_by_reason"] == {
        "duplicate_id": 2,
        "empty_text": 1,
        "invalid_utf8": 1,
        "malformed_json": 1,
        "missing_text": 2,
        "non_string_text": 1,
        "text_too_long": 1,
    }
    assert stats["blank_lines"] == 1 and stats["files"] == 3
    assert stats["rows_in"] == len(docs) + len(q)  # balance, from the committed Parquet too
    manifest = json.loads((docs_dir / "_manifest.json").read_text())
    assert [Path(u).name for u in manifest["inputs"]] == ["a.jsonl", "b.jsonl.gz", "c.parquet"]

    # A rerun (next attempt) replaces the outputs: same ids, no duplicated rows.
    assert _run(make_config, "2") == 0
    again = _read(spark, docs_dir).collect()
    assert sorted(r.doc_id for r in again) == sorted(docs)
    assert _read(spark, q_dir).count() == 9


def test_corrupt_gzip_names_the_file(spark, make_config, tmp_path):
    folder = _corpus(tmp_path)
    shutil.copy(FIXTURES / "good.jsonl", folder / "a.jsonl")
    (folder / "broken.jsonl.gz").write_bytes(gzip.compress(b'{"text": "x"}\n' * 50)[:-12])
    with pytest.raises(IngestInputError, match=r"corrupt input file .*broken\.jsonl\.gz"):
        _run(make_config, "1")
    assert not (tmp_path / "data" / "runs" / SNAP / "documents_raw" / "_SUCCESS").exists()


def test_json_file_without_text_field_names_the_file(spark, make_config, tmp_path):
    folder = _corpus(tmp_path)
    shutil.copy(FIXTURES / "good.jsonl", folder / "a.jsonl")
    (folder / "wrong.jsonl").write_bytes(jl({"id": 1, "body": "x"}) + b"\n" + jl({"body": "y"}))
    with pytest.raises(IngestInputError, match=r"wrong schema: no row of .*wrong\.jsonl"):
        _run(make_config, "1")


def test_parquet_without_text_column_names_the_file(spark, make_config, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = _corpus(tmp_path)
    pq.write_table(pa.table({"id": ["1"], "Text": ["x"]}), folder / "notext.parquet")
    with pytest.raises(IngestInputError, match=r"notext\.parquet has no 'text' column") as info:
        _run(make_config, "1")
    message = str(info.value)  # the columns it found, and no claim that the file is corrupt
    assert "columns found: ['id', 'Text']" in message and "did you mean 'Text'" in message
    assert "corrupt" not in message


def test_unreadable_parquet_names_the_file(spark, make_config, tmp_path):
    (_corpus(tmp_path) / "junk.parquet").write_bytes(b"PAR1 this is not parquet")
    pattern = r"corrupt input file .*junk\.parquet: cannot read parquet"
    with pytest.raises(rules.CorruptFileError, match=pattern) as info:
        _run(make_config, "1", 'ingest.on_corrupt_file="fail"')
    assert info.value.uri == f"file://{tmp_path}/data/corpus/{SNAP}/junk.parquet"


def _write_corrupt_snapshot(folder: Path) -> dict[str, str]:
    """good.jsonl (3 rows), a truncated gzip and a truncated Parquet file, by name -> URI."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copy(FIXTURES / "good.jsonl", folder / "a.jsonl")
    (folder / "broken.jsonl.gz").write_bytes(gzip.compress(b'{"text": "x"}\n' * 50)[:-12])
    pq.write_table(pa.table({"text": ["lost"] * 20}), folder / "cut.parquet")
    data = (folder / "cut.parquet").read_bytes()
    (folder / "cut.parquet").write_bytes(data[: len(data) // 2])
    return {p.name: f"file://{p}" for p in folder.iterdir()}


def test_corrupt_files_fail_the_job_by_default(spark, make_config, tmp_path):
    _write_corrupt_snapshot(_corpus(tmp_path))
    with pytest.raises(rules.CorruptFileError, match=r"corrupt input file .*cut\.parquet"):
        _run(make_config, "1")
    assert not (tmp_path / "data" / "runs" / SNAP / "documents_raw" / "_SUCCESS").exists()


def test_corrupt_files_are_quarantined_under_the_quarantine_policy(spark, make_config, tmp_path):
    uris = _write_corrupt_snapshot(_corpus(tmp_path))
    assert _run(make_config, "1", 'ingest.on_corrupt_file="quarantine"') == 0
    run = tmp_path / "data" / "runs" / SNAP
    docs = _read(spark, run / "documents_raw").collect()
    assert sorted(r.doc_id for r in docs) == sorted(
        [sha1("wiki:g1"), sha1("A text without an id."), sha1("a:g3")]
    )
    q = sorted(_read(spark, run / "quarantine" / "ingest").collect(), key=lambda r: r.source_file)
    assert [(r.reason, r.source_file) for r in q] == [
        ("unreadable_file", uris["broken.jsonl.gz"]),
        ("unreadable_file", uris["cut.parquet"]),
    ]
    assert all(r.raw and r.stage == "ingest" and r.snapshot == SNAP for r in q)
    stats = json.loads((run / "documents_raw" / "_stats.json").read_text())
    assert (stats["rows_in"], stats["rows_out"], stats["rows_quarantined"]) == (5, 3, 2)
    assert stats["rows_in"] == len(docs) + len(q)
    assert stats["quarantined_by_reason"] == {"unreadable_file": 2}
    corrupt = {c["file"]: c["error"] for c in stats["corrupt_files"]}
    assert set(corrupt) == {uris["broken.jsonl.gz"], uris["cut.parquet"]}
    assert "cannot read parquet" in corrupt[uris["cut.parquet"]]
    assert corrupt[uris["broken.jsonl.gz"]] == next(r.raw for r in q if r.source_file in corrupt)
    assert stats["files"] == 1


def test_no_input_files_is_an_error(make_config, tmp_path):
    (_corpus(tmp_path) / "_corpus.json").write_text("{}")
    with pytest.raises(IngestInputError, match=r"no input files .*corpus/snap-a"):
        _run(make_config, "1")


def test_num_files_grows_with_size():
    from jobs.ingest.ingest import num_files

    assert num_files(0, 128) == 1
    assert num_files(128 * 1024 * 1024, 128) == 1
    assert num_files(128 * 1024 * 1024 + 1, 128) == 2
