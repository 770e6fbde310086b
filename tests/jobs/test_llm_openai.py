"""The openai engine against llama.cpp's OpenAI-compatible server on loopback, and its faults.

Retry behaviour (429 + Retry-After, timeouts, concurrency) is checked against a small stdlib
HTTP server that answers what the test scripts; completions and a server killed mid-shard
against a real ``llama_cpp.server`` serving the bundled GGUF.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jobs.config import GenerationConfig
from jobs.errors import EXIT_PERMANENT, classify
from jobs.llm.engine import ChatRequest, make_engine
from jobs.llm.openai_engine import EndpointRejected, OpenAIEngine, public_url, retry_after_s
from jobs.llm.transformers_engine import resolve_model


def _ask(cid: str, text: str, max_tokens: int = 8, prefill: str | None = None) -> ChatRequest:
    messages = [{"role": "user", "content": text}]
    if prefill is not None:
        messages.append({"role": "assistant", "content": prefill})
    return ChatRequest(cid, tuple(messages), 0.0, 1.0, max_tokens, seed=7)


def _completion(content: str, finish: str = "stop") -> dict:
    return {
        "choices": [
            {"message": {"role": "assistant", "content": content}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3},
    }


class _Scripted:
    """A loopback HTTP server answering POSTs from a script of (delay_s, status, headers, body)."""

    def __init__(self, script: list[tuple[float, int, dict, dict]]) -> None:
        self.script, self.calls, self.in_flight, self.max_in_flight = list(script), [], 0, 0
        lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the stdlib's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    owner.calls.append((time.monotonic(), dict(self.headers), body))
                    step = owner.script.pop(0) if len(owner.script) > 1 else owner.script[0]
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                delay, status, headers, payload = step
                time.sleep(delay)
                with lock:
                    owner.in_flight -= 1
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client timed out and hung up
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    servers: list[_Scripted] = []

    def _start(*script):
        servers.append(_Scripted(list(script)))
        return servers[-1]

    yield _start
    for server in servers:
        server.close()


def test_retry_after_parses_seconds_and_http_dates():
    assert retry_after_s("3") == 3.0
    assert retry_after_s(" 0.5 ") == 0.5
    assert retry_after_s("-4") == 0.0
    assert 9.0 <= retry_after_s(formatdate(time.time() + 10, usegmt=True)) <= 10.0
    assert retry_after_s(None) is None
    assert retry_after_s("soon") is None


def test_429_is_retried_after_retry_after_and_the_body_is_openai_shaped(scripted, monkeypatch):
    server = scripted(
        (0, 429, {"Retry-After": "1"}, {"error": {"message": "slow down"}}),
        (0, 200, {}, _completion(" 5}")),
    )
    monkeypatch.setenv("SYNTH_TEST_KEY", "sk-test-123")
    engine = OpenAIEngine(
        server.url, "m", api_key_env="SYNTH_TEST_KEY", max_retries=2, backoff_s=0.01
    )
    start = time.monotonic()
    [resp] = engine.generate([_ask("a", "2+3?", max_tokens=5, prefill="\\boxed{")])
    assert resp.error is None
    assert (resp.text, resp.prompt_tokens, resp.completion_tokens, resp.finish_reason) == (
        "\\boxed{ 5}",
        11,
        3,
        "stop",
    )
    (t0, headers, body), (t1, _, again) = server.calls
    assert t1 - t0 >= 0.95  # the server's Retry-After, not the 10 ms backoff
    assert time.monotonic() - start < 5
    assert headers["Authorization"] == "Bearer sk-test-123"
    assert body == again
    assert body["model"] == "m" and body["max_tokens"] == 5 and body["seed"] == 7
    assert body["messages"][-1] == {"role": "assistant", "content": "\\boxed{"}
    assert (body["continue_final_message"], body["add_generation_prompt"]) == (True, False)


def test_no_key_no_header_and_no_continue_flags_without_prefill(scripted, monkeypatch):
    server = scripted((0, 200, {}, _completion("hi", "length")))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    [resp] = OpenAIEngine(server.url, "m").generate([_ask("a", "hello")])
    assert (resp.text, resp.finish_reason) == ("hi", "length")
    _, headers, body = server.calls[0]
    assert "Authorization" not in headers
    assert "continue_final_message" not in body and "add_generation_prompt" not in body


def test_a_slow_server_times_out_retries_then_fails_the_request_only(scripted):
    server = scripted((1.5, 200, {}, _completion("late")))
    engine = OpenAIEngine(server.url, "m", timeout_s=0.3, max_retries=1, backoff_s=0.01)
    start = time.monotonic()
    out = engine.generate([_ask("a", "x"), _ask("b", "y")])
    elapsed = time.monotonic() - start
    assert [r.custom_id for r in out] == ["a", "b"]
    for resp in out:
        assert resp.finish_reason == "error" and resp.text == ""
        assert resp.error.startswith("gave up after 2 attempts: timed out")
    assert len(server.calls) == 4  # two attempts per request
    assert elapsed < 1.4  # gave up on each attempt at the timeout, not the server's 1.5 s


def test_client_errors_are_not_retried(scripted):
    server = scripted((0, 400, {}, {"error": {"message": "bad model"}}))
    [resp] = OpenAIEngine(server.url, "m", max_retries=3, backoff_s=0.01).generate([_ask("a", "x")])
    assert resp.error.startswith("HTTP 400") and "bad model" in resp.error
    assert len(server.calls) == 1


@pytest.mark.parametrize(
    ("status", "why"),
    [(401, "API key was refused"), (403, "access denied"), (404, "no such model")],
)
def test_a_refused_key_or_unknown_model_fails_the_whole_batch_at_once(scripted, status, why):
    server = scripted((0.05, status, {}, {"error": {"message": "nope"}}))
    port = server.url.split(":")[2].split("/")[0]
    url = f"http://user:hunter2@127.0.0.1:{port}/v1"  # credentials in the URL stay out
    engine = OpenAIEngine(url, "no-such-model", concurrency=2, max_retries=4, backoff_s=0.01)
    reqs = [_ask(f"r{i}", str(i)) for i in range(12)]
    with pytest.raises(EndpointRejected) as exc:
        engine.generate(reqs)
    message = str(exc.value)
    assert f"HTTP {status}" in message and why in message and "'no-such-model'" in message
    assert f"http://127.0.0.1:{port}/v1/chat/completions" in message
    assert "hunter2" not in message and "user" not in message
    assert classify(exc.value) == EXIT_PERMANENT
    # Neither retried nor sent for every request: at most the requests already in flight.
    assert 1 <= len(server.calls) <= 2


def test_public_url_drops_credentials_query_and_fragment():
    assert public_url("https://u:p@api.example.com:8443/v1/chat?key=sk-1#x") == (
        "https://api.example.com:8443/v1/chat"
    )
    assert public_url("http://[::1]:8000/v1") == "http://[::1]:8000/v1"


def test_concurrency_is_bounded_and_order_kept(scripted):
    server = scripted((0.2, 200, {}, _completion("ok")))
    engine = OpenAIEngine(server.url, "m", concurrency=2)
    reqs = [_ask(f"r{i}", str(i)) for i in range(6)]
    out = engine.generate(reqs)
    assert [r.custom_id for r in out] == [r.custom_id for r in reqs]
    assert all(r.error is None for r in out)
    assert server.max_in_flight == 2


def test_make_engine_builds_the_openai_engine_and_needs_a_url(monkeypatch):
    with pytest.raises(ValueError, match="openai_base_url"):
        GenerationConfig(engine="openai")
    cfg = GenerationConfig(
        engine="openai", openai_base_url="http://127.0.0.1:9/v1/", openai_concurrency=3
    )
    engine = make_engine(cfg)
    assert isinstance(engine, OpenAIEngine)
    assert (engine.url, engine.concurrency) == ("http://127.0.0.1:9/v1/chat/completions", 3)


# --- a real OpenAI-compatible server: llama-cpp-python's, serving the bundled GGUF ---------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_llama_server(port: int, log: Path) -> subprocess.Popen:
    directory, gguf = resolve_model("smollm2-135m-instruct")
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(Path(directory) / gguf),
        "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1",
    ]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
    return proc


def _wait_ready(proc: subprocess.Popen, port: int, log: Path, timeout_s: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"llama_cpp.server not ready in {timeout_s}s: {log.read_text()[-2000:]}")


@pytest.fixture
def llama_server(tmp_path):
    """Start/stop llama-cpp-python's server on a free loopback port: ``start() -> (proc, url)``."""
    procs: list[subprocess.Popen] = []
    log = tmp_path / "llama-server.log"

    def _start(port: int | None = None, wait: bool = True):
        port = port or _free_port()
        procs.append(_start_llama_server(port, log))
        if wait:
            _wait_ready(procs[-1], port, log)
        return procs[-1], f"http://127.0.0.1:{port}/v1"

    yield _start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
def test_real_server_answers_in_order_with_usage_and_prefill(llama_server):
    _, url = llama_server()
    engine = OpenAIEngine(url, "smollm2", concurrency=2, timeout_s=60, max_retries=1)
    reqs = [
        _ask("a", "What is 2 + 3?", max_tokens=12),
        _ask("b", "Name a prime number.", max_tokens=6),
        _ask("c", "Solve 2x = 6.", max_tokens=8, prefill="The final answer is \\boxed{"),
    ]
    out = engine.generate(reqs)
    assert [r.custom_id for r in out] == ["a", "b", "c"]
    for resp, req in zip(out, reqs, strict=True):
        assert resp.error is None, resp.error
        assert resp.prompt_tokens > 10 and 1 <= resp.completion_tokens <= req.max_tokens
        assert resp.finish_reason in {"stop", "length"}
        assert resp.text.strip()
    assert out[2].text.startswith("The final answer is \\boxed{")
    # Greedy decoding on one server, asked again after the same request: the same answer. (The
    # server reuses the previous prompt's cache, and how much of a prompt it prefills at once
    # changes the rounding; the same history makes it the very same computation.)
    single = OpenAIEngine(url, "smollm2", concurrency=1, timeout_s=60, max_retries=1)
    single.generate([reqs[1]])
    first = single.generate([reqs[0]])[0]
    single.generate([reqs[1]])
    assert single.generate([reqs[0]])[0].text == first.text and first.error is None


@pytest.mark.slow
def test_server_killed_mid_shard_fails_the_rest_then_recovers_on_restart(llama_server):
    proc, url = llama_server()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    engine = OpenAIEngine(url, "smollm2", concurrency=1, timeout_s=60, max_retries=2)
    engine.backoff_s = 0.05
    post = engine._post
    answered = []

    def post_then_kill(req, body):  # the server dies right after the shard's first answer
        resp = post(req, body)
        answered.append(req.custom_id)
        if len(answered) == 1:
            proc.kill()
            proc.wait(10)
        return resp

    engine._post = post_then_kill
    out = engine.generate([_ask(f"r{i}", f"Count to {i}.", max_tokens=6) for i in range(3)])
    assert out[0].error is None and out[0].text
    for resp in out[1:]:
        assert resp.finish_reason == "error"
        assert resp.error.startswith("gave up after 3 attempts: connection error")

    # A server that comes back while the engine is backing off: the retry gets the answer.
    engine._post = post
    engine.max_retries, engine.backoff_s, engine.max_backoff_s = 60, 0.5, 1.0
    restarter = threading.Timer(1.0, lambda: llama_server(port, wait=False))
    restarter.start()
    try:
        [resp] = engine.generate([_ask("again", "Count to 3.", max_tokens=6)])
    finally:
        restarter.join()
    assert resp.error is None and resp.text and resp.completion_tokens >= 1
