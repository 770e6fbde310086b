"""OpenAI batch-format JSONL: request shards in, response journals out.

Request line::

    {"custom_id", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model", "messages", "temperature", "top_p", "max_tokens", "seed"}}

Response line (the format ``vllm run-batch`` writes, plus the repair bookkeeping)::

    {"id", "custom_id", "response": {"status_code", "request_id", "body": {"model",
     "choices": [{"index": 0, "message": {"role": "assistant", "content"}, "finish_reason"}],
     "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}},
     "error": null | {"message"}, "attempts": int, "first_attempt": str | null,
     "first_attempt_usage": usage | null}
"""

from __future__ import annotations

import hashlib
import json
import re
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.llm.engine import ChatRequest, ChatResponse
from jobs.storage import Storage, join

CHAT_URL = "/v1/chat/completions"
_SHARD_RE = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``count`` (0-based), named ``shard-00003-of-00016``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard: need 0 <= index < count, got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        """Parse ``"3/16"`` (the ``--shard`` flag)."""
        match = _SHARD_RE.match(text.strip())
        if not match:
            raise ValueError(f"shard: expected INDEX/COUNT such as 3/16, got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def stem(self) -> str:
        return f"shard-{self.index:05d}-of-{self.count:05d}"


def shard_name(index: int, count: int, suffix: str = ".jsonl") -> str:
    """File name of one shard, e.g. ``shard-00003-of-00016.jsonl``."""
    return ShardSpec(index, count).stem + suffix


# -- requests ---------------------------------------------------------------------------------


def request_to_line(req: ChatRequest, model: str) -> dict[str, Any]:
    """The batch-format line for one request."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [dict(m) for m in req.messages],
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_tokens": req.max_tokens,
        "seed": req.seed,
    }
    if req.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": req.json_schema},
        }
    return {"custom_id": req.custom_id, "method": "POST", "url": CHAT_URL, "body": body}


def request_from_line(obj: Any, where: str, defaults: dict[str, Any] | None = None) -> ChatRequest:
    """Parse one request line; ``where`` (file:line) names the culprit in errors."""
    if not isinstance(obj, dict) or not isinstance(obj.get("body"), dict):
        raise ValueError(f"{where}: not a batch request line (need an object with 'body')")
    if obj.get("url", CHAT_URL) != CHAT_URL:
        raise ValueError(f"{where}: unsupported url {obj.get('url')!r} (only {CHAT_URL})")
    body, defaults = obj["body"], defaults or {}
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: body.messages must be a non-empty list")
    for msg in messages:
        if (
            not isinstance(msg, dict)
            or not isinstance(msg.get("content"), str)
            or "role" not in msg
        ):
            raise ValueError(f"{where}: each message needs a 'role' and a string 'content'")
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") if isinstance(fmt, dict) else None

    def pick(key: str, fallback: Any) -> Any:
        value = body.get(key)
        return defaults.get(key, fallback) if value is None else value

    try:
        return ChatRequest(
            custom_id=str(obj.get("custom_id") or ""),
            messages=tuple(messages),
            temperature=float(pick("temperature", 0.7)),
            top_p=float(pick("top_p", 1.0)),
            max_tokens=int(pick("max_tokens", 256)),
            seed=None if pick("seed", None) is None else int(pick("seed", None)),
            json_schema=schema,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


def split_requests(
    requests: Sequence[ChatRequest], num_shards: int, method: str = "round_robin"
) -> list[list[ChatRequest]]:
    """Deterministic split into ``num_shards`` lists (input order kept inside each shard).

    ``round_robin`` balances shard sizes; ``hash`` keeps a custom_id in the same shard however
    the request list is ordered or extended.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    seen: set[str] = set()
    shards: list[list[ChatRequest]] = [[] for _ in range(num_shards)]
    for i, req in enumerate(requests):
        if req.custom_id in seen:
            raise ValueError(f"duplicate custom_id {req.custom_id!r} in requests")
        seen.add(req.custom_id)
        if method == "round_robin":
            target = i % num_shards
        elif method == "hash":
            digest = hashlib.sha1(req.custom_id.encode()).digest()
            target = int.from_bytes(digest[:8], "big") % num_shards
        else:
            raise ValueError(f"unknown split method {method!r} (round_robin or hash)")
        shards[target].append(req)
    return shards


def write_request_shards(
    storage: Storage,
    requests_uri: str,
    requests: Sequence[ChatRequest],
    num_shards: int,
    model: str,
    method: str = "round_robin",
) -> list[str]:
    """Write ``shard-i-of-N.jsonl`` files under ``requests_uri`` (empty shards included)."""
    uris = []
    for index, shard in enumerate(split_requests(requests, num_shards, method)):
        uri = join(requests_uri, shard_name(index, num_shards))
        storage.write_text(uri, "".join(dumps_line(request_to_line(r, model)) for r in shard))
        uris.append(uri)
    return uris


class RequestShardWriter:
    """Request shards in a local folder, each request's line written as it comes.

    The round robin of :func:`split_requests` (request ``i`` to shard ``i % num_shards``, in
    the order added), so the same requests in the same order give the bytes
    :func:`write_request_shards` writes. It holds one line at a time and 8 bytes per request
    (a hash of its custom_id); :meth:`close` checks no custom_id came twice, reading the files
    back only where two hashes agree, and returns the shard files, empty ones included.
    """

    def __init__(self, folder: Path, num_shards: int, model: str) -> None:
        if num_shards < 1:
            raise ValueError(f"num_shards must be >= 1, got {num_shards}")
        self.model = model
        self.paths = [Path(folder) / shard_name(i, num_shards) for i in range(num_shards)]
        self._files = [path.open("wb") for path in self.paths]
        self._ids = array("Q")
        self.count = 0

    def add(self, request: ChatRequest) -> None:
        line = dumps_line(request_to_line(request, self.model)).encode("utf-8")
        self._files[self.count % len(self._files)].write(line)
        self._ids.append(_id_hash(request.custom_id))
        self.count += 1

    def close_files(self) -> None:
        for f in self._files:
            f.close()

    def close(self) -> list[Path]:
        import numpy as np

        self.close_files()
        hashes = np.sort(np.frombuffer(self._ids, dtype=np.uint64))
        twice = set(hashes[1:][hashes[1:] == hashes[:-1]].tolist())
        if twice:
            seen: set[str] = set()
            for path in self.paths:
                with path.open("rb") as f:
                    for line in f:
                        custom_id = json.loads(line)["custom_id"]
                        if _id_hash(custom_id) not in twice:
                            continue
                        if custom_id in seen:
                            raise ValueError(f"duplicate custom_id {custom_id!r} in requests")
                        seen.add(custom_id)
        return self.paths


def _id_hash(custom_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(custom_id.encode(), digest_size=8).digest(), "big")


def read_requests(
    storage: Storage, uri: str, defaults: dict[str, Any] | None = None
) -> list[ChatRequest]:
    """All requests of one shard; a malformed line or duplicate id is an error naming it."""
    return parse_requests(storage.read_bytes(uri), uri, defaults)


def parse_requests(
    data: bytes, uri: str, defaults: dict[str, Any] | None = None
) -> list[ChatRequest]:
    """The requests of a shard file's bytes (:func:`read_requests`); ``uri`` names errors.

    Callers that hash the file parse the same bytes, so the hash is of what they read.
    """
    out: list[ChatRequest] = []
    seen: set[str] = set()
    for lineno, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{uri}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: invalid JSON ({exc.msg})") from exc
        req = request_from_line(obj, where, defaults)
        if req.custom_id in seen:
            raise ValueError(f"{where}: duplicate custom_id {req.custom_id!r}")
        seen.add(req.custom_id)
        out.append(req)
    return out


# -- responses --------------------------------------------------------------------------------


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def response_to_line(
    resp: ChatResponse,
    model: str,
    attempts: int = 1,
    first_attempt: ChatResponse | None = None,
) -> dict[str, Any]:
    """The batch-format response line; ``first_attempt`` is the unparseable one, if repaired."""
    rid = "req-" + hashlib.sha1(resp.custom_id.encode()).hexdigest()[:20]
    body = {
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": resp.text},
                "finish_reason": resp.finish_reason,
            }
        ],
        "usage": _usage(resp.prompt_tokens, resp.completion_tokens),
    }
    return {
        "id": "batch-" + rid,
        "custom_id": resp.custom_id,
        "response": {"status_code": 500 if resp.error else 200, "request_id": rid, "body": body},
        "error": {"message": resp.error} if resp.error else None,
        "attempts": attempts,
        "first_attempt": first_attempt.text if first_attempt else None,
        "first_attempt_usage": (
            _usage(first_attempt.prompt_tokens, first_attempt.completion_tokens)
            if first_attempt
            else None
        ),
    }


@dataclass(frozen=True)
class ResponseLine:
    """A flat view of one response line, for collectors and accounting."""

    custom_id: str
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    error: str | None
    attempts: int
    first_attempt: str | None
    spent_prompt_tokens: int  # including the first attempt of a repaired request
    spent_completion_tokens: int

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ResponseLine:
        body = (obj.get("response") or {}).get("body") or {}
        choice = (body.get("choices") or [{}])[0]
        usage = body.get("usage") or {}
        first = obj.get("first_attempt_usage") or {}
        prompt, completion = (
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
        )
        error = obj.get("error")
        return cls(
            custom_id=obj["custom_id"],
            text=(choice.get("message") or {}).get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=prompt,
            completion_tokens=completion,
            error=error.get("message", str(error)) if isinstance(error, dict) else error,
            attempts=int(obj.get("attempts", 1)),
            first_attempt=obj.get("first_attempt"),
            spent_prompt_tokens=prompt + int(first.get("prompt_tokens", 0)),
            spent_completion_tokens=completion + int(first.get("completion_tokens", 0)),
        )


@dataclass(frozen=True)
class Journal:
    """The complete lines of a response journal and whether a torn tail was cut off."""

    lines: list[dict[str, Any]]
    good_bytes: int  # length of the prefix that holds only complete lines
    torn: bool


def parse_journal(data: bytes, where: str = "journal") -> Journal:
    """Parse response JSONL, tolerating a torn last line (a writer killed mid-append).

    Only the tail after the last newline can be torn; a bad line before it means the file
    was corrupted some other way, which is an error naming the line.
    """
    cut = data.rfind(b"\n") + 1
    complete, tail = data[:cut], data[cut:]
    lines = []
    for lineno, raw in enumerate(complete.split(b"\n")[:-1], start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}:{lineno}: corrupt response line ({exc.msg})") from exc
        if not isinstance(obj, dict) or "custom_id" not in obj:
            raise ValueError(f"{where}:{lineno}: response line without custom_id")
        lines.append(obj)
    return Journal(lines, cut, torn=bool(tail.strip()))


def read_responses(storage: Storage, uri: str) -> Journal:
    """Read a response journal (absent → empty), dropping a torn last line."""
    if not storage.exists(uri):
        return Journal([], 0, False)
    return parse_journal(storage.read_bytes(uri), uri)


def dumps_line(obj: dict[str, Any]) -> str:
    """One JSONL line; ``ensure_ascii=False`` keeps maths and non-English text readable."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def dumps_lines(objs: Iterable[dict[str, Any]]) -> str:
    return "".join(dumps_line(o) for o in objs)
