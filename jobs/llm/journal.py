"""Where one LLM shard's responses live, and how the part files of its attempts merge.

Files of shard ``i`` of task ``T`` (DESIGN.md sections 2, 5 and 9)::

    {run}/llm/T/requests/shard-i-of-N.jsonl          written by the stage's prepare job
    {run}/llm/T/responses/shard-i-of-N/KEY/attempt-SSSSS-TOKEN/part-BBBBB.jsonl
    {run}/llm/T/responses/shard-i-of-N.stats.json    token accounting (written when done)
    {run}/llm/T/responses/shard-i-of-N.done          completion marker, written last

``KEY`` is the shard key: a hash of the request file and the model fingerprint, so another
model (or other requests) never reuses these responses. The ``.done`` marker names the key,
the request file's hash and the fingerprint; a reader never trusts it as found but checks it
against the request file it reads (:func:`verified_done`), so a marker left by a zombie run
or by an earlier request set is refused. Each run of the shard is an attempt
with a prefix of its own (a sequence number, then a random token, so two attempts started
at once never share a name), and writes one part file per generated batch in one PUT: no
object is ever rewritten or appended to. Readers merge every attempt's parts in order; a
successful response beats an error, and among two of a kind the later one wins.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

from jobs.errors import PermanentError
from jobs.layout import Layout
from jobs.llm.batchfile import ShardSpec, parse_journal, read_responses
from jobs.storage import Storage, basename, join

log = logging.getLogger(__name__)

_ATTEMPT_RE = re.compile(r"^attempt-(\d{5})-([0-9a-f]+)$")
_PART_SUFFIX = ".jsonl"  # a local write in flight is ``part-*.jsonl.partial``: never read


@dataclass(frozen=True)
class ShardFiles:
    """URIs of one shard's files; ``responses`` is the prefix holding every key's attempts."""

    requests: str
    responses: str
    stats: str
    done: str

    @classmethod
    def of(cls, layout: Layout, task: str, shard: ShardSpec) -> ShardFiles:
        base = layout.llm_task(task)
        out = join(base, "responses", shard.stem)
        return cls(
            requests=join(base, "requests", shard.stem + ".jsonl"),
            responses=out,
            stats=out + ".stats.json",
            done=out + ".done",
        )

    def key_prefix(self, key: str) -> str:
        """The prefix of the responses generated for one shard key."""
        return join(self.responses, key)


class ShardNotDoneError(PermanentError, RuntimeError):
    """A shard's responses were asked for, but no valid ``.done`` marker vouches for them."""


def shard_key(requests_sha256: str, model_sha256: str) -> str:
    """The key of a shard's responses: 16 hex digits of its requests and model hashes."""
    return hashlib.sha256(f"{requests_sha256}:{model_sha256}".encode()).hexdigest()[:16]


def requests_hash(data: bytes) -> str:
    """The hash of a request file's bytes, as markers and shard keys name it."""
    return hashlib.sha256(data).hexdigest()


def verified_done(
    storage: Storage, files: ShardFiles, requests_sha: str | None = None
) -> dict[str, Any] | None:
    """The shard's ``.done`` marker if it vouches for the current request file, else None.

    ``requests_sha`` is the hash of the request file as the caller read it (read here when
    None). The marker must name that hash, and its shard key must be the one recomputed from
    the hash and the model fingerprint the marker records; a marker of the runner before
    part files (no key) must name the hash. The model itself is checked by the runner, which
    is where it can be fingerprinted (readers run where the weights are not).
    """
    if not storage.exists(files.done):
        return None
    try:
        marker = storage.read_json(files.done)
    except ValueError:
        log.warning("%s: not JSON; the shard is not done", files.done)
        return None
    if requests_sha is None:
        requests_sha = requests_hash(storage.read_bytes(files.requests))
    if not isinstance(marker, dict) or marker.get("requests_sha256") != requests_sha:
        log.warning("%s: marks other requests than %s done; ignored", files.done, files.requests)
        return None
    if "shard_key" in marker:
        model = (marker.get("model_fingerprint") or {}).get("sha256")
        if not model or marker["shard_key"] != shard_key(requests_sha, model):
            log.warning("%s: its shard key is not its requests' and model's; ignored", files.done)
            return None
    return marker


def list_attempts(storage: Storage, key_prefix: str) -> list[str]:
    """The attempt prefixes under ``key_prefix``, oldest first."""
    found = []
    for uri in storage.list(key_prefix):
        match = _ATTEMPT_RE.match(basename(uri))
        if match:
            found.append((int(match.group(1)), match.group(2), uri))
    return [uri for _, _, uri in sorted(found)]


def new_attempt(storage: Storage, key_prefix: str) -> str:
    """A fresh attempt prefix: the next sequence number plus a random token."""
    names = [basename(u) for u in list_attempts(storage, key_prefix)]
    seq = 1 + max((int(name.split("-")[1]) for name in names), default=0)
    return join(key_prefix, f"attempt-{seq:05d}-{uuid.uuid4().hex[:12]}")


def part_uri(attempt: str, index: int) -> str:
    return join(attempt, f"part-{index:05d}{_PART_SUFFIX}")


def merge_responses(storage: Storage, key_prefix: str) -> dict[str, dict[str, Any]]:
    """Response lines by custom_id over every attempt under ``key_prefix`` (see module doc)."""
    merged: dict[str, dict[str, Any]] = {}
    for attempt in list_attempts(storage, key_prefix):
        parts = [u for u in storage.list(attempt) if basename(u).endswith(_PART_SUFFIX)]
        for uri in parts:
            data = storage.read_bytes(uri)
            journal = parse_journal(data, uri)
            if journal.torn:  # parts are written whole; a torn one was cut by other means
                log.warning("%s: ignoring a torn last line", uri)
            for line in journal.lines:
                old = merged.get(line["custom_id"])
                if old is None or not line.get("error") or old.get("error"):
                    merged[line["custom_id"]] = line
    return merged


def read_shard_lines(
    storage: Storage, files: ShardFiles, marker: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The merged response lines of a finished shard (the key its ``.done`` marker names).

    ``marker`` is one :func:`verified_done` returned; without it the marker is verified here.
    Raises :class:`ShardNotDoneError` when no valid marker vouches for the shard.
    """
    marker = marker or verified_done(storage, files)
    if marker is None:
        raise ShardNotDoneError(f"{files.done}: no valid marker for {files.requests}")
    if "shard_key" not in marker:
        # Finished by the runner before part files: one journal file next to the marker.
        return read_responses(storage, files.responses + ".jsonl").lines
    return list(merge_responses(storage, files.key_prefix(marker["shard_key"])).values())
