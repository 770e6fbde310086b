"""Job: serve the configured local model over an OpenAI-compatible API (llama.cpp's server).

python -m jobs.llm.serve [--host 0.0.0.0] [--port 8000] [--model-alias generator]
                         [--model M] [--n-ctx N] [--threads T] [--profile P] [--set k=v]

What the local cluster's LLM server Deployment runs (k8s/overlays/cluster-local/) where the
GPU cluster runs ``vllm serve`` (k8s/llm-server.yaml); jobs reach either through the
``openai`` engine. The model is resolved as the ``llamacpp`` engine resolves it (a packaged
model name or a ``.gguf`` path, ``generation.model`` by default), so nothing is downloaded.
Context size and threads default to ``generation.llamacpp_n_ctx`` and
``generation.num_threads``. A server belongs to no run, so there is no ``--snapshot``.

Besides llama-cpp-python's routes (``/v1/models``, ``/v1/chat/completions``, ...) it answers
``GET /health``, the path vLLM's server answers and the Deployment's probes ask: the server
listens only once the model is loaded, so any answer there means ready.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.errors import EXIT_PERMANENT, PermanentError, classify

if TYPE_CHECKING:
    from jobs.config import GenerationConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeConfig:
    """Everything the server needs, resolved from the flags and the pipeline config."""

    model_path: str  # the GGUF file
    model_alias: str  # the name clients send as ``model``
    host: str
    port: int
    n_ctx: int
    n_threads: int | None  # None: llama.cpp's default (half the cores)
    seed: int


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.llm.serve",
        description="Serve the configured GGUF model through an OpenAI-compatible API.",
    )
    # Loopback by default: exposing the server is a deliberate choice (a pod passes 0.0.0.0).
    parser.add_argument("--host", default="127.0.0.1", help="listen address")
    parser.add_argument("--port", type=_port, default=8000, help="listen port")
    parser.add_argument(
        "--model-alias", default=None, help="model name clients send (default: the model)"
    )
    parser.add_argument("--model", default=None, help="default: generation.model")
    parser.add_argument(
        "--n-ctx", type=_positive, default=None, help="default: generation.llamacpp_n_ctx"
    )
    parser.add_argument(
        "--threads", type=_positive, default=None, help="default: generation.num_threads"
    )
    parser.add_argument("--profile", default=None, help="config profile: local or kubernetes")
    parser.add_argument("--config", default=None, help="TOML file overlaid on the profile")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="section.key=value"
    )
    return parser


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {value}")
    return number


def serve_config(args: argparse.Namespace, gen: GenerationConfig) -> ServeConfig:
    """Flags over config; the model resolved to its GGUF file (a ConfigError if there is none)."""
    from jobs.config import ConfigError
    from jobs.llm.transformers_engine import resolve_model  # no heavy imports there

    model = args.model or gen.model
    try:
        directory, gguf = resolve_model(model)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    if gguf is None:
        raise ConfigError(f"model {model!r}: llama.cpp's server needs a .gguf file")
    return ServeConfig(
        model_path=str(Path(directory) / gguf),
        model_alias=args.model_alias or model,
        host=args.host,
        port=args.port,
        n_ctx=args.n_ctx or gen.llamacpp_n_ctx,
        n_threads=args.threads or gen.num_threads,
        seed=gen.seed,
    )


def build_app(cfg: ServeConfig) -> Any:
    """llama-cpp-python's FastAPI app with the model loaded, plus ``GET /health``."""
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    threads: dict[str, int] = {}
    if cfg.n_threads is not None:
        threads = {"n_threads": cfg.n_threads, "n_threads_batch": cfg.n_threads}
    model = ModelSettings(
        model=cfg.model_path,
        model_alias=cfg.model_alias,
        n_ctx=cfg.n_ctx,
        seed=cfg.seed,
        verbose=False,
        **threads,
    )
    server = ServerSettings(host=cfg.host, port=cfg.port)
    app = create_app(server_settings=server, model_settings=[model])

    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_api_route("/health", health, methods=["GET"])
    return app


def run(cfg: ServeConfig) -> None:
    """Load the model and serve until SIGINT/SIGTERM.

    uvicorn then shuts down cleanly and re-raises the signal, so the process ends by it
    (exit 143 in a pod), not by returning.
    """
    import uvicorn

    log.info(
        "serving %s as %r on %s:%d (context %d, threads %s)",
        cfg.model_path, cfg.model_alias, cfg.host, cfg.port, cfg.n_ctx, cfg.n_threads or "default",
    )  # fmt: skip
    uvicorn.run(build_app(cfg), host=cfg.host, port=cfg.port, log_level="info")


def main(argv: list[str] | None = None) -> int:
    from jobs.cli import setup_logging
    from jobs.config import load_config

    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        cfg = serve_config(args, load_config(args.profile, args.config, args.overrides).generation)
    except PermanentError as exc:
        print(f"llm.serve: {exc}", file=sys.stderr)
        return EXIT_PERMANENT
    try:
        run(cfg)
    except Exception as exc:
        code = classify(exc)
        log.error("llm.serve: failed (exit code %d)", code, exc_info=True)
        return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
