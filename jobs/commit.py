"""Atomic stage outputs: write under ``_tmp/{attempt}``, move into place, ``_SUCCESS`` last.

Readers trust a prefix only when ``_SUCCESS`` is present. A rerun first withdraws the
marker, so a reader never sees a prefix that mixes two attempts' files.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from jobs.errors import PermanentError
from jobs.storage import Storage, basename, join

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
MANIFEST = "_manifest.json"
STATS = "_stats.json"
_META = {SUCCESS, MANIFEST, STATS, "_tmp"}
# Test hook (tests/faults only): SYNTHLLM_FAULT="<point>[@<uri suffix>]" makes the process
# SIGKILL itself at that point of ``StageOutput.commit`` (of the first output whose URI ends
# with the suffix), to prove a rerun recovers. Unset, each point costs one environment lookup.
FAULT_ENV = "SYNTHLLM_FAULT"
FAULT_POINTS = ("before_commit", "after_delete_success", "after_moves", "before_success")


class UncommittedInputError(PermanentError, RuntimeError):
    """A stage asked for an input prefix that has no ``_SUCCESS`` marker."""


def require_committed(storage: Storage, uri: str) -> None:
    """Stop with a clear error when an upstream output is missing or half-written."""
    if not storage.exists(join(uri, SUCCESS)):
        raise UncommittedInputError(
            f"input {uri} is not committed (no {SUCCESS}); run the upstream stage first"
        )


@dataclass
class StageStats:
    """Row accounting for one output; rows_in must equal rows_out + quarantined."""

    rows_in: int = 0
    rows_out: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_quarantined(self) -> int:
        return sum(self.quarantined.values())

    def check_balance(self) -> None:
        if self.rows_in != self.rows_out + self.rows_quarantined:
            raise AssertionError(
                f"row accounting broken: in={self.rows_in} out={self.rows_out} "
                f"quarantined={self.rows_quarantined} {self.quarantined}"
            )

    def to_dict(self, wall_s: float) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_quarantined": self.rows_quarantined,
            "quarantined_by_reason": dict(sorted(self.quarantined.items())),
            "tokens": self.tokens,
            "wall_s": round(wall_s, 3),
            **self.extra,
        }


@dataclass
class LevelFunnel:
    """Rows in, out and removed by reason per generation level (the report's funnel)."""

    levels: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, level: int | str | None, reason: str | None, count: int = 1) -> None:
        """Count ``count`` rows of ``level`` (None: unknown) kept, or removed for ``reason``."""
        entry = self.levels.setdefault(
            "unknown" if level is None else str(level), {"in": 0, "out": 0, "removed": {}}
        )
        entry["in"] += count
        if reason is None:
            entry["out"] += count
        else:
            entry["removed"][reason] = entry["removed"].get(reason, 0) + count

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """``{level: {in, out, removed}}``, levels and reasons sorted."""
        order = sorted(
            self.levels, key=lambda lv: (not lv.isdigit(), int(lv) if lv.isdigit() else 0, lv)
        )
        return {
            lv: {**self.levels[lv], "removed": dict(sorted(self.levels[lv]["removed"].items()))}
            for lv in order
        }


def _fault_point(point: str, uri: str) -> None:
    """Die by SIGKILL here when ``$SYNTHLLM_FAULT`` names ``point`` (and a suffix of ``uri``)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name, _, suffix = spec.partition("@")
    if name == point and uri.rstrip("/").endswith(suffix):
        log.warning("%s=%s: killing this process at %s of %s", FAULT_ENV, spec, point, uri)
        os.kill(os.getpid(), signal.SIGKILL)


class StageOutput:
    """One atomically committed output prefix."""

    def __init__(self, storage: Storage, uri: str, attempt: str) -> None:
        self.storage = storage
        self.uri = uri
        self.attempt = attempt
        self.tmp_uri = join(uri, "_tmp", attempt)
        self._started = time.monotonic()

    def begin(self) -> str:
        """Clear leftovers of this attempt and return the URI to write data under."""
        self.storage.delete(self.tmp_uri)
        return self.tmp_uri

    def commit(self, manifest: dict[str, Any], stats: StageStats | None) -> None:
        """Replace the committed contents with this attempt's files; ``_SUCCESS`` last."""
        st = self.storage
        _fault_point("before_commit", self.uri)
        st.delete(join(self.uri, SUCCESS))
        _fault_point("after_delete_success", self.uri)
        for child in st.list(self.uri):
            if basename(child) != "_tmp":
                st.delete(child)
        for child in st.list(self.tmp_uri):
            st.move(child, join(self.uri, basename(child)))
        _fault_point("after_moves", self.uri)
        st.delete(join(self.uri, "_tmp"))
        wall = time.monotonic() - self._started
        st.write_json(join(self.uri, MANIFEST), manifest)
        if stats is not None:
            st.write_json(join(self.uri, STATS), stats.to_dict(wall))
        _fault_point("before_success", self.uri)
        st.write_text(join(self.uri, SUCCESS), "")
        log.info("committed %s", self.uri)
