"""The refine job's LLM ratings, stored batch by batch so that a rerun pays for none twice.

The fine-grained rounds rate in-process (each round's sample depends on the previous round's
result, so they cannot be prepared as request shards up front). Every rated batch is written
as one part file of its own, never rewritten::

    {run}/llm/doc_ratings/round-T/part-{attempt}-{token}-{batch:05d}.jsonl

Each line holds the request's ``custom_id``, its ``key`` (a hash of the request body and the
rater's model fingerprint, as a shard key is) and the final and first responses. A rerun of
refine (the job failed or was killed in round 2, say) asks :class:`StoredRater` for the same
requests, finds them by key and generates only those without a stored success: another
model, prompt or document text never reuses a rating, and a stored engine error is retried.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from jobs.filter.rating import Outcome, ParsedRating, parse_rating, rate, rating_request
from jobs.llm.engine import ChatRequest, ChatResponse, Engine
from jobs.storage import Storage, basename, join

log = logging.getLogger(__name__)

_PART = "part-"


def request_key(req: ChatRequest, model_sha256: str) -> str:
    """What decides a rating: the request as sent and the model that answers it."""
    body = {
        "messages": list(req.messages),
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_tokens": req.max_tokens,
        "seed": req.seed,
        "model": model_sha256,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


def _response(obj: dict[str, Any] | None) -> ChatResponse | None:
    return None if obj is None else ChatResponse(**obj)


def outcome_of(custom_id: str, response: ChatResponse, first: ChatResponse | None) -> Outcome:
    """The outcome :func:`jobs.filter.rating.rate` gave for these responses."""
    parsed = ParsedRating(None, response.error) if response.error else parse_rating(response.text)
    return Outcome(custom_id, parsed, response, first)


class RatingStore:
    """The part files of one run's ratings; ``attempt`` names this run's parts."""

    def __init__(self, storage: Storage, uri: str, attempt: str) -> None:
        self.storage, self.uri = storage, uri
        self.prefix = f"{_PART}{attempt}-{uuid.uuid4().hex[:8]}"
        self._batches = 0

    def _round(self, t: int) -> str:
        return join(self.uri, f"round-{t}")

    def load(self, t: int) -> dict[str, Outcome]:
        """Stored outcomes of round ``t`` by key; a success beats an error."""
        found: dict[str, Outcome] = {}
        for uri in self.storage.walk_files(self._round(t)):
            if not (basename(uri).startswith(_PART) and uri.endswith(".jsonl")):
                continue
            for line in self.storage.read_text(uri).splitlines():
                if not line.strip():
                    continue
                obj = json.loads(line)
                out = outcome_of(
                    obj["custom_id"], _response(obj["response"]), _response(obj["first"])
                )  # type: ignore[arg-type]
                known = found.get(obj["key"])
                if known is None or (known.response.error and not out.response.error):
                    found[obj["key"]] = out
        return found

    def save(self, t: int, keys: Sequence[str], outcomes: Sequence[Outcome]) -> None:
        """One part file with these outcomes (one PUT; no object is ever rewritten)."""
        lines = [
            json.dumps(
                {
                    "custom_id": out.custom_id,
                    "key": key,
                    "response": dataclasses.asdict(out.response),
                    "first": dataclasses.asdict(out.first) if out.first else None,
                },
                sort_keys=True,
            )
            for key, out in zip(keys, outcomes, strict=True)
        ]
        uri = join(self._round(t), f"{self.prefix}-{self._batches:05d}.jsonl")
        self._batches += 1
        self.storage.write_text(uri, "\n".join(lines) + "\n", "application/jsonl")


class StoredRater:
    """The rater of :func:`jobs.filter.rounds.run_rounds`: stored ratings first, then the LLM.

    The engine is built on the first rating that is not stored, so a rerun whose ratings are
    all stored loads no model. ``reused`` and ``generated`` count ratings for the stats.
    """

    def __init__(
        self,
        store: RatingStore,
        engine_factory: Callable[[], Engine],
        cfg: Any,
        batch_size: int,
        model_sha256: str,
    ) -> None:
        self.store, self.engine_factory, self.cfg = store, engine_factory, cfg
        self.batch_size, self.model_sha256 = batch_size, model_sha256
        self.reused = self.generated = 0
        self._engine: Engine | None = None

    def __call__(self, t: int, docs: Sequence[tuple[str, str]]) -> list[Outcome]:
        c = self.cfg
        requests = [
            rating_request(f"t{t}-{d}", text, c.max_doc_chars, c.max_new_tokens, c.seed)
            for d, text in docs
        ]
        keys = [request_key(r, self.model_sha256) for r in requests]
        stored = self.store.load(t)
        out: dict[str, Outcome] = {}
        for req, key in zip(requests, keys, strict=True):
            hit = stored.get(key)
            if hit is not None and not hit.response.error:
                out[key] = dataclasses.replace(hit, custom_id=req.custom_id)
        self.reused += len(out)
        todo = [(r, k) for r, k in zip(requests, keys, strict=True) if k not in out]
        if todo:
            log.info("round %d: %d ratings stored, %d to rate", t, len(out), len(todo))
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            if self._engine is None:
                self._engine = self.engine_factory()
            got = rate(self._engine, [r for r, _ in batch], self.batch_size)
            self.store.save(t, [k for _, k in batch], got)
            out.update(zip((k for _, k in batch), got, strict=True))
            self.generated += len(batch)
        return [out[k] for k in keys]
