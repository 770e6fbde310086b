"""The generation engine interface: a batch of chat requests in, one response per request out.

Engines are passed into the shard runner, so tests hand in a small deterministic one and
jobs build the real one with :func:`make_engine`. Heavy libraries (torch, transformers, vllm,
llama_cpp, httpx) are imported only by the adapter module that ``make_engine`` picks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from jobs.config import GenerationConfig

FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_ERROR = "error"


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request (the body of an OpenAI batch line)."""

    custom_id: str
    messages: tuple[dict[str, str], ...]
    temperature: float = 0.7
    top_p: float = 0.9
    max_tokens: int = 256
    seed: int | None = None
    # A JSON schema the answer must follow; only the vllm engine can enforce it.
    json_schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Messages arrive as lists from JSON; copying them guards against a caller mutating
        # a request after it was handed to an engine.
        object.__setattr__(self, "messages", tuple(dict(m) for m in self.messages))
        if not self.custom_id:
            raise ValueError("ChatRequest.custom_id must be a non-empty string")
        if self.max_tokens < 1:
            raise ValueError(f"{self.custom_id}: max_tokens must be >= 1, got {self.max_tokens}")

    @property
    def prefill(self) -> str | None:
        """The start of the answer when the conversation ends with an assistant turn.

        Engines continue that turn instead of opening a new one, and return the prefill plus
        the continuation as the response text, so parsers always see the whole answer. Small
        models follow an output format far more reliably when its first line is given.
        """
        last = self.messages[-1] if self.messages else None
        return last["content"] if last and last.get("role") == "assistant" else None

    def template_flags(self) -> dict[str, bool]:
        """Chat-template flags: open a new assistant turn, or continue the prefilled one."""
        return template_flags(self.prefill is not None)


def template_flags(prefilled: bool) -> dict[str, bool]:
    """``apply_chat_template`` / ``LLM.chat`` flags for a conversation with or without prefill."""
    return {"add_generation_prompt": not prefilled, "continue_final_message": prefilled}


@dataclass(frozen=True)
class ChatResponse:
    """The engine's answer to one request; ``error`` is set instead of raising."""

    custom_id: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    error: str | None = None

    @classmethod
    def failed(cls, custom_id: str, error: str, prompt_tokens: int = 0) -> ChatResponse:
        """A response for a request the engine could not answer."""
        return cls(custom_id, "", prompt_tokens, 0, FINISH_ERROR, error)


@runtime_checkable
class Engine(Protocol):
    """What the shard runner needs from a generation backend."""

    model_name: str

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """One response per request, in order; a failing request gets ``error`` set."""
        ...


Encoded = list[tuple[int, ChatRequest, list[int]]]


def encode_requests(
    requests: Sequence[ChatRequest], encode: Callable[[ChatRequest], list[int]], max_context: int
) -> tuple[dict[int, ChatResponse], Encoded]:
    """Prompt ids per request: ``(failed responses by index, [(index, request, ids)])``.

    A request whose chat template fails, or whose prompt fills the model's context, gets an
    error response here and is not generated; the others go on.
    """
    failed: dict[int, ChatResponse] = {}
    encoded: Encoded = []
    for i, req in enumerate(requests):
        try:
            ids = encode(req)
        except Exception as exc:  # a bad template input fails this request only
            failed[i] = ChatResponse.failed(req.custom_id, f"chat template failed: {exc}")
            continue
        if len(ids) >= max_context:
            msg = f"prompt too long: {len(ids)} tokens, model context is {max_context}"
            failed[i] = ChatResponse.failed(req.custom_id, msg, prompt_tokens=len(ids))
            continue
        encoded.append((i, req, ids))
    return failed, encoded


def batch_seed(requests: Sequence[ChatRequest]) -> int:
    """One RNG seed for a batch, fixed by its requests' seeds and ids.

    Engines that cannot seed each request (batched sampling in transformers) seed the whole
    batch with this, so rerunning the same batch reproduces the same samples.
    """
    digest = hashlib.sha256()
    for req in requests:
        digest.update(f"{req.custom_id}\x00{req.seed}\x01".encode())
    return int.from_bytes(digest.digest()[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


def make_engine(gen_cfg: GenerationConfig) -> Engine:
    """Build the engine named by ``gen_cfg.engine`` (imports its backend lazily)."""
    if gen_cfg.engine == "transformers":
        from jobs.llm.transformers_engine import TransformersEngine

        return TransformersEngine(
            model=gen_cfg.model,
            device=gen_cfg.device,
            max_batch_size=gen_cfg.batch_size,
            compile=gen_cfg.compile,
            num_threads=gen_cfg.num_threads,
        )
    if gen_cfg.engine == "vllm":
        from jobs.llm.vllm_engine import VLLMEngine

        return VLLMEngine(model=gen_cfg.model, seed=gen_cfg.seed)
    if gen_cfg.engine == "openai":
        from jobs.config import expand_env
        from jobs.llm.openai_engine import OpenAIEngine

        # ${NAME} parts (a Service's injected host and port) are read here, at the edge.
        base_url = expand_env(gen_cfg.openai_base_url or "", "openai_base_url")
        return OpenAIEngine(
            base_url=base_url,
            model=gen_cfg.model,
            api_key_env=gen_cfg.openai_api_key_env,
            concurrency=gen_cfg.openai_concurrency,
            timeout_s=gen_cfg.openai_timeout_s,
            max_retries=gen_cfg.openai_max_retries,
            continue_flags=gen_cfg.openai_continue_flags,
        )
    if gen_cfg.engine == "llamacpp":
        from jobs.llm.llamacpp_engine import LlamaCppEngine

        return LlamaCppEngine(
            model=gen_cfg.model,
            n_ctx=gen_cfg.llamacpp_n_ctx,
            n_threads=gen_cfg.num_threads,
            seed=gen_cfg.seed,
            n_seq=gen_cfg.llamacpp_n_seq,
        )
    raise ValueError(f"generation.engine: unknown engine {gen_cfg.engine!r}")
