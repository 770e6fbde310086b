"""Whole-table checks that stream over a table read in bounded batches.

:func:`iter_table_batches` yields Arrow record batches of at most ``batch_rows`` rows from
the Parquet files of a prefix (an S3 file is first streamed to a local temp file, never read
into memory whole). :class:`TableTally` sees every batch once and keeps what a whole-table
property needs across batches: the row count, and per checked column set a dict of 16-byte
BLAKE2 digests, so its memory grows with the number of distinct values, not their text.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

_MAX_EXAMPLES = 10


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def digest(value: Any) -> bytes:
    """16-byte key of a value (or a tuple of values) for exact-equality counting."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class TableTally:
    """Row count, duplicate rate and uniqueness over pandas chunks seen one at a time."""

    def __init__(self, unique: Sequence[tuple[str, ...]], duplicate_column: str | None) -> None:
        self.num_rows = 0
        self.duplicate_column = duplicate_column
        self._counts: dict[tuple[str, ...], Counter[bytes]] = {cols: Counter() for cols in unique}
        self._examples: dict[tuple[str, ...], list[Any]] = {cols: [] for cols in unique}
        self._dup_seen: set[bytes] = set()
        self._dup_total = self._dup_repeats = 0
        self._dup_present = False
        self._columns: set[str] = set()

    def add(self, frame: pd.DataFrame) -> None:
        """Count one chunk."""
        from jobs.validate.suites import normalise_text

        self.num_rows += len(frame)
        self._columns.update(frame.columns)
        for cols, counts in self._counts.items():
            if self.missing_columns(cols):
                continue
            lists = [frame[c].tolist() for c in cols]
            for values in zip(*lists, strict=True):
                # GX skips a row whose values are all missing (its ignore_row_if default).
                if all(_missing(v) for v in values):
                    continue
                key = digest(values[0] if len(cols) == 1 else list(values))
                counts[key] += 1
                if counts[key] == 2 and len(self._examples[cols]) < _MAX_EXAMPLES:
                    self._examples[cols].append(values[0] if len(cols) == 1 else list(values))
        column = self.duplicate_column
        if column and column in frame.columns:
            self._dup_present = True
            for value in frame[column].tolist():
                if _missing(value):
                    continue
                self._dup_total += 1
                key = digest(normalise_text(value))
                if key in self._dup_seen:
                    self._dup_repeats += 1
                self._dup_seen.add(key)

    def duplicate_rate(self) -> float | None:
        """Share of non-null values repeating an earlier one (normalised); None if no column."""
        if not self._dup_present:
            return None
        return self._dup_repeats / self._dup_total if self._dup_total else 0.0

    def missing_columns(self, cols: Sequence[str]) -> list[str]:
        """The columns of ``cols`` that no chunk had."""
        return [c for c in cols if c not in self._columns]

    def non_unique(self, cols: tuple[str, ...]) -> tuple[int, list[Any], int]:
        """(rows whose value occurs more than once, up to 10 such values, rows counted)."""
        counts = self._counts[cols]
        repeated = sum(n for n in counts.values() if n > 1)
        return repeated, list(self._examples[cols]), sum(counts.values())
