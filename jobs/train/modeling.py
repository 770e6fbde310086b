"""Models and tokenizers for training: packaged GGUF conversion, from-scratch shapes, saving.

Model names and paths resolve through :func:`jobs.llm.transformers_engine.resolve_model`,
the loader the generation stage uses, so ``smollm2-135m-instruct`` means the same file in
both. A GGUF file is converted once into ``cache_dir`` (Hugging Face tokenizer files, and
safetensors weights when asked for): parsing the GGUF metadata alone takes 15-30 s on a small
CPU, while the converted tokenizer loads in well under a second. Conversions are written to a
temporary folder and renamed into place, so a killed job never leaves a half-written cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.config import REPO_ROOT
from jobs.llm.transformers_engine import resolve_model
from jobs.storage import Storage, join, resolve_uri
from jobs.train.chat import ensure_chat_template
from jobs.train.recipes import Recipe

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_COMPLETE = "_COMPLETE"
MODEL_DIR = "model"  # the trained model's folder inside the committed train output


def cache_root(cache_dir: str) -> Path:
    path = Path(cache_dir)
    return path if path.is_absolute() else REPO_ROOT / path


def local_model_dir(source: str, cache_dir: str, with_weights: bool) -> str:
    """A Hugging Face directory for ``source``; GGUF files are converted (once) into the cache."""
    directory, gguf_file = resolve_model(source)
    if gguf_file is None:
        return directory
    gguf = Path(directory) / gguf_file
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    target = cache_root(cache_dir) / (
        f"{gguf.stem}-{key.hexdigest()[:12]}-{'full' if with_weights else 'tokenizer'}"
    )
    if (target / _COMPLETE).is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any model folder
    try:
        _convert_gguf(directory, gguf_file, tmp, with_weights)
        (tmp / _COMPLETE).write_text("")
        if (target / _COMPLETE).is_file():  # another process finished first
            shutil.rmtree(tmp)
        else:
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("converted %s into %s", gguf, target)
    return str(target)


def _convert_gguf(directory: str, gguf_file: str, out: Path, with_weights: bool) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    kwargs = {"gguf_file": gguf_file, "local_files_only": True}
    AutoTokenizer.from_pretrained(directory, **kwargs).save_pretrained(out)
    if not with_weights:
        return
    quantized = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, **kwargs)
    # The dequantised model still says "gguf" in its config and refuses save_pretrained:
    # copy its weights into a plain model of the same config.
    conf = quantized.config.to_dict()
    conf.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(type(quantized.config).from_dict(conf))
    plain.load_state_dict(quantized.state_dict())
    plain.save_pretrained(out)


def load_tokenizer(source: str, cache_dir: str) -> Any:
    """The tokenizer of a model source (packaged name, .gguf or HF directory), chat-ready."""
    from transformers import AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    directory = local_model_dir(source, cache_dir, with_weights=False)
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    ensure_chat_template(tokenizer)
    return tokenizer


def build_model(recipe: Recipe, tokenizer: Any, cache_dir: str, seed: int) -> torch.nn.Module:
    """Pretrained weights from ``recipe.model_source``, or ``recipe.shape`` initialised from seed.

    Weights are fp32 (master weights; bf16 is autocast at run time).
    """
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    if recipe.model_source:
        directory = local_model_dir(recipe.model_source, cache_dir, with_weights=True)
        return AutoModelForCausalLM.from_pretrained(
            directory, dtype=torch.float32, local_files_only=True
        )
    shape = recipe.shape
    config = llama_config(
        shape,
        len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def tokenizer_source(recipe: Recipe) -> str:
    """Where the run's tokenizer comes from: the weights' own, else the recipe's."""
    return recipe.model_source or recipe.tokenizer


def save_model(model: Any, tokenizer: Any, storage: Storage, uri: str) -> list[str]:
    """Write weights (safetensors), config and tokenizer files under ``uri``; their names."""
    with tempfile.TemporaryDirectory(prefix="synthllm-model-") as tmp:
        # Shards under S3's 5 GB limit for one CopyObject (the commit moves files by copy).
        model.save_pretrained(tmp, safe_serialization=True, max_shard_size="2GB")
        tokenizer.save_pretrained(tmp)
        names = sorted(p.name for p in Path(tmp).iterdir() if p.is_file())
        for name in names:
            storage.upload_file(Path(tmp) / name, join(uri, name))
    return names


@contextmanager
def fetched_model_dir(storage: Storage, uri: str) -> Iterator[str]:
    """A local directory holding the model files under ``uri`` (downloaded if remote)."""
    resolved = resolve_uri(uri)
    if resolved.startswith("file://"):
        yield resolved[len("file://") :]
        return
    with tempfile.TemporaryDirectory(prefix="synthllm-model-") as tmp:
        for f in storage.walk_files(uri):
            rel = f[len(uri.rstrip("/")) + 1 :]
            dest = Path(tmp) / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(storage.read_bytes(f))
        yield tmp


def llama_config(shape: Any, vocab: int, **extra: Any):
    """A ``LlamaConfig`` of ``shape`` (hidden/intermediate sizes, layers, heads, rope theta)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        max_position_embeddings=shape.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": shape.rope_theta},
        tie_word_embeddings=shape.tie_embeddings,
        **extra,
    )
