"""Fenced stage outputs: stage under ``_tmp/``, claim, move into place, ``_SUCCESS`` last.

Readers trust a prefix only when ``_SUCCESS`` is present, and read the files its
``_manifest.json`` lists (``commit.files``). Two attempts of one stage may run at once (a
zombie whose heartbeat was lost and its retry), so a commit is fenced (DESIGN.md §5, §9).
For an output prefix ``U`` and one attempt:

1. ``begin``: the attempt reads the newest commit claim ``g`` under ``U/_commits/`` and
   stages under ``U/_tmp/{g}.[{run id}.]{try}.{random}``, a prefix no other attempt uses
   (the run id when the caller passes it; the claim always records the manifest's).
2. ``commit`` claims generation ``g + 1`` by creating ``U/_commits/{g + 1}`` only if absent
   (a hard link locally, ``PutObject`` with ``If-None-Match: *`` on S3) and reading it back.
   A claim above ``g`` means another attempt committed, or is committing, since this one
   began; a claim of the same run by a later try means this try is a zombie. Either way the
   attempt stops (:class:`CommitSupersededError`) before touching ``U``.
3. It withdraws ``_SUCCESS``, deletes the old committed files, checks that ``U`` holds
   nothing else, checks its claim is still the newest, moves its files in, writes
   ``_manifest.json`` (naming the files) and ``_stats.json``, checks its claim once more and
   writes ``_SUCCESS`` only if absent (or proven its own), naming the attempt.
4. It deletes its own staging, the staging of attempts its claim fenced out (they began at
   ``g`` or before and can never claim), and the claims older than its own.

A rerun of the stage (a new try or a new run) begins after the last claim, so it replaces
the output; reruns only ever touch their own snapshot's prefixes (jobs/layout.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from jobs.errors import PermanentError, TransientError
from jobs.storage import Storage, basename, join, resolve_uri

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
MANIFEST = "_manifest.json"
STATS = "_stats.json"
TMP = "_tmp"
CLAIMS = "_commits"
_CLAIM_RE = re.compile(r"^(\d{10})\.json$")
_STAGING_RE = re.compile(r"^(\d{10})\.")
# Test hook (tests/faults only): SYNTHLLM_FAULT="[stop:]<point>[@<uri suffix>]" makes the
# process SIGKILL itself at that point of ``StageOutput.commit`` (of the first output whose
# URI ends with the suffix), to prove a rerun recovers; with ``stop:`` it SIGSTOPs itself, a
# zombie the test resumes after its retry committed. Unset, each point costs one lookup.
FAULT_ENV = "SYNTHLLM_FAULT"
FAULT_POINTS = (
    "before_commit",
    "after_claim",
    "after_delete_success",
    "after_moves",
    "before_success",
    "after_success",
)


class CommitSupersededError(TransientError, RuntimeError):
    """Another attempt of this output claimed a commit after this attempt began.

    Transient (exit 75): the output is (being) committed by the other attempt; a zombie's exit
    code is read by nobody, and a retry begins after the winner's claim and commits again.
    """


class CommitConflictError(TransientError, RuntimeError):
    """The final prefix still holds files after the old commit was deleted (a failed or
    unfinished delete, or a fenced-out attempt still moving files in). A retry clears it."""


class UncommittedInputError(PermanentError, RuntimeError):
    """A stage asked for an input prefix that has no ``_SUCCESS`` marker."""


def require_committed(storage: Storage, uri: str) -> None:
    """Stop with a clear error when an upstream output is missing or half-written."""
    if not storage.exists(join(uri, SUCCESS)):
        raise UncommittedInputError(
            f"input {uri} is not committed (no {SUCCESS}); run the upstream stage first"
        )
    committed_files(storage, uri)  # raises if its _SUCCESS and manifest disagree


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
    """Die by SIGKILL (or stop) here when ``$SYNTHLLM_FAULT`` names ``point`` (see above)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    stop = spec.startswith("stop:")
    name, _, suffix = spec.removeprefix("stop:").partition("@")
    if name == point and uri.rstrip("/").endswith(suffix):
        verb = "stopping" if stop else "killing"
        log.warning("%s=%s: %s this process at %s of %s", FAULT_ENV, spec, verb, point, uri)
        os.kill(os.getpid(), signal.SIGSTOP if stop else signal.SIGKILL)


def committed_files(storage: Storage, uri: str) -> list[str] | None:
    """The files the commit of ``uri`` lists in its manifest, as URIs, in the listed order.

    None for a prefix that predates fenced commits (an empty ``_SUCCESS``, no claims) or was
    written without :class:`StageOutput`: the caller then lists the prefix itself. Raises
    :class:`UncommittedInputError` for a fenced prefix that is not committed, or whose
    ``_SUCCESS`` and manifest name different attempts (a commit is replacing it).
    """
    success = _read_json(storage, join(uri, SUCCESS))
    if not (isinstance(success, dict) and success.get("attempt")):
        if _claims(storage, uri) and not storage.exists(join(uri, SUCCESS)):
            raise UncommittedInputError(f"{uri}: not committed (a commit is claimed, no {SUCCESS})")
        return None
    manifest = _read_json(storage, join(uri, MANIFEST))
    record = manifest.get("commit") if isinstance(manifest, dict) else None
    if not isinstance(record, dict) or record.get("attempt") != success["attempt"]:
        raise UncommittedInputError(
            f"{uri}: {SUCCESS} names attempt {success['attempt']} but {MANIFEST} "
            f"{(record or {}).get('attempt')}; another commit is replacing it"
        )
    return [join(uri, f) for f in record.get("files", [])]


def _read_json(storage: Storage, uri: str) -> Any:
    """The JSON at ``uri``; None when it is absent or not JSON (an old empty ``_SUCCESS``)."""
    if not storage.exists(uri):
        return None
    try:
        return json.loads(storage.read_bytes(uri))
    except ValueError:
        return None


def _json_bytes(obj: Any) -> bytes:
    """JSON as :meth:`Storage.write_json` writes it."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()


def _claims(storage: Storage, uri: str) -> list[int]:
    """The commit generations claimed under ``uri``, oldest first."""
    found = (_CLAIM_RE.match(basename(c)) for c in storage.list(join(uri, CLAIMS)))
    return sorted(int(m.group(1)) for m in found if m)


def _claim_uri(uri: str, generation: int) -> str:
    return join(uri, CLAIMS, f"{generation:010d}.json")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


class StageOutput:
    """One output prefix, committed by one fenced attempt (see the module docstring).

    ``attempt`` is the try number (``--attempt``); ``run_id`` (``--run-id``) defaults to the
    ``run_id`` of the manifest handed to :meth:`commit`. A zombie of a run is recognised by
    the two together.
    """

    def __init__(self, storage: Storage, uri: str, attempt: str, run_id: str | None = None) -> None:
        self.storage = storage
        self.uri = uri
        self.attempt = attempt
        self.run_id = run_id
        self.token: str | None = None  # this attempt's name: its staging folder and claim
        self._base = 0  # the newest claim when this attempt began
        self._started = time.monotonic()

    @property
    def tmp_uri(self) -> str:
        """This attempt's staging prefix (after :meth:`begin`)."""
        if self.token is None:
            raise RuntimeError(f"{self.uri}: StageOutput.begin() was not called")
        return join(self.uri, TMP, self.token)

    def begin(self) -> str:
        """Start this attempt after the newest claim; returns its own prefix to write under."""
        claims = _claims(self.storage, self.uri)
        self._base = claims[-1] if claims else 0
        parts = [f"{self._base:010d}", self.run_id, self.attempt, uuid.uuid4().hex[:12]]
        self.token = ".".join(_safe(p) for p in parts if p)
        return self.tmp_uri

    def commit(self, manifest: dict[str, Any], stats: StageStats | None) -> None:
        """Replace the committed contents with this attempt's files; ``_SUCCESS`` last.

        Raises :class:`CommitSupersededError` when another attempt claimed a commit since
        this one began (see the module docstring); this attempt's staging is deleted then.
        """
        if self.token is None:
            self.begin()  # nothing staged: commits an empty output
        try:
            generation = self._commit(manifest, stats)
        except CommitSupersededError:
            self.abort()
            raise
        self._clean_up(generation)
        log.info("committed %s (generation %d, attempt %s)", self.uri, generation, self.token)

    def abort(self) -> None:
        """Delete this attempt's staging (it will not commit); nothing if it never began.

        Only for an attempt that has not committed: its files are the committed ones after.
        """
        if self.token is None:
            return
        self.storage.delete(self.tmp_uri)
        self._drop_empty_tmp()

    def _commit(self, manifest: dict[str, Any], stats: StageStats | None) -> int:
        st = self.storage
        _fault_point("before_commit", self.uri)
        generation = self._claim(self.run_id or str(manifest.get("run_id") or ""))
        _fault_point("after_claim", self.uri)
        # The claim is checked again before every step that changes the prefix: an attempt
        # paused past a check touches at most one object of a newer commit.
        self._check_newest(generation)
        st.delete(join(self.uri, SUCCESS))
        if st.exists(join(self.uri, SUCCESS)):  # readers would trust the files deleted next
            raise CommitConflictError(f"{self.uri}: {SUCCESS} is still there after its delete")
        _fault_point("after_delete_success", self.uri)
        self._clear(generation)
        files = self._move_in(generation)
        _fault_point("after_moves", self.uri)
        wall = time.monotonic() - self._started
        record = {"attempt": self.token, "generation": generation, "files": files}
        self._check_newest(generation)  # only if absent: no other attempt's replace them
        self._create(MANIFEST, _json_bytes({**manifest, "commit": record}))
        if stats is not None:
            self._create(STATS, _json_bytes(stats.to_dict(wall)))
        self._check_newest(generation)
        _fault_point("before_success", self.uri)
        self._create(SUCCESS, _json_bytes({"attempt": self.token, "generation": generation}))
        _fault_point("after_success", self.uri)
        return generation

    def _superseded(self, why: str) -> CommitSupersededError:
        log.warning("%s: attempt %s not committing: %s", self.uri, self.token, why)
        return CommitSupersededError(f"{self.uri}: attempt {self.token} is superseded: {why}")

    def _claim(self, run_id: str) -> int:
        """Claim generation ``base + 1`` for this attempt, or raise if it cannot be its."""
        claims = _claims(self.storage, self.uri)
        newest = claims[-1] if claims else 0
        if newest != self._base:
            raise self._superseded(f"commit {newest} was claimed after it began (at {self._base})")
        last = _read_json(self.storage, _claim_uri(self.uri, newest)) if newest else None
        if isinstance(last, dict) and run_id and last.get("run_id") == run_id:
            theirs, mine = str(last.get("try", "")), self.attempt
            if theirs.isdigit() and mine.isdigit() and int(theirs) > int(mine):
                raise self._superseded(
                    f"try {theirs} of run {run_id} claimed commit {newest}; this is try {mine}"
                )
        generation = newest + 1
        body = {"attempt": self.token, "run_id": run_id, "try": self.attempt}
        created = self.storage.create_exclusive(_claim_uri(self.uri, generation), _json_bytes(body))
        if not created and self._owner(generation) != self.token:
            raise self._superseded(f"commit {generation} was claimed by {self._owner(generation)}")
        self._check_newest(generation)
        return generation

    def _owner(self, generation: int) -> str | None:
        body = _read_json(self.storage, _claim_uri(self.uri, generation))
        return body.get("attempt") if isinstance(body, dict) else None

    def _check_newest(self, generation: int) -> None:
        """Stop unless this attempt's claim is still the newest and still names it.

        Checked again before each step that writes into the prefix: a write S3 let through
        twice, or an attempt that began after this one claimed, shows here.
        """
        newest = (_claims(self.storage, self.uri) or [0])[-1]
        if newest != generation:
            raise self._superseded(f"commit {newest} was claimed after its {generation}")
        owner = self._owner(generation)
        if owner != self.token:
            raise self._superseded(f"commit {generation} belongs to {owner}")

    def _clear(self, generation: int) -> None:
        """Delete the old committed files, then check nothing but fence state is left."""
        st = self.storage
        for child in st.list(self.uri):
            if basename(child) not in (TMP, CLAIMS):
                self._check_newest(generation)
                st.delete(child)
        left = [basename(c) for c in st.list(self.uri) if basename(c) not in (TMP, CLAIMS)]
        if left:
            raise CommitConflictError(
                f"{self.uri}: still holds {', '.join(left[:5])} after deleting the old commit; "
                "not moving this attempt's files in"
            )

    def _move_in(self, generation: int) -> list[str]:
        """Move the staged files into place; their paths relative to the prefix, sorted.

        The claim is checked before each move (S3 has no rename to make the moves atomic).
        """
        st = self.storage
        base = resolve_uri(self.tmp_uri).rstrip("/") + "/"
        files = sorted(resolve_uri(f)[len(base) :] for f in st.walk_files(self.tmp_uri))
        for child in st.list(self.tmp_uri):
            self._check_newest(generation)
            st.move(child, join(self.uri, basename(child)))
        return files

    def _create(self, name: str, data: bytes) -> None:
        """Write ``U/name`` only if absent, or if a resent write of it already holds ``data``."""
        uri = join(self.uri, name)
        if not self.storage.create_exclusive(uri, data) and self.storage.read_bytes(uri) != data:
            raise self._superseded(f"another attempt's {name} appeared first")

    def _clean_up(self, generation: int) -> None:
        """Delete this attempt's staging, staging its claim fenced out, and older claims."""
        st = self.storage
        st.delete(self.tmp_uri)
        for child in st.list(join(self.uri, TMP)):
            match = _STAGING_RE.match(basename(child))
            if match and int(match.group(1)) < generation:  # began before this claim
                st.delete(child)
        for old in _claims(st, self.uri):
            if old < generation:
                st.delete(_claim_uri(self.uri, old))
        self._drop_empty_tmp()

    def _drop_empty_tmp(self) -> None:
        """Remove a local ``_tmp`` folder left empty (S3 has no folders to leave)."""
        local = self.storage.local_path(join(self.uri, TMP))
        # OSError: another attempt began staging, or removed the folder, meanwhile
        with contextlib.suppress(OSError):
            if local is not None and local.is_dir() and not any(local.iterdir()):
                local.rmdir()
