"""Pure ingest rules: one raw input line in, one normalised row or a quarantine reason out.

Nothing here touches Spark or storage, so every rule is tested on literal bytes. Parsing a row
never raises (DESIGN.md section 9): whatever a line holds, :func:`parse_line` returns a row,
with a quarantine reason when the row cannot be used.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from jobs.errors import PermanentError

STAGE = "ingest"
RAW_MAX_CHARS = 10_000
# A line over ``ingest.max_line_bytes`` reaches Python as this many leading bytes only (the
# JVM measures and cuts it): enough for ``raw``'s RAW_MAX_CHARS at up to 4 bytes a character.
LONG_LINE_PREFIX_BYTES = 4 * RAW_MAX_CHARS
INPUT_SUFFIXES = (".jsonl.gz", ".jsonl", ".parquet")

# Quarantine reasons (exact strings; downstream reports group by them).
LINE_TOO_LONG = "line_too_long"  # over ingest.max_line_bytes; never parsed
INVALID_UTF8 = "invalid_utf8"  # bytes that are not UTF-8, or a lone surrogate in the text
MALFORMED_JSON = "malformed_json"
NOT_AN_OBJECT = "not_an_object"  # valid JSON, but an array, string, number or null
NESTING_TOO_DEEP = "nesting_too_deep"  # past the decoder's recursion limit
NUMBER_TOO_LARGE = "number_too_large"  # an integer over Python's int-string limit (4300 digits)
DUPLICATE_KEY = "duplicate_key"  # the text, id, url or source key given twice: ambiguous
INVALID_ID = "invalid_id"  # the id holds a lone surrogate: no stable UTF-8 form to hash
MISSING_TEXT = "missing_text"
NON_STRING_TEXT = "non_string_text"
EMPTY_TEXT = "empty_text"
NUL_IN_TEXT = "nul_in_text"  # U+0000 in the text: binary or mis-decoded (UTF-16) content
TEXT_TOO_LONG = "text_too_long"
DUPLICATE_ID = "duplicate_id"
# Any other exception while parsing a row: ``parse_error:<exception type>``.
PARSE_ERROR = "parse_error"
# A whole input file set aside under ``ingest.on_corrupt_file = "quarantine"``: one quarantine
# row per file (``raw`` holds the error), counted as one input row. Unreadable: bad gzip, not
# Parquet; missing text column: a Parquet file without ``ingest.text_field``.
UNREADABLE_FILE = "unreadable_file"
MISSING_TEXT_COLUMN = "missing_text_column"
REASONS = (
    LINE_TOO_LONG,
    INVALID_UTF8,
    MALFORMED_JSON,
    NOT_AN_OBJECT,
    NESTING_TOO_DEEP,
    NUMBER_TOO_LARGE,
    DUPLICATE_KEY,
    INVALID_ID,
    MISSING_TEXT,
    NON_STRING_TEXT,
    EMPTY_TEXT,
    NUL_IN_TEXT,
    TEXT_TOO_LONG,
    DUPLICATE_ID,
    PARSE_ERROR,
    UNREADABLE_FILE,
    MISSING_TEXT_COLUMN,
)
# A whitespace-only line is no row at all (JSON Lines writers often end with blank lines):
# it is counted in the stats' ``blank_lines`` but is neither an input row nor quarantined.
BLANK = "blank_line"


class IngestInputError(PermanentError, RuntimeError):
    """The snapshot cannot be ingested as a whole: no files, a corrupt file, a wrong schema."""


class CorruptFileError(IngestInputError):
    """One input file cannot be read (bad gzip stream, not Parquet): names the file.

    Under ``ingest.on_corrupt_file = "quarantine"`` the file is set aside as one quarantine
    row with ``reason``.
    """

    reason = UNREADABLE_FILE

    def __init__(self, uri: str, error: str, message: str | None = None):
        self.uri = uri
        self.error = error
        super().__init__(message or f"corrupt input file {uri}: {error}")


class MissingTextColumnError(CorruptFileError):
    """A Parquet file that has no ``ingest.text_field`` column: lists the columns it has."""

    reason = MISSING_TEXT_COLUMN

    def __init__(self, uri: str, text_field: str, columns: list[str]):
        same = [c for c in columns if c.lower() == text_field.lower()]
        hint = f"; did you mean {same[0]!r}? set ingest.text_field" if same else ""
        error = f"parquet file {uri} has no {text_field!r} column (columns found: {columns}){hint}"
        super().__init__(uri, error, error)


@dataclass(frozen=True)
class Fields:
    """Which input keys carry the text and the id, and the size limits (``cfg.ingest``)."""

    text: str = "text"
    id: str = "id"
    max_text_chars: int = 200_000
    max_line_bytes: int = 4 * 1024 * 1024


def is_input_file(relative_path: str) -> bool:
    """True for ``*.jsonl``, ``*.jsonl.gz`` and ``*.parquet`` outside ``_``/``.`` names."""
    parts = relative_path.strip("/").split("/")
    if any(p.startswith(("_", ".")) for p in parts):
        return False
    return parts[-1].endswith(INPUT_SUFFIXES)


def spark_path_to_uri(path: str) -> str:
    """Spark's ``_metadata.file_path`` (``file:/a%20b``, ``s3a://``) as a storage URI."""
    path = unquote(path)
    if path.startswith("s3a://"):
        return "s3://" + path[len("s3a://") :]
    if path.startswith("file:") and not path.startswith("file://"):
        return "file://" + "/" + path[len("file:") :].lstrip("/")
    return path


def file_stem(uri: str) -> str:
    """``.../part-00000.jsonl.gz`` → ``part-00000``: the default ``source`` of a row."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    for suffix in INPUT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def normalise_text(text: str) -> str:
    """Unix newlines, no surrounding whitespace."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def make_doc_id(source: str, original_id: str | None, text: str) -> str:
    """sha1 of ``{source}:{id}`` when the row has an id, else sha1 of the normalised text."""
    key = f"{source}:{original_id}" if original_id is not None else text
    # surrogatepass: a lone surrogate, should one get here, hashes (distinctly) and never raises.
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()


# A lone surrogate comes from a ``\ud800`` escape: valid JSON, but not representable in UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(value: str) -> bool:
    if value.isascii():  # O(1): CPython keeps the flag
        return False
    try:
        value.encode("utf-8")  # C speed; a regex search costs ~5x more on long texts
    except UnicodeEncodeError:
        return True
    return False


def scrub(value: str) -> str:
    """``value`` with each lone surrogate replaced by U+FFFD (for keys, meta, url, source)."""
    return _SURROGATE.sub("\ufffd", value) if _has_surrogate(value) else value


def _scalar_str(value: Any) -> str | None:
    """Strings (scrubbed), numbers and booleans as JSON; None and nested values → None."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return None


def _original_id(value: Any) -> str | None:
    """The id as text (nested ids as sorted JSON), lone surrogates left in for the caller."""
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value if isinstance(value, str) else _scalar_str(value)


def _reject(reason: str, raw: str, *, is_object=False, has_text=False, doc_id=None):
    return {
        "reason": reason,
        "raw": raw[:RAW_MAX_CHARS],
        "is_object": is_object,
        "has_text": has_text,
        "doc_id": doc_id,
    }


def _lossy(line: bytes) -> str:
    """The line as text whatever its bytes: bad UTF-8 as U+FFFD, no BOM, no CR terminator."""
    return line.decode("utf-8", "replace").lstrip("\ufeff").removesuffix("\r")


class _PairsHook:
    """``object_pairs_hook`` that builds dicts and remembers the keys an object repeated.

    The decoder finishes inner objects first, so after a parse ``repeated`` holds the
    outermost object's repeated keys.
    """

    def __init__(self) -> None:
        self.repeated: frozenset[str] = frozenset()

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        self.repeated = frozenset()
        if len(obj) != len(pairs):
            seen: set[str] = set()
            self.repeated = frozenset(k for k, _ in pairs if k in seen or seen.add(k))
        return obj


def _decode_json(raw: str) -> tuple[Any, frozenset[str], str | None]:
    """``(value, keys the top object repeated, None)`` or ``(None, ..., reason)``."""
    hook = _PairsHook()
    try:
        # strict=False: raw tabs (and other control characters) inside strings are common.
        value = json.loads(raw, strict=False, object_pairs_hook=hook)
    except RecursionError:
        return None, frozenset(), NESTING_TOO_DEEP
    except json.JSONDecodeError:
        return None, frozenset(), MALFORMED_JSON
    except ValueError as exc:
        # int() refuses more than sys.get_int_max_str_digits() digits (CVE-2020-10735).
        if "integer string conversion" not in str(exc):
            raise
        return None, frozenset(), NUMBER_TOO_LARGE
    return value, hook.repeated, None


def parse_line(
    line: bytes,
    source_file: str,
    fields: Fields,
    *,
    num_bytes: int | None = None,
    text_utf8: bool = True,
) -> dict[str, Any]:
    """Parse one JSON line into a ``documents_raw`` row, or a row with a quarantine ``reason``.

    ``line`` is the line's bytes; for a line the reader measured as longer than
    ``fields.max_line_bytes`` it may be only its first bytes, with ``num_bytes`` its length.
    ``text_utf8`` False: the reader found the text's bytes not UTF-8 (a Parquet column).

    Always returns ``reason`` (None when accepted), ``raw`` (the line as text, truncated),
    ``is_object`` (the line is a JSON object), ``has_text`` (it has the text key) and
    ``doc_id`` (when it can be computed). It does not raise: an unforeseen exception becomes
    ``parse_error:<type>``. MemoryError is the one exception let through: a line is at most
    ``max_line_bytes``, so a failed allocation means the worker is short of memory
    (transient, retried), and quarantining rows for it would make the output machine-dependent.
    """
    try:
        size = len(line) if num_bytes is None else num_bytes
        return _parse(line, source_file, fields, size, text_utf8)
    except MemoryError:
        raise
    except RecursionError:  # re-encoding a nested id just under the decoder's limit
        return _reject(NESTING_TOO_DEEP, _lossy(line))
    except Exception as exc:
        return _reject(f"{PARSE_ERROR}:{type(exc).__name__}", _lossy(line))


def _parse(line: bytes, source_file: str, fields: Fields, size: int, text_utf8: bool):
    if size > fields.max_line_bytes:
        return _reject(LINE_TOO_LONG, _lossy(line[:LONG_LINE_PREFIX_BYTES]))
    try:
        raw = line.decode("utf-8")
    except UnicodeDecodeError:
        return _reject(INVALID_UTF8, _lossy(line))
    raw = raw.lstrip("\ufeff").removesuffix("\r")
    if not raw.strip():
        return _reject(BLANK, raw)
    obj, repeated, reason = _decode_json(raw)
    if reason is not None:
        return _reject(reason, raw)
    if not isinstance(obj, dict):
        return _reject(NOT_AN_OBJECT, raw)
    return _object_row(obj, raw, repeated, source_file, fields, text_utf8)


def _object_row(obj, raw, repeated, source_file, fields, text_utf8) -> dict[str, Any]:
    """The row for one decoded JSON object (``_parse``'s second half)."""
    has_text = fields.text in obj

    def reject(reason: str, doc_id: str | None = None) -> dict[str, Any]:
        return _reject(reason, raw, is_object=True, has_text=has_text, doc_id=doc_id)

    if repeated & {fields.text, fields.id, "url", "source"}:
        return reject(DUPLICATE_KEY)  # which copy is meant? other repeated keys: the last wins
    source = _scalar_str(obj.get("source"))
    source = source.strip() if source and source.strip() else file_stem(source_file)
    original_id = _original_id(obj.get(fields.id))
    if original_id is not None and _has_surrogate(original_id):
        return reject(INVALID_ID)
    id_based = make_doc_id(source, original_id, "") if original_id is not None else None
    text = obj.get(fields.text)
    if text is None:
        return reject(MISSING_TEXT, id_based)
    if not isinstance(text, str):
        return reject(NON_STRING_TEXT, id_based)
    if not text_utf8 or _has_surrogate(text):
        return reject(INVALID_UTF8, id_based)
    text = normalise_text(text)
    doc_id = make_doc_id(source, original_id, text)
    if not text:
        return reject(EMPTY_TEXT, doc_id)
    if "\x00" in text:
        return reject(NUL_IN_TEXT, doc_id)
    if len(text) > fields.max_text_chars:
        return reject(TEXT_TOO_LONG, doc_id)
    meta = {}
    for key, value in obj.items():
        value = _scalar_str(value)
        if value is not None and key not in (fields.text, "url", "source"):
            meta[scrub(key)] = value
    meta["source_file"] = source_file
    return {
        "reason": None,
        "raw": raw[:RAW_MAX_CHARS],
        "is_object": True,
        "has_text": True,
        "doc_id": doc_id,
        "text": text,
        "url": _scalar_str(obj.get("url")) or None,
        "source": source,
        "meta": meta,
        "num_chars": len(text),
    }
