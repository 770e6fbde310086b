"""Every kind of bad row we could think of, through the rules and through the real Spark ingest.

One input file per case (an anchor row that is good + the case's rows), so each quarantine row
and each document is traced back to its case by ``source_file``. The Spark test checks the
reasons of every case, the raw text kept for each rejected row, and rows in = rows out +
quarantined, from ``_stats.json`` and from the committed Parquet.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jobs.ingest import rules
from jobs.ingest.rules import Fields, parse_line

SNAP = "snap-bad"
MAX_TEXT_CHARS = 500
MAX_LINE_BYTES = 1_000_000
FIELDS = Fields(max_text_chars=MAX_TEXT_CHARS, max_line_bytes=MAX_LINE_BYTES)


def jl(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


@dataclass(frozen=True)
class Case:
    """One input file: ``lines`` after a good anchor row, or a Parquet ``table`` (column dict).

    ``reasons``: the quarantine reasons its rows get; ``docs``: documents it yields besides the
    anchor; ``blank``: blank lines in it (neither input rows nor quarantined).
    """

    name: str
    lines: tuple[bytes, ...] = ()
    reasons: tuple[str, ...] = ()
    docs: int = 0
    blank: int = 0
    ext: str = "jsonl"
    table: dict = field(default_factory=dict)
    body: bytes | None = None  # the file's bytes as they are (overrides lines)


R = rules
DEEP_ARRAY = b"[" * 300_000 + b"]" * 300_000  # the RecursionError row
DEEP_OBJECT = b'{"text": "Deep.", "m": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}"
LONG_LINE = jl({"id": "long", "text": "y" * 1_100_000})  # over max_line_bytes (and max_text)
IDS = (7, 7.5, True, False, "", None, [1, "a"], {"k": "v"}, "  ", -0, 1e2)

CASES = [
    # lone surrogates: in the id (the UnicodeEncodeError), the text, keys, meta
    Case(
        "id-list-lone-surrogate", (b'{"id": ["\\ud800"], "text": "Fine text."}',), (R.INVALID_ID,)
    ),
    Case("id-str-lone-surrogate", (b'{"id": "a\\udc00", "text": "Fine text."}',), (R.INVALID_ID,)),
    Case("id-dict-surrogate-key", (b'{"id": {"\\ud800": 1}, "text": "Fine."}',), (R.INVALID_ID,)),
    Case("text-lone-surrogate", (b'{"id": "s", "text": "bad \\ud800 text"}',), (R.INVALID_UTF8,)),
    Case("key-lone-surrogate", (b'{"k\\ud800": "v", "text": "Key text."}',), docs=1),
    Case(
        "meta-url-source-surrogates",
        (b'{"lang": "e\\ud800n", "url": "u\\udfff", "source": "s\\ud800", "text": "Meta."}',),
        docs=1,
    ),
    Case("nested-meta-surrogate", (b'{"info": {"a": ["\\ud800"]}, "text": "Nested."}',), docs=1),
    Case("surrogate-pair-is-fine", (b'{"text": "emoji \\ud83d\\ude00"}',), docs=1),
    # bytes that are not UTF-8
    Case("invalid-utf8-byte", (b'{"text": "bad \xff byte"}',), (R.INVALID_UTF8,)),
    Case("cesu-surrogate-bytes", (b'{"text": "cesu \xed\xa0\x80"}',), (R.INVALID_UTF8,)),
    Case("overlong-utf8", (b'{"text": "over \xc0\xaf long"}',), (R.INVALID_UTF8,)),
    Case("latin1-line", (b'{"text": "caf\xe9"}',), (R.INVALID_UTF8,)),
    # NUL and other control characters
    Case("nul-byte-in-text", (b'{"text": "nul \x00 byte"}',), (R.NUL_IN_TEXT,)),
    Case("nul-escape-in-text", (b'{"text": "nul \\u0000 escape"}',), (R.NUL_IN_TEXT,)),
    Case("nul-bytes-line", (b"\x00" * 64,), (R.MALFORMED_JSON,)),
    Case("control-chars", (b'{"text": "bell \\u0007 esc \\u001b[31m ff \x0c end"}',), docs=1),
    Case("raw-tab-in-string", (b'{"text": "tab\there"}',), docs=1),
    Case("line-separators", ('{"text": "ls \u2028 ps \u2029 nel \u0085 end"}'.encode(),), docs=1),
    # line framing: BOM, CRLF, a raw CR inside a string, empty and blank lines
    Case("bom-line", (b'\xef\xbb\xbf{"text": "BOM text."}',), docs=1),
    Case(
        "crlf-lines",
        body=b'{"id": "anchor", "text": "Anchor row."}\r\n{"text": "CRLF two."}\r\n\r\n',
        docs=1,
        blank=1,
    ),
    Case("raw-cr-in-string", (b'{"text": "one\rtwo"}',), docs=1),
    Case("empty-and-blank-lines", (b"", b"   \t ", b"\xef\xbb\xbf"), blank=3),
    # the text: blank, wrong type, absent
    Case("whitespace-text", (b'{"text": " \\n\\t "}',), (R.EMPTY_TEXT,)),
    Case("text-number", (b'{"text": 42}',), (R.NON_STRING_TEXT,)),
    Case("text-list", (b'{"text": ["a"]}',), (R.NON_STRING_TEXT,)),
    Case("text-object", (b'{"text": {"a": "b"}}',), (R.NON_STRING_TEXT,)),
    Case("text-bool", (b'{"text": true}',), (R.NON_STRING_TEXT,)),
    Case("text-null", (b'{"text": null}',), (R.MISSING_TEXT,)),
    Case("text-missing", (b'{"title": "no text"}',), (R.MISSING_TEXT,)),
    Case("empty-object", (b"{}",), (R.MISSING_TEXT,)),
    Case("text-key-other-case", (b'{"Text": "Wrong case."}',), (R.MISSING_TEXT,)),
    Case("text-too-long", (jl({"text": "x" * (MAX_TEXT_CHARS + 1)}),), (R.TEXT_TOO_LONG,)),
    # duplicate keys: ambiguous for the keys that shape the row, last-wins for the others
    Case("duplicate-text-key", (b'{"text": "first", "text": "second"}',), (R.DUPLICATE_KEY,)),
    Case("duplicate-id-key", (b'{"id": 1, "id": 2, "text": "Dup."}',), (R.DUPLICATE_KEY,)),
    Case("duplicate-meta-key", (b'{"lang": "en", "lang": "de", "text": "Dup meta."}',), docs=1),
    # JSON that is not one object
    Case("json-array", (b"[1, 2, 3]",), (R.NOT_AN_OBJECT,)),
    Case("json-string", (b'"just a string"',), (R.NOT_AN_OBJECT,)),
    Case("json-number", (b"42",), (R.NOT_AN_OBJECT,)),
    Case("json-null", (b"null",), (R.NOT_AN_OBJECT,)),
    Case("truncated-json", (b'{"id": "t", "text": "trunc',), (R.MALFORMED_JSON,)),
    Case("trailing-garbage", (b'{"text": "Fine."} trailing',), (R.MALFORMED_JSON,)),
    Case("two-objects-one-line", (b'{"text": "a"}{"text": "b"}',), (R.MALFORMED_JSON,)),
    Case("python-repr", (b"{'text': 'single quotes'}",), (R.MALFORMED_JSON,)),
    Case("trailing-comma", (b'{"text": "a",}',), (R.MALFORMED_JSON,)),
    # decoder limits: nesting (the RecursionError), Python's int-string limit
    Case("deep-nesting-array", (DEEP_ARRAY,), (R.NESTING_TOO_DEEP,)),
    Case("deep-nesting-in-object", (DEEP_OBJECT,), (R.NESTING_TOO_DEEP,)),
    Case(
        "huge-int-meta", (b'{"text": "Huge.", "n": ' + b"9" * 5000 + b"}",), (R.NUMBER_TOO_LARGE,)
    ),
    Case("huge-int-id", (b'{"id": ' + b"1" * 5000 + b', "text": "Id."}',), (R.NUMBER_TOO_LARGE,)),
    Case(
        "nan-infinity-literals",
        (b'{"text": "NaN row.", "a": NaN, "b": Infinity, "c": -Infinity, "d": 1e999}',),
        docs=1,
    ),
    # a line over ingest.max_line_bytes: quarantined before it is parsed
    Case("line-too-long", (LONG_LINE,), (R.LINE_TOO_LONG,)),
    # ids of every type, and ids that collide
    Case(
        "ids-of-every-type",
        tuple(jl({"id": v, "text": f"Id of type {i}."}) for i, v in enumerate(IDS)),
        docs=len(IDS),
    ),
    Case(
        "id-int-and-string-collide",
        (b'{"id": 5, "text": "A."}', b'{"id": "5", "text": "B."}'),
        (R.DUPLICATE_ID,),
        docs=1,
    ),
    Case(
        "duplicate-text-no-id", (b'{"text": "Same."}', b'{"text": " Same. "}'), (R.DUPLICATE_ID,), 1
    ),
    # the same kinds inside a gzip file
    Case(
        "gzip-bad-rows",
        (b'{"id": ["\\ud800"], "text": "x"}', DEEP_ARRAY, b'{"text": 1}', b""),
        (R.INVALID_ID, R.NESTING_TOO_DEEP, R.NON_STRING_TEXT),
        blank=1,
        ext="jsonl.gz",
    ),
    # Parquet: odd column names, the text column missing or of another type
    Case(
        "pq-dotted-and-case-columns",
        table={
            "id": ["anchor", "d1"],
            "text": ["Anchor.", "Dotted text."],
            "Text": ["Title", "Title 2"],
            "meta.lang": ["en", "de"],
            "a b": ["s", "t"],
            "we`ird": ["w", "x"],
        },
        docs=1,
        ext="parquet",
    ),
    Case(
        "pq-text-column-named-Text",
        table={"id": ["1"], "Text": ["x"]},
        reasons=(R.MISSING_TEXT_COLUMN,),
        ext="parquet",
    ),
    Case(
        "pq-int-text-column",
        table={"id": ["i1"], "text": [1]},
        reasons=(R.NON_STRING_TEXT,),
        ext="parquet",
    ),
    Case(
        "pq-binary-text",
        table={"id": ["anchor", "b"], "text": [b"Anchor.", b"bad \xff"]},
        reasons=(R.INVALID_UTF8,),
        ext="parquet",
    ),
    Case(
        "pq-null-text",
        table={"id": ["anchor", "n"], "text": ["Anchor.", None]},
        reasons=(R.MISSING_TEXT,),
        ext="parquet",
    ),
    Case(
        "pq-nanosecond-timestamp",
        table={"id": ["anchor"], "text": ["Timestamp row."], "ts": [datetime.datetime(2020, 1, 1)]},
        ext="parquet",
    ),
    Case(
        "pq-long-row",
        table={"id": ["anchor", "z"], "text": ["Anchor.", "z" * 1_100_000]},
        reasons=(R.LINE_TOO_LONG,),
        ext="parquet",
    ),
]


def _file_name(case: Case) -> str:
    return f"{case.name}.{case.ext}"


def _anchor(case: Case) -> bytes:
    return jl({"id": "anchor", "text": f"Anchor row of {case.name}."})


def _anchors(case: Case) -> int:
    """The good anchor rows in the case's file."""
    if case.ext == "parquet":
        return case.table["id"].count("anchor")
    return 1 if case.body is None else case.body.count(b'"id": "anchor"')


def _write_case(folder: Path, case: Case) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = folder / _file_name(case)
    if case.ext == "parquet":
        columns = {}
        for name, values in case.table.items():
            if name == "ts":
                columns[name] = pa.array(values, pa.timestamp("ns"))
            elif values and isinstance(values[0], bytes):
                columns[name] = pa.array(values, pa.binary())
            else:
                columns[name] = pa.array(values)
        pq.write_table(pa.table(columns), path)
        return
    body = case.body
    if body is None:
        body = b"\n".join((_anchor(case), *case.lines)) + b"\n"
    path.write_bytes(gzip.compress(body, mtime=0) if case.ext.endswith(".gz") else body)


def _expected_raw(line: bytes) -> str:
    """What ``raw`` holds for a rejected line: its text (lossy), without BOM/CR, truncated."""
    if len(line) > MAX_LINE_BYTES:
        line = line[: rules.LONG_LINE_PREFIX_BYTES]
    text = line.decode("utf-8", "replace").lstrip("\ufeff").removesuffix("\r")
    return text[: rules.RAW_MAX_CHARS]


def test_cases_cover_at_least_25_kinds():
    assert len({c.name for c in CASES}) == len(CASES) >= 25
    assert len({r for c in CASES for r in c.reasons}) >= 14


# -- the pure rules: one line in, one reason out, never an exception ---------------------------

_SINGLE = [c for c in CASES if c.ext == "jsonl" and len(c.lines) == 1 and c.body is None]


@pytest.mark.parametrize("case", _SINGLE, ids=[c.name for c in _SINGLE])
def test_parse_line_gives_the_case_reason(case):
    (line,) = case.lines
    row = parse_line(line, f"file:///c/{_file_name(case)}", FIELDS)
    assert row["reason"] == (case.reasons[0] if case.reasons else None), row
    if row["reason"] is not None:
        assert row["raw"] == _expected_raw(line)
    for value in (row.get("text"), row.get("url"), row.get("source"), *(row.get("meta") or {})):
        if isinstance(value, str):
            value.encode("utf-8")  # nothing that leaves the parser holds a lone surrogate


def test_any_exception_becomes_a_parse_error_row(monkeypatch):
    def boom(*args, **kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr(rules, "normalise_text", boom)
    row = parse_line(b'{"text": "ok"}', "file:///c/a.jsonl", FIELDS)
    assert row["reason"] == "parse_error:KeyError" and row["raw"] == '{"text": "ok"}'


def test_make_doc_id_never_raises_on_lone_surrogates():
    assert rules.make_doc_id("s\ud800", "\udc00", "") != rules.make_doc_id("s\ud800", "\udc01", "")


def test_a_long_line_is_judged_by_its_length_not_its_bytes_in_hand():
    prefix = LONG_LINE[: rules.LONG_LINE_PREFIX_BYTES]
    row = parse_line(prefix, "file:///c/a.jsonl", FIELDS, num_bytes=len(LONG_LINE))
    assert row["reason"] == rules.LINE_TOO_LONG and row["raw"] == _expected_raw(LONG_LINE)


# -- the Spark side ----------------------------------------------------------------------------


def test_long_lines_reach_python_as_a_bounded_prefix(spark, tmp_path):
    from jobs.ingest import reader

    (tmp_path / "a.jsonl").write_bytes(b'{"text": "short"}\n' + LONG_LINE + b"\n")
    rows = reader.read_json_lines(spark, [f"file://{tmp_path}/a.jsonl"], MAX_LINE_BYTES).collect()
    got = sorted((len(r.line), r.num_bytes) for r in rows)
    assert got == [(17, 17), (rules.LONG_LINE_PREFIX_BYTES, len(LONG_LINE))]


def _run_ingest(make_config, tmp_path: Path, *extra: str) -> int:
    from jobs.ingest.ingest import main

    root = make_config().storage.root_uri
    argv = ["--snapshot", SNAP, "--attempt", "1", "--set", f'storage.root_uri="{root}"']
    sets = (
        f"ingest.max_text_chars={MAX_TEXT_CHARS}",
        f"ingest.max_line_bytes={MAX_LINE_BYTES}",
        "spark.shuffle_partitions=2",
        *extra,
    )
    for item in sets:
        argv += ["--set", item]
    return main(argv)


def sha1(s: str) -> str:
    return hashlib.sha1(s.encode()).hexdigest()


def test_bad_row_snapshot_ingests_with_every_row_accounted_for(spark, make_config, tmp_path):
    folder = tmp_path / "data" / "corpus" / SNAP
    folder.mkdir(parents=True)
    for case in CASES:
        _write_case(folder, case)
    assert _run_ingest(make_config, tmp_path, 'ingest.on_corrupt_file="quarantine"') == 0

    run = tmp_path / "data" / "runs" / SNAP
    docs = spark.read.parquet(f"file://{run}/documents_raw").collect()
    quarantine = spark.read.parquet(f"file://{run}/quarantine/ingest").collect()
    stats = json.loads((run / "documents_raw" / "_stats.json").read_text())
    by_name = {f"file://{folder}/{_file_name(c)}": c for c in CASES}
    docs_per_file = Counter(d.meta["source_file"] for d in docs)
    reasons_per_file: dict[str, Counter] = {}
    for q in quarantine:
        assert q.source_file in by_name, q.source_file
        reasons_per_file.setdefault(q.source_file, Counter())[q.reason] += 1

    for uri, case in by_name.items():
        got = (docs_per_file.get(uri, 0), reasons_per_file.get(uri, Counter()))
        assert got == (_anchors(case) + case.docs, Counter(case.reasons)), case.name

    # raw keeps the rejected line's text (bounded); a whole-file row keeps the error
    for q in quarantine:
        case = by_name[q.source_file]
        if q.reason == R.MISSING_TEXT_COLUMN:
            assert "has no 'text' column" in q.raw and "'Text'" in q.raw and "corrupt" not in q.raw
        elif case.ext in ("jsonl", "jsonl.gz") and q.reason != R.DUPLICATE_ID:
            assert q.raw in {_expected_raw(line) for line in case.lines}, case.name
        assert len(q.raw) <= rules.RAW_MAX_CHARS and q.stage == "ingest"

    expected = Counter(r for c in CASES for r in c.reasons)
    assert stats["quarantined_by_reason"] == dict(sorted(expected.items()))
    assert stats["rows_in"] == stats["rows_out"] + stats["rows_quarantined"]
    assert (stats["rows_out"], stats["rows_quarantined"]) == (len(docs), len(quarantine))
    assert stats["blank_lines"] == sum(c.blank for c in CASES)
    assert [f["file"] for f in stats["wrong_schema_files"]] == [
        f"file://{folder}/pq-text-column-named-Text.parquet"
    ]

    meta = {
        d.meta["source_file"].rsplit("/", 1)[-1]: d for d in docs if d.meta.get("id") != "anchor"
    }
    assert meta["key-lone-surrogate.jsonl"].meta["k\ufffd"] == "v"
    odd = meta["meta-url-source-surrogates.jsonl"]
    assert (odd.meta["lang"], odd.url, odd.source) == ("e\ufffdn", "u\ufffd", "s\ufffd")
    assert meta["surrogate-pair-is-fine.jsonl"].text == "emoji \U0001f600"
    assert meta["raw-cr-in-string.jsonl"].text == "one\ntwo"
    assert meta["duplicate-meta-key.jsonl"].meta["lang"] == "de"
    nan = meta["nan-infinity-literals.jsonl"].meta
    assert (nan["a"], nan["b"], nan["c"], nan["d"]) == ("NaN", "Infinity", "-Infinity", "Infinity")
    dotted = meta["pq-dotted-and-case-columns.parquet"]
    assert dotted.text == "Dotted text." and dotted.doc_id == sha1("pq-dotted-and-case-columns:d1")
    assert {k: dotted.meta[k] for k in ("Text", "meta.lang", "a b", "we`ird")} == {
        "Text": "Title 2", "meta.lang": "de", "a b": "t", "we`ird": "x"}  # fmt: skip
    ts = next(d for d in docs if d.text == "Timestamp row.")
    assert ts.meta["ts"] == str(1_577_836_800 * 10**9)  # epoch nanoseconds, not "corrupt"
