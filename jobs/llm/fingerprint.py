"""Model fingerprints: what, besides the requests, decides an LLM shard's responses.

A shard's responses are stored under a key made of the request file's hash and this
fingerprint, so a different model, engine or sampling setting never reuses old responses.

How the model itself is identified (``model_identity``):

- a GGUF file (the packaged SmolLM2 or a ``.gguf`` path): the SHA-256 of the file, computed
  once per process and file version (path, size, mtime), since hashing ~100 MB takes ~0.3 s;
- a Hugging Face model directory (the kubernetes profile's ``/models/generator``): the
  SHA-256 of its ``config.json``, ``generation_config.json`` and tokenizer files, plus a
  sorted listing of weight file names and sizes. Hashing tens of GB of weights per shard
  would cost minutes; a re-exported checkpoint with the same names and sizes but other
  values is not told apart, which ``generation.model_revision`` covers when it matters;
- anything else (a served model behind the ``openai`` engine, a hub id): the name only,
  plus ``generation.model_revision`` when set. Set it whenever the server's weights change.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.config import GenerationConfig

log = logging.getLogger(__name__)

# Files of a model directory whose bytes shape the output (hashed whole; all are small).
_DIR_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_CHUNK = 1 << 20


def model_fingerprint(gen: GenerationConfig) -> dict[str, Any]:
    """The fingerprint of the configured model: its parts and their ``sha256``.

    Sampling settings are the config's defaults; each request line carries its own values
    too, and those are covered by the request file's hash.
    """
    parts: dict[str, Any] = {
        "engine": gen.engine,
        "model": gen.model,
        "model_identity": model_identity(gen.engine, gen.model, gen.model_revision),
        "sampling": {
            "temperature": gen.temperature,
            "top_p": gen.top_p,
            "max_new_tokens": gen.max_new_tokens,
            "seed": gen.seed,
        },
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return {**parts, "sha256": digest}


def model_identity(engine: str, model: str, revision: str | None = None) -> dict[str, Any]:
    """What identifies the weights of ``model`` (see the module docstring)."""
    if engine != "openai":
        from jobs.llm.transformers_engine import resolve_model

        try:
            directory, gguf = resolve_model(model)
        except FileNotFoundError:
            directory, gguf = None, None
        if gguf is not None:
            path = Path(directory) / gguf  # type: ignore[arg-type]
            stat = path.stat()
            return {
                "kind": "gguf",
                "file": gguf,
                "sha256": _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns),
                "revision": revision,
            }
        if directory is not None:
            return {
                "kind": "directory",
                **_directory_identity(Path(directory)),
                "revision": revision,
            }
    if revision is None:
        log.warning(
            "model %r: no local weights to hash and no generation.model_revision; "
            "responses are keyed by the model name only",
            model,
        )
    return {"kind": "name", "revision": revision}


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file; cached per (path, size, mtime), so a changed file is hashed again."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _directory_identity(directory: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    for name in _DIR_FILES:
        path = directory / name
        if path.is_file():
            digest.update(name.encode() + b"\x00" + path.read_bytes() + b"\x01")
    weights = sorted(
        [str(p.relative_to(directory)), p.stat().st_size]
        for p in directory.rglob("*")
        if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)
    )
    return {"config_sha256": digest.hexdigest(), "weights": weights}
