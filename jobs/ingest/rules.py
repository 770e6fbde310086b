"""Pure ingest rules: one raw input line in, one normalised row or a quarantine reason out.

Nothing here touches Spark or storage, so every rule is tested on literal bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from jobs.errors import PermanentError

STAGE = "ingest"
RAW_MAX_CHARS = 10_000
INPUT_SUFFIXES = (".jsonl.gz", ".jsonl", ".parquet")

# Quarantine reasons (exact strings; downstream reports group by them).
MALFORMED_JSON = "malformed_json"
INVALID_UTF8 = "invalid_utf8"
MISSING_TEXT = "missing_text"
EMPTY_TEXT = "empty_text"
NON_STRING_TEXT = "non_string_text"
TEXT_TOO_LONG = "text_too_long"
DUPLICATE_ID = "duplicate_id"
# A whole input file that cannot be read, under ``ingest.on_corrupt_file = "quarantine"``: one
# quarantine row per file (``raw`` holds the reader's error), counted as one input row.
UNREADABLE_FILE = "unreadable_file"
REASONS = (
    MALFORMED_JSON,
    INVALID_UTF8,
    MISSING_TEXT,
    EMPTY_TEXT,
    NON_STRING_TEXT,
    TEXT_TOO_LONG,
    DUPLICATE_ID,
    UNREADABLE_FILE,
)
# A whitespace-only line is no row at all (JSON Lines writers often end with blank lines):
# it is counted in the stats' ``blank_lines`` but is neither an input row nor quarantined.
BLANK = "blank_line"


class IngestInputError(PermanentError, RuntimeError):
    """The snapshot cannot be ingested as a whole: no files, a corrupt file, a wrong schema."""


class CorruptFileError(IngestInputError):
    """One input file cannot be read (bad gzip stream, not Parquet): names the file."""

    def __init__(self, uri: str, error: str):
        self.uri = uri
        self.error = error
        super().__init__(f"corrupt input file {uri}: {error}")


@dataclass(frozen=True)
class Fields:
    """Which input keys carry the text and the id (``cfg.ingest``)."""

    text: str = "text"
    id: str = "id"
    max_text_chars: int = 200_000


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
    return hashlib.sha1(key.encode("utf-8")).hexdigest()


def _scalar_str(value: Any) -> str | None:
    """Strings as they are, numbers and booleans as JSON; None and nested values → None."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates from \ud800
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return None


def _original_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return _scalar_str(value)


def _reject(reason: str, raw: str, has_text: bool = False, doc_id: str | None = None):
    return {"reason": reason, "raw": raw[:RAW_MAX_CHARS], "has_text": has_text, "doc_id": doc_id}


def parse_line(line: bytes, source_file: str, fields: Fields) -> dict[str, Any]:
    """Parse one JSON line into a ``documents_raw`` row, or a row with a quarantine ``reason``.

    Always returns ``reason`` (None when accepted), ``raw`` (the line as text, truncated),
    ``has_text`` (the object has the text key) and ``doc_id`` (when it can be computed).
    """
    try:
        raw = line.decode("utf-8")
    except UnicodeDecodeError:
        return _reject(INVALID_UTF8, line.decode("utf-8", "replace"))
    raw = raw.lstrip("\ufeff")
    if not raw.strip():
        return _reject(BLANK, raw)
    try:
        obj = json.loads(raw, strict=False)  # strict=False: raw tabs inside strings are common
    except ValueError:
        return _reject(MALFORMED_JSON, raw)
    if not isinstance(obj, dict):
        return _reject(MALFORMED_JSON, raw)
    source = _scalar_str(obj.get("source"))
    source = source.strip() if source and source.strip() else file_stem(source_file)
    original_id = _original_id(obj.get(fields.id))
    has_text = fields.text in obj
    text = obj.get(fields.text)
    id_based = make_doc_id(source, original_id, "") if original_id is not None else None
    if text is None:
        return _reject(MISSING_TEXT, raw, has_text, id_based)
    if not isinstance(text, str):
        return _reject(NON_STRING_TEXT, raw, has_text, id_based)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape: not representable as UTF-8
        return _reject(INVALID_UTF8, raw, has_text, id_based)
    text = normalise_text(text)
    doc_id = make_doc_id(source, original_id, text)
    if not text:
        return _reject(EMPTY_TEXT, raw, has_text, doc_id)
    if len(text) > fields.max_text_chars:
        return _reject(TEXT_TOO_LONG, raw, has_text, doc_id)
    url = _scalar_str(obj.get("url")) or None
    meta = {
        k: v
        for k, v in ((k, _scalar_str(v)) for k, v in obj.items())
        if v is not None and k not in (fields.text, "url", "source")
    }
    meta["source_file"] = source_file
    return {
        "reason": None,
        "raw": raw[:RAW_MAX_CHARS],
        "has_text": True,
        "doc_id": doc_id,
        "text": text,
        "url": url,
        "source": source,
        "meta": meta,
        "num_chars": len(text),
    }
