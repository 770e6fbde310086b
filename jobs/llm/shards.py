"""Request sets and response sets of one LLM task, shared by every LLM stage.

``publish_requests`` commits the request shards; it never deletes responses: they are
stored under a key of their request file's hash (and the model's), and a ``.done`` marker is
checked against the request file it answers, so a collector never pairs new requests with
answers to old ones, and an unchanged shard keeps its answers whatever happened to prepare.
``load_responses`` refuses to read a task whose shards are not all (validly) finished, and
returns each request with its response (or None). ``open_responses`` checks the same, then
hands out the same pairs one request shard at a time (:class:`ResponseStream`), for a
collector whose output could outgrow memory.
``commit_collected`` writes a collector's table and quarantine; :class:`CollectWriter` writes
them as they are made, in part files of a bounded number of rows, and commits them the same
way (quarantine first, the same manifests and stats).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.cli import JobContext, base_parser
from jobs.commit import MANIFEST, SUCCESS, StageOutput, StageStats, require_committed
from jobs.layout import Layout
from jobs.llm.batchfile import RequestShardWriter, ResponseLine, ShardSpec, parse_requests
from jobs.llm.engine import ChatRequest
from jobs.llm.journal import ShardFiles, read_shard_lines, requests_hash, verified_done
from jobs.llm.results import IncompleteTaskError, require_task_done
from jobs.llm.tasks import generation_for
from jobs.storage import Storage, basename, join
from jobs.tables import PartWriter, schema, write_table

log = logging.getLogger(__name__)

REQUESTS = "requests"
RESPONSES = "responses"


def request_seed(base_seed: int, custom_id: str) -> int:
    """A per-request seed: fixed by the config seed and the id, not by shard placement."""
    digest = hashlib.sha256(f"{base_seed}:{custom_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF


def make_request(custom_id: str, messages: Sequence[dict[str, str]], gen: Any) -> ChatRequest:
    """One chat request with the run's sampling settings and a seed of its own."""
    return ChatRequest(
        custom_id=custom_id,
        messages=tuple(messages),
        temperature=gen.temperature,
        top_p=gen.top_p,
        max_tokens=gen.max_new_tokens,
        seed=request_seed(gen.seed, custom_id),
    )


def _fingerprint(paths: Sequence[Path]) -> str:
    """The request set's hash: each shard's name and bytes, read in chunks."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\x00")
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\x01")
    return digest.hexdigest()


def _committed_fingerprint(storage: Storage, requests_uri: str) -> str | None:
    if not storage.exists(join(requests_uri, SUCCESS)):
        return None
    try:
        return storage.read_json(join(requests_uri, MANIFEST)).get("fingerprint")
    except (ValueError, AttributeError):
        return None


def publish_requests(
    storage: Storage,
    task_uri: str,
    attempt: str,
    requests: Iterable[ChatRequest],
    num_shards: int,
    model: str,
    manifest: dict[str, Any],
    stats: StageStats,
) -> str:
    """Commit ``requests`` as ``num_shards`` shards under ``{task_uri}/requests``.

    Same requests → byte-identical shards, so every shard keeps its key and the responses
    already generated (finished shards are skipped by the runner). A shard whose requests
    changed gets a new key: its old responses are never read again, nor its old marker
    trusted. Nothing is deleted, so a prepare killed mid-commit (``_SUCCESS`` withdrawn)
    loses no response. Returns the request-set fingerprint. The shards are written to a
    local folder as the requests come (:class:`RequestShards`), so ``requests`` may be a
    generator of any length.
    """
    with RequestShards(storage, task_uri, attempt, num_shards, model) as shards:
        shards.add_all(requests)
        return shards.commit(manifest, stats)


class RequestShards:
    """A request set written as it is made, then committed as :func:`publish_requests` says.

    ``add`` writes each request's line to its shard file in a local temporary folder
    (:class:`jobs.llm.batchfile.RequestShardWriter`), so a prepare job never holds its
    requests; ``commit`` uploads the files and commits them with the manifest. Use it as a
    context manager: the folder goes when the block ends.
    """

    # A progress line every this many requests.
    LOG_EVERY = 100_000

    def __init__(
        self, storage: Storage, task_uri: str, attempt: str, num_shards: int, model: str
    ) -> None:
        self.storage, self.task_uri, self.attempt = storage, task_uri, attempt
        self.num_shards, self.model = num_shards, model
        self._folder = tempfile.TemporaryDirectory(prefix="synthllm-requests-")
        self._writer = RequestShardWriter(Path(self._folder.name), num_shards, model)
        self._started = time.monotonic()

    @classmethod
    def for_task(cls, ctx: JobContext, task: str) -> RequestShards:
        """The shards of one prepare job's ``task``: ``--num-shards`` when the caller gave
        one, else ``generation.num_shards`` (the DAG maps that many shards of every task,
        whatever engine answers them), and the task's model (``generation_for``)."""
        num_shards = getattr(ctx.args, "num_shards", None) or ctx.cfg.generation.num_shards
        model = generation_for(ctx.cfg, task).model
        storage = Storage(ctx.cfg.storage)
        return cls(storage, ctx.layout.llm_task(task), ctx.attempt, num_shards, model)

    def __enter__(self) -> RequestShards:
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.close_files()
        self._folder.cleanup()

    @property
    def count(self) -> int:
        return self._writer.count

    def add(self, request: ChatRequest) -> None:
        self._writer.add(request)
        if self._writer.count % self.LOG_EVERY == 0:
            log.info(
                "%d requests written to %d shards (%.0f s)",
                self._writer.count, self.num_shards, time.monotonic() - self._started,
            )  # fmt: skip

    def add_all(self, requests: Iterable[ChatRequest]) -> None:
        for request in requests:
            self.add(request)

    def commit(self, manifest: dict[str, Any], stats: StageStats) -> str:
        paths = self._writer.close()
        requests_uri = join(self.task_uri, REQUESTS)
        out = StageOutput(self.storage, requests_uri, self.attempt, manifest.get("run_id"))
        tmp = out.begin()
        for path in paths:
            self.storage.upload_file(path, join(tmp, path.name))
        fingerprint = _fingerprint(paths)
        previous = _committed_fingerprint(self.storage, requests_uri)
        if previous != fingerprint:
            log.info(
                "request set %s -> %s: changed shards get new keys, unchanged ones keep theirs",
                previous,
                fingerprint,
            )
        body = {
            **manifest,
            "model": self.model,
            "num_requests": self.count,
            "num_shards": self.num_shards,
            "shards": [path.name for path in paths],
            "fingerprint": fingerprint,
        }
        out.commit(body, stats)
        log.info("%d requests in %d shards under %s", self.count, self.num_shards, requests_uri)
        return fingerprint


def commit_requests(
    ctx: JobContext,
    job: str,
    task: str,
    requests: Iterable[ChatRequest],
    stats: StageStats,
    inputs: list[str],
    prompt_version: str,
) -> str:
    """Commit one prepare job's requests for ``task`` with its manifest (a prepare job's end).

    The shards are :meth:`RequestShards.for_task`'s. Returns the request-set fingerprint.
    A job that counts its rows while it makes the requests writes them with
    :meth:`RequestShards.for_task` itself and calls :func:`commit_prepared` at its end.
    """
    with RequestShards.for_task(ctx, task) as shards:
        shards.add_all(requests)
        return commit_prepared(ctx, shards, job, task, stats, inputs, prompt_version)


def commit_prepared(
    ctx: JobContext,
    shards: RequestShards,
    job: str,
    task: str,
    stats: StageStats,
    inputs: list[str],
    prompt_version: str,
) -> str:
    """Commit the requests written to ``shards`` with the job's manifest and ``stats``."""
    stats.check_balance()
    manifest = ctx.manifest(job, inputs, task=task, prompt_version=prompt_version)
    return shards.commit(manifest, stats)


def prepare_parser(description: str) -> argparse.ArgumentParser:
    """The base job flags plus ``--num-shards`` (default: generation.num_shards)."""
    p = base_parser(description)
    p.add_argument("--num-shards", type=_positive, default=None, help="request shards to write")
    return p


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number


Pair = tuple[ChatRequest, ResponseLine | None, str]  # request, response, request file


@dataclass
class ResponseSet:
    """Every request of a task with its response (None when the runner wrote none)."""

    manifest: dict[str, Any]
    pairs: list[Pair] = field(default_factory=list)
    unknown_ids: int = 0
    models: dict[str, str] = field(default_factory=dict)  # custom_id -> model that answered

    def __iter__(self) -> Iterator[Pair]:
        """The pairs, as a :class:`ResponseStream` yields them."""
        return iter(self.pairs)

    def model_of(self, custom_id: str) -> str:
        """The model named in the response body, else the one the requests were written for."""
        return self.models.get(custom_id) or str(self.manifest.get("model", "unknown"))

    @property
    def tokens(self) -> dict[str, int]:
        """Tokens spent, repairs included."""
        lines = [r for _, r, _ in self.pairs if r is not None]
        return {
            "prompt": sum(r.spent_prompt_tokens for r in lines),
            "completion": sum(r.spent_completion_tokens for r in lines),
        }


@dataclass
class ShardResponses:
    """One request shard's requests, each with its response (None when none was written)."""

    source: str  # the request file's name, as quarantine rows name it
    pairs: list[tuple[ChatRequest, ResponseLine | None]]
    models: dict[str, str]  # custom_id -> model that answered
    unknown_ids: int  # responses to no request of this shard


def read_shard_responses(
    storage: Storage, layout: Layout, task: str, shard: ShardSpec
) -> ShardResponses:
    """Read one finished shard; its marker is checked against the request bytes parsed."""
    files = ShardFiles.of(layout, task, shard)
    data = storage.read_bytes(files.requests)
    marker = verified_done(storage, files, requests_hash(data))
    if marker is None:
        raise IncompleteTaskError(f"task {task!r}: {shard.stem} changed while being read")
    requests = parse_requests(data, files.requests)
    wanted = {r.custom_id for r in requests}
    by_id: dict[str, ResponseLine] = {}
    models: dict[str, str] = {}
    unknown = 0
    for obj in read_shard_lines(storage, files, marker):
        line = ResponseLine.from_json(obj)
        if line.custom_id not in wanted:
            unknown += 1
            continue
        by_id[line.custom_id] = line  # merged: one line per id
        model = ((obj.get("response") or {}).get("body") or {}).get("model")
        if model:
            models[line.custom_id] = str(model)
    pairs = [(r, by_id.get(r.custom_id)) for r in requests]
    return ShardResponses(basename(files.requests), pairs, models, unknown)


@dataclass
class ResponseStream:
    """The pairs of a finished task, read one request shard at a time (:func:`open_responses`).

    Iterating yields what :attr:`ResponseSet.pairs` holds, in the same order, holding one
    shard's requests and responses at a time. :meth:`model_of` answers for the shard being
    read; :attr:`tokens` and :attr:`unknown_ids` are the task's once iteration is over.
    A stream is read once.
    """

    storage: Storage
    layout: Layout
    task: str
    manifest: dict[str, Any]
    shards: list[ShardSpec]
    unknown_ids: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})
    _models: dict[str, str] = field(default_factory=dict, repr=False)
    _read: bool = field(default=False, repr=False)

    def read_shards(self) -> Iterator[ShardResponses]:
        """Each shard in index order; the totals grow as they are read."""
        if self._read:
            raise RuntimeError(f"task {self.task!r}: a ResponseStream is read once")
        self._read = True
        started, done = time.monotonic(), 0
        for n, spec in enumerate(self.shards, 1):
            shard = read_shard_responses(self.storage, self.layout, self.task, spec)
            self.unknown_ids += shard.unknown_ids
            for _, line in shard.pairs:
                if line is not None:
                    self.tokens["prompt"] += line.spent_prompt_tokens
                    self.tokens["completion"] += line.spent_completion_tokens
            self._models = shard.models
            yield shard
            done += len(shard.pairs)
            elapsed = time.monotonic() - started
            log.info(
                "%s: %d of %d shards through (%s), %d requests so far, %.0f s",
                *(self.task, n, len(self.shards), shard.source, done, elapsed),
            )
        if self.unknown_ids:
            log.warning("%s: ignored %d responses to unknown requests", self.task, self.unknown_ids)

    def __iter__(self) -> Iterator[Pair]:
        for shard in self.read_shards():
            for request, line in shard.pairs:
                yield request, line, shard.source

    def model_of(self, custom_id: str) -> str:
        """As :meth:`ResponseSet.model_of`, for a request of the shard being read."""
        return self._models.get(custom_id) or str(self.manifest.get("model", "unknown"))


def open_responses(storage: Storage, layout: Layout, task: str) -> ResponseStream:
    """Check that ``task``'s request set is committed and every shard done; read nothing more.

    Raises :class:`jobs.llm.results.IncompleteTaskError` naming unfinished shards, before a
    caller has written anything.
    """
    requests_uri = join(layout.llm_task(task), REQUESTS)
    require_committed(storage, requests_uri)
    manifest = storage.read_json(join(requests_uri, MANIFEST))
    return ResponseStream(storage, layout, task, manifest, require_task_done(storage, layout, task))


def load_responses(storage: Storage, layout: Layout, task: str) -> ResponseSet:
    """Read the committed request set of ``task`` and its responses; all shards must be done.

    Raises :class:`jobs.llm.results.IncompleteTaskError` naming unfinished shards.
    """
    stream = open_responses(storage, layout, task)
    result = ResponseSet(stream.manifest)
    for shard in stream.read_shards():
        result.pairs.extend((r, line, shard.source) for r, line in shard.pairs)
        result.models.update(shard.models)
    result.unknown_ids = stream.unknown_ids
    return result


def failure_reason(line: ResponseLine | None) -> str | None:
    """``missing_response`` / ``request_error`` for responses that carry no usable text."""
    if line is None:
        return "missing_response"
    if line.error:
        return "request_error"
    return None


def response_raw(request: ChatRequest, line: ResponseLine | None, **extra: Any) -> dict[str, Any]:
    """What a quarantine row keeps of a failed response: the raw text and its context."""
    raw: dict[str, Any] = {"custom_id": request.custom_id, **extra}
    if line is not None:
        raw.update(
            text=line.text,
            first_attempt=line.first_attempt,
            attempts=line.attempts,
            finish_reason=line.finish_reason,
            error=line.error,
        )
    return raw


@dataclass
class Collected:
    """The rows and accounting of one collect run (built purely; nothing written yet).

    It takes rows as a :class:`CollectWriter` does, so one collector can fill either.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    stats: StageStats = field(default_factory=StageStats)

    def add_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        self.rows.extend(rows)

    def add_quarantine(self, row: dict[str, Any]) -> None:
        self.quarantine.append(row)


def _quarantine_stats(num_rows: int, stats: StageStats) -> StageStats:
    """The quarantine output's own accounting: every row in is out, by the table's reasons."""
    return StageStats(num_rows, num_rows, extra={"by_reason": stats.quarantined})


def commit_collected(
    storage: Storage,
    collected: Collected,
    table_uri: str,
    quarantine_uri: str,
    attempt: str,
    manifest: dict[str, Any],
) -> None:
    """Commit quarantine first, then the table, so a committed table implies its quarantine.

    ``table_uri``'s last segment names the schema (``questions`` or ``qa``).
    """
    n_quarantined = len(collected.quarantine)
    run_id = manifest.get("run_id")
    q_out = StageOutput(storage, quarantine_uri, attempt, run_id)
    write_table(storage, collected.quarantine, q_out.begin(), schema("quarantine"))
    q_out.commit(
        {**manifest, "table": "quarantine"}, _quarantine_stats(n_quarantined, collected.stats)
    )
    t_out = StageOutput(storage, table_uri, attempt, run_id)
    write_table(storage, collected.rows, t_out.begin(), schema(basename(table_uri)))
    t_out.commit({**manifest, "table": basename(table_uri)}, collected.stats)


class CollectWriter:
    """A collector's table and quarantine, written while it runs and committed at the end.

    The streaming form of :func:`commit_collected`: both outputs begin (stage) when it is
    made; :meth:`add_rows` and :meth:`add_quarantine` go to one
    :class:`jobs.tables.PartWriter` each, writing parts of ``batch_rows`` rows into the
    stagings; :meth:`commit` commits quarantine first, then the table, with the manifests and
    stats :func:`commit_collected` writes. Used as a context manager, it deletes the stagings
    not yet committed when the block raises (a later commit would, too; this keeps ``_tmp``
    clean now). The fence is :class:`jobs.commit.StageOutput`'s: an attempt that commits
    while this one runs makes this one's commit fail.
    """

    def __init__(
        self,
        storage: Storage,
        table_uri: str,
        quarantine_uri: str,
        attempt: str,
        run_id: str | None,
        batch_rows: int,
    ) -> None:
        self.storage = storage
        self.table_name = basename(table_uri)
        self._q_out = StageOutput(storage, quarantine_uri, attempt, run_id)
        self._t_out = StageOutput(storage, table_uri, attempt, run_id)
        self.quarantine = PartWriter(storage, self._q_out.begin(), schema("quarantine"), batch_rows)
        self.rows = PartWriter(storage, self._t_out.begin(), schema(self.table_name), batch_rows)
        self._committed: list[StageOutput] = []

    def add_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self.rows.add(rows)

    def add_quarantine(self, row: Mapping[str, Any]) -> None:
        self.quarantine.add([row])

    def commit(self, manifest: dict[str, Any], stats: StageStats) -> None:
        """Write the last parts, check the rows written against ``stats``, commit both."""
        self.quarantine.close()
        self.rows.close()
        if self.quarantine.num_rows != stats.rows_quarantined:
            raise AssertionError(
                f"{self.quarantine.num_rows} quarantine rows written, stats count "
                f"{stats.rows_quarantined} {stats.quarantined}"
            )
        q_stats = _quarantine_stats(self.quarantine.num_rows, stats)
        self._q_out.commit({**manifest, "table": "quarantine"}, q_stats)
        self._committed.append(self._q_out)
        self._t_out.commit({**manifest, "table": self.table_name}, stats)
        self._committed.append(self._t_out)

    def __enter__(self) -> CollectWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            return
        for out in (self._q_out, self._t_out):
            if out not in self._committed:
                out.abort()
