"""Chat completions against any OpenAI-compatible server (vLLM, llama.cpp, a hosted model).

A small client on ``httpx``: a thread pool bounds the requests in flight, every request has a
timeout, and 429s, 5xx answers and connection errors are retried with capped exponential
backoff and full jitter, honouring ``Retry-After``. A request that still fails becomes a
:meth:`ChatResponse.failed`; ``generate`` never raises for one bad request. It raises
:class:`EndpointRejected` (permanent, exit 2) when the server refuses the key or does not know
the model or the URL (401, 403, 404): every request would get the same answer, so the shard
fails at once, naming the status, the endpoint (without credentials) and the model.

The API key is read from the environment variable named by ``api_key_env`` (in Kubernetes a
Secret feeds it through ``secretKeyRef``), never from a config file; no key, no header.

Prefill: the chat API has no standard way to continue a final assistant message. A prefilled
request carries vLLM's ``continue_final_message`` / ``add_generation_prompt`` flags (llama.cpp's
``llama-server`` continues a final assistant message on its own; llama-cpp-python's server
ignores unknown fields and opens a new assistant turn after it; a strict hosted API that rejects
them is served with ``continue_flags=False``). Either way the response text is prefill +
returned content, as with the other engines.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from jobs.errors import PermanentError
from jobs.llm.engine import FINISH_LENGTH, FINISH_STOP, ChatRequest, ChatResponse

log = logging.getLogger(__name__)

# Worth another try: rate limited, a server error, or the server is busy/restarting.
_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# The same answer for every request: a bad key, no access, no such model or URL.
_REJECT_STATUS = {
    401: "the API key was refused",
    403: "access denied",
    404: "no such model or endpoint",
}


class EndpointRejected(PermanentError, RuntimeError):
    """The server refused the whole job (401/403/404); retrying cannot help."""


def public_url(url: str) -> str:
    """``url`` without user info, query or fragment: safe for logs and error messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _Retryable(Exception):
    """A failed attempt that may succeed later; ``wait_s`` is the server's Retry-After."""

    def __init__(self, message: str, wait_s: float | None = None) -> None:
        super().__init__(message)
        self.wait_s = wait_s


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class OpenAIEngine:
    """``POST {base_url}/chat/completions`` for each request, ``concurrency`` at a time."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        continue_flags: bool = True,
    ) -> None:
        import httpx

        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.model_name = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.continue_flags = continue_flags
        headers = {"Content-Type": "application/json"}
        api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # connect gets its own short limit so a dead server fails fast and is retried.
        timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.Client(headers=headers, timeout=timeout, limits=limits)
        self._jitter = random.Random()  # only spreads retries in time; never shapes output
        self._lock = threading.Lock()
        self._rejected: EndpointRejected | None = None  # set once: every later request fails
        log.info(
            "openai engine: %s model %s, %d in flight, timeout %.0fs, %d retries, key %s",
            public_url(self.url), model, concurrency, timeout_s, max_retries,
            f"from ${api_key_env}" if api_key else "none",
        )  # fmt: skip

    def close(self) -> None:
        self._client.close()

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """One response per request, in order; failures become error responses."""
        if not requests:
            return []
        pool = ThreadPoolExecutor(min(self.concurrency, len(requests)))
        try:
            futures = [pool.submit(self._answer, r) for r in requests]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in done:
                if future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # a rejection drops the rest

    def _answer(self, req: ChatRequest) -> ChatResponse:
        try:
            body = self._body(req)
        except Exception as exc:  # e.g. a message that does not serialise
            return ChatResponse.failed(req.custom_id, f"bad request: {exc}")
        last = ""
        for attempt in range(self.max_retries + 1):
            if self._rejected is not None:
                raise self._rejected
            try:
                return self._post(req, body)
            except EndpointRejected as exc:
                self._rejected = exc
                raise
            except _Retryable as exc:
                last = str(exc)
                if attempt == self.max_retries:
                    break
                wait = self._backoff(attempt, exc.wait_s)
                log.warning(
                    "request %s: %s; retry %d/%d in %.1fs",
                    req.custom_id, exc, attempt + 1, self.max_retries, wait,
                )  # fmt: skip
                time.sleep(wait)
            except Exception as exc:  # not worth retrying: a 4xx, a malformed answer
                log.warning("request %s failed: %s", req.custom_id, exc)
                return ChatResponse.failed(req.custom_id, str(exc))
        return ChatResponse.failed(
            req.custom_id, f"gave up after {self.max_retries + 1} attempts: {last}"
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter on a capped exponential; a server's Retry-After is a floor."""
        cap = min(self.max_backoff_s, self.backoff_s * 2**attempt)
        with self._lock:
            wait = self._jitter.uniform(0, cap)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_backoff_s))
        return wait

    def _body(self, req: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": [dict(m) for m in req.messages],
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_tokens,
        }
        if req.prefill is not None and self.continue_flags:
            body.update(req.template_flags())  # vLLM's names: continue the prefilled turn
        if req.seed is not None:
            body["seed"] = req.seed
        if req.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": req.json_schema},
            }
        return body

    def _post(self, req: ChatRequest, body: dict[str, Any]) -> ChatResponse:
        import httpx

        try:
            resp = self._client.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:  # refused, reset, server gone mid-answer
            raise _Retryable(f"connection error ({type(exc).__name__}: {exc})") from exc
        if resp.status_code in _RETRY_STATUS or resp.status_code >= 500:
            raise _Retryable(
                f"HTTP {resp.status_code}: {resp.text[:200]}",
                retry_after_s(resp.headers.get("Retry-After")),
            )
        if resp.status_code in _REJECT_STATUS:
            raise EndpointRejected(
                f"{public_url(self.url)} answered HTTP {resp.status_code} for model "
                f"{self.model_name!r} ({_REJECT_STATUS[resp.status_code]}): "
                f"{resp.text[:200]}"
            )
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:500]}")
        return _to_response(req, resp.json())


def _to_response(req: ChatRequest, payload: dict[str, Any]) -> ChatResponse:
    """Map a chat completion object to a ChatResponse (text = prefill + content)."""
    try:
        choice = payload["choices"][0]
        content = choice["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise RuntimeError(f"malformed chat completion: {str(payload)[:200]}") from exc
    usage = payload.get("usage") or {}
    finish = choice.get("finish_reason") or FINISH_STOP
    finish = FINISH_LENGTH if finish == "length" else finish
    return ChatResponse(
        custom_id=req.custom_id,
        text=(req.prefill or "") + content,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        finish_reason=finish,
    )
