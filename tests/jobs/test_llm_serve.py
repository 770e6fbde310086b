"""``python -m jobs.llm.serve``: flags over config, clear errors, and a real server round trip."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.config import ConfigError, GenerationConfig
from jobs.llm import serve
from jobs.llm.engine import ChatRequest
from jobs.llm.openai_engine import OpenAIEngine
from jobs.llm.transformers_engine import resolve_model

REPO = Path(__file__).resolve().parents[2]


def _args(*argv: str):
    return serve.build_parser().parse_args(list(argv))


def test_defaults_come_from_the_config_and_flags_win():
    directory, gguf = resolve_model("smollm2-135m-instruct")
    gen = GenerationConfig(llamacpp_n_ctx=4096, num_threads=3, seed=5)
    cfg = serve.serve_config(_args(), gen)
    assert cfg == serve.ServeConfig(
        model_path=str(Path(directory) / gguf),
        model_alias="smollm2-135m-instruct",
        host="127.0.0.1",
        port=8000,
        n_ctx=4096,
        n_threads=3,
        seed=5,
    )
    flagged = serve.serve_config(
        _args("--host", "0.0.0.0", "--port", "9001", "--model-alias", "generator",
              "--n-ctx", "1024", "--threads", "1"),
        gen,
    )  # fmt: skip
    assert (flagged.host, flagged.port, flagged.model_alias) == ("0.0.0.0", 9001, "generator")
    assert (flagged.n_ctx, flagged.n_threads) == (1024, 1)


def test_a_model_without_a_gguf_is_a_config_error(tmp_path):
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    (hf_dir / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="needs a .gguf file"):
        serve.serve_config(_args("--model", str(hf_dir)), GenerationConfig())
    with pytest.raises(ConfigError, match="not a packaged model"):
        serve.serve_config(_args("--model", str(tmp_path / "missing.gguf")), GenerationConfig())
    assert serve.main(["--model", str(hf_dir)]) == 2
    with pytest.raises(SystemExit) as exc:
        serve.main(["--port", "0"])
    assert exc.value.code == 2


def test_help_works_without_loading_the_server():
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys; from jobs.llm import serve\n"
         "try:\n    serve.main(['--help'])\nexcept SystemExit as e:\n    code = e.code\n"
         "print(code, sorted({'llama_cpp', 'uvicorn', 'fastapi', 'torch'} & set(sys.modules)))"],
        capture_output=True, text=True, timeout=120, cwd=REPO, env=os.environ.copy(),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "--model-alias" in out.stdout
    assert out.stdout.strip().endswith("0 []")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, base: str, log: Path, timeout_s: float = 120) -> dict:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jobs.llm.serve exited: {log.read_text()[-2000:]}")
        try:
            resp = httpx.get(f"{base}/v1/models", timeout=2)
            if resp.status_code == 200:
                return resp.json()
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"jobs.llm.serve not ready in {timeout_s}s: {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_served_model_answers_through_the_openai_engine(tmp_path):
    import httpx

    port, log = _free_port(), tmp_path / "serve.log"
    cmd = [
        sys.executable, "-m", "jobs.llm.serve", "--host", "127.0.0.1", "--port", str(port),
        "--model-alias", "generator", "--n-ctx", "2048", "--threads", "1",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        base = f"http://127.0.0.1:{port}"
        models = _wait_ready(proc, base, log)
        assert [m["id"] for m in models["data"]] == ["generator"]
        assert httpx.get(f"{base}/health", timeout=5).json() == {"status": "ok"}
        engine = OpenAIEngine(f"{base}/v1", "generator", timeout_s=60, max_retries=1)
        req = ChatRequest(
            "q", ({"role": "user", "content": "What is 2 + 3?"},), temperature=0, max_tokens=12
        )
        [resp] = engine.generate([req])
        engine.close()
        assert resp.error is None, resp.error
        assert resp.custom_id == "q" and resp.text.strip()
        assert resp.prompt_tokens > 10 and 1 <= resp.completion_tokens <= 12
        assert resp.finish_reason in {"stop", "length"}
    finally:
        proc.send_signal(signal.SIGTERM)  # what the kubelet sends
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise
    # A clean shutdown, after which uvicorn re-raises the signal, so the process ends by it.
    assert code == -signal.SIGTERM, log.read_text()[-2000:]
    assert "Application shutdown complete" in log.read_text()
