"""Spark side of ingest: find the snapshot's files and turn every input row into one parsed row.

Every input format becomes the same thing first: one *line of bytes* per input row, with the
file it came from and a sort key that reproduces the order of rows inside the file.

- JSON lines (``.jsonl``, ``.jsonl.gz``) are read with ``spark.read.text``, so a malformed
  line is a row to quarantine, not a reader error. Lines end at ``\n`` only (JSON Lines; a
  CRLF line keeps its ``\r``, which the parser drops): a raw CR inside a string, which a lax
  writer leaves unescaped, does not split a row in two. Spark keeps a string's raw bytes without
  validating them (it would only replace bad bytes with U+FFFD when a string leaves the JVM),
  so ``value.cast("binary")`` hands the Python parser the exact bytes of the line: invalid
  UTF-8 is detected by a strict decode, and a genuine U+FFFD in the text is not a false alarm.
  gzip is decoded by Hadoop's codec while streaming; a corrupt file fails the read and is
  reported by name.
- Parquet rows become ``to_json(struct(*))`` lines, so both formats go through one parser.
  Columns are named exactly (backquoted: dots and backticks in names are literal) and matched
  case-sensitively (``text`` and ``Text`` are two columns); nanosecond timestamps, which Spark
  refuses by default, are read as epoch nanoseconds (``ingest_sql_conf``). Spark's JSON writer
  turns bad UTF-8 into U+FFFD, so the text column's bytes are checked in the JVM first.
- Every line is measured in the JVM (``octet_length``). One longer than
  ``ingest.max_line_bytes`` reaches the Python parser as its first ``LONG_LINE_PREFIX_BYTES``
  only, with its length, and is quarantined as ``line_too_long``: the Python worker never
  holds it whole. (The JVM does: Hadoop's line reader buffers a line to split it.)

The sort key is (file, ``_metadata.file_block_start``, ``monotonically_increasing_id``): a file
split into blocks is read block by block and each block line by line, so the key follows the
file's line order however Spark packs blocks into partitions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from jobs.errors import is_transient
from jobs.ingest.rules import (
    LONG_LINE_PREFIX_BYTES,
    CorruptFileError,
    Fields,
    IngestInputError,
    MissingTextColumnError,
    is_input_file,
    parse_line,
)
from jobs.storage import Storage, to_spark_uri

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

_FAILED_FILE_RE = re.compile(r"error while reading file (\S+?)\.?\s")

PARSED_SCHEMA = (
    "reason string, raw string, is_object boolean, has_text boolean, doc_id string, "
    "text string, url string, source string, meta map<string,string>, num_chars int, "
    "source_file string"
)
# Session settings ingest needs while it reads (``ingest_sql_conf``).
_SQL_CONF = {
    "spark.sql.caseSensitive": "true",
    "spark.sql.legacy.parquet.nanosAsLong": "true",
}

_PARSED_COLUMNS = [c.strip().split(" ")[0] for c in PARSED_SCHEMA.split(", ")]


def list_inputs(storage: Storage, corpus_uri: str) -> list[str]:
    """The snapshot's input files, sorted; a clear error when there are none."""
    prefix = corpus_uri.rstrip("/") + "/"
    files, ignored = [], []
    for uri in storage.walk_files(corpus_uri):
        (files if is_input_file(uri[len(prefix) :]) else ignored).append(uri)
    for uri in ignored:
        if not uri[len(prefix) :].startswith(("_", ".")):
            log.warning("ignoring %s (not *.jsonl, *.jsonl.gz or *.parquet)", uri)
    if not files:
        raise IngestInputError(
            f"no input files (*.jsonl, *.jsonl.gz, *.parquet) under {corpus_uri}"
        )
    return files


@contextmanager
def ingest_sql_conf(spark: SparkSession) -> Iterator[None]:
    """Case-sensitive column names and readable nanosecond timestamps while ingest runs.

    Set on the session for the duration (every read, count and write of ingest happens inside)
    and restored after, so other jobs sharing the session (tests) keep Spark's defaults.
    """
    before = {key: spark.conf.get(key, None) for key in _SQL_CONF}
    for key, value in _SQL_CONF.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def _quoted(name: str):
    """A column by its exact name: dots and backticks in ``name`` are not syntax."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _lines(df: DataFrame, line, max_line_bytes: int, text_utf8=None) -> DataFrame:
    """``line`` (binary) cut to its first bytes when too long, its length, the order columns."""
    from pyspark.sql import functions as F

    num_bytes = F.octet_length(line)
    bounded = F.when(num_bytes > max_line_bytes, F.substring(line, 1, LONG_LINE_PREFIX_BYTES))
    # metadataColumn: still the file's metadata when the data has a column named _metadata.
    metadata = df.metadataColumn("_metadata")
    return df.select(
        bounded.otherwise(line).alias("line"),
        num_bytes.alias("num_bytes"),
        (F.lit(True) if text_utf8 is None else text_utf8).alias("text_utf8"),
        metadata.getField("file_path").alias("file_path"),
        metadata.getField("file_block_start").alias("block_start"),
        F.monotonically_increasing_id().alias("row_in_block"),
    )


def read_json_lines(spark: SparkSession, files: list[str], max_line_bytes: int) -> DataFrame:
    """One row per line of the JSON-lines files: raw bytes (bounded) in ``line``, its length."""
    from pyspark.sql import functions as F

    df = spark.read.text([to_spark_uri(f) for f in files], lineSep="\n")
    return _lines(df, F.col("value").cast("binary"), max_line_bytes)


def _parquet_schema(spark: SparkSession, uri: str, text_field: str):
    try:
        schema = spark.read.parquet(to_spark_uri(uri)).schema
    except Exception as exc:
        if is_transient(exc):
            raise
        raise CorruptFileError(uri, f"cannot read parquet: {_first_line(exc)}") from exc
    if text_field not in schema.fieldNames():
        raise MissingTextColumnError(uri, text_field, schema.fieldNames())
    return schema


def read_parquet_rows(
    spark: SparkSession, files: list[str], text_field: str, max_line_bytes: int
) -> DataFrame | None:
    """One JSON line per Parquet row; files are grouped by schema so each group is one scan."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BinaryType, StringType

    groups: dict[str, tuple[object, list[str]]] = {}
    for uri in files:
        schema = _parquet_schema(spark, uri, text_field)
        groups.setdefault(schema.json(), (schema, []))[1].append(uri)
    frames = []
    for schema, uris in groups.values():
        df = spark.read.parquet(*[to_spark_uri(u) for u in uris])
        # Binary columns would become base64 in JSON; text stored as bytes is meant as text.
        cols = [
            _quoted(f.name).cast("string").alias(f.name)
            if isinstance(f.dataType, BinaryType)
            else _quoted(f.name)
            for f in schema.fields
        ]
        line = F.to_json(F.struct(*cols)).cast("binary")
        text_utf8 = None
        if isinstance(schema[text_field].dataType, BinaryType | StringType):
            text = _quoted(text_field).cast("string")
            text_utf8 = F.coalesce(F.is_valid_utf8(text), F.lit(True))
        frames.append(_lines(df, line, max_line_bytes, text_utf8))
    out = None
    for frame in frames:
        out = frame if out is None else out.unionByName(frame)
    return out


def parse_rows(df: DataFrame, fields: Fields) -> DataFrame:
    """Apply ``rules.parse_line`` to every line (a Python UDF: the rules are plain Python)."""
    from pyspark.sql import functions as F

    from jobs.ingest.rules import spark_path_to_uri

    # No type hints on purpose: Spark 4 reads them to guess a pandas UDF type and warns.
    def _parse(line, num_bytes, text_utf8, file_path):
        source_file = spark_path_to_uri(file_path)
        row = dict.fromkeys(_PARSED_COLUMNS)
        parsed = parse_line(
            bytes(line), source_file, fields, num_bytes=num_bytes, text_utf8=text_utf8
        )
        row.update(parsed, source_file=source_file)
        return row

    # Nondeterministic: stops the optimizer from re-running the UDF once per struct field.
    parse = F.udf(_parse, PARSED_SCHEMA).asNondeterministic()
    return df.select(
        parse("line", "num_bytes", "text_utf8", "file_path").alias("p"),
        "file_path",
        "block_start",
        "row_in_block",
    ).select("p.*", "block_start", "row_in_block")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


def explain_read_failure(exc: BaseException) -> CorruptFileError | None:
    """The corrupt file behind a failed Spark read (Spark names it in the message), or None.

    None when the failure is transient (S3, network, a lost executor: a retry may succeed) or
    names no file; the caller then re-raises the original error.
    """
    from jobs.ingest.rules import spark_path_to_uri

    match = _FAILED_FILE_RE.search(str(exc))
    if match is None or is_transient(exc):
        return None
    return CorruptFileError(spark_path_to_uri(match.group(1)), _root_cause(exc))


def _root_cause(exc: BaseException) -> str:
    """The innermost Java cause (``not a gzip file``, ``Unexpected end of input stream``)."""
    causes = re.findall(r"Caused by: ([^\n]+)", str(exc))
    return causes[-1].strip()[:300] if causes else _first_line(exc)
