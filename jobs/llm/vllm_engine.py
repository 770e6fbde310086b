"""The production GPU engine: vLLM's offline ``LLM.chat`` (the only module importing vllm).

vLLM schedules the whole list itself (continuous batching), so the shard runner hands it a
chunk of up to ``generation.chunk_size`` requests per ``generate`` call rather than
``batch_size`` slices; per-request seeds make samples independent of batch composition. A call
that fails as a whole is split in halves until the failing requests stand alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from jobs.llm.engine import (
    FINISH_LENGTH,
    FINISH_STOP,
    ChatRequest,
    ChatResponse,
    template_flags,
)

log = logging.getLogger(__name__)


class VLLMEngine:
    """Chat generation through ``vllm.LLM``; the model loads once per instance."""

    # The shard runner hands over chunks of generation.chunk_size instead of batch_size
    # slices, so the scheduler keeps the GPU full (continuous batching) instead of draining
    # per batch, while a preempted pod loses at most one chunk.
    batches_internally = True

    def __init__(self, model: str, seed: int = 0, **llm_kwargs: Any) -> None:
        from vllm import LLM

        self.model_name = model
        self.llm = LLM(model=model, seed=seed, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_context = int(self.llm.llm_engine.model_config.max_model_len)

    def _sampling(self, req: ChatRequest) -> Any:
        from vllm import SamplingParams

        kwargs: dict[str, Any] = {
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_tokens,
            "seed": req.seed,
        }
        if req.json_schema is not None:
            from vllm.sampling_params import StructuredOutputsParams

            kwargs["structured_outputs"] = StructuredOutputsParams(json=req.json_schema)
        return SamplingParams(**kwargs)

    def _prompt_len(self, req: ChatRequest) -> int:
        ids = self.tokenizer.apply_chat_template(
            list(req.messages), tokenize=True, **req.template_flags()
        )
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return len(ids)

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """One response per request, in order; too-long prompts and failures become errors."""
        results: dict[int, ChatResponse] = {}
        runnable: list[int] = []
        for i, req in enumerate(requests):
            try:
                n = self._prompt_len(req)
            except Exception as exc:  # a bad conversation fails this request only
                results[i] = ChatResponse.failed(req.custom_id, f"chat template failed: {exc}")
                continue
            if n >= self.max_context:
                msg = f"prompt too long: {n} tokens, model context is {self.max_context}"
                results[i] = ChatResponse.failed(req.custom_id, msg, n)
            else:
                runnable.append(i)
        for i, resp in zip(runnable, self._chat([requests[i] for i in runnable]), strict=True):
            results[i] = resp
        return [results[i] for i in range(len(requests))]

    def _chat(self, batch: list[ChatRequest]) -> list[ChatResponse]:
        """Responses for ``batch``; a failing call is split in halves, recursively.

        One bad request among n costs about 2 log2(n) extra calls, not n: each half that
        succeeds is answered whole, and only a request that fails on its own is failed.
        """
        if not batch:
            return []
        # LLM.chat takes the continue-the-last-turn flag per call, not per conversation.
        kinds = {r.prefill is not None for r in batch}
        if len(kinds) > 1:
            out: dict[str, ChatResponse] = {}
            for prefilled in (False, True):
                part = [r for r in batch if (r.prefill is not None) == prefilled]
                out.update((resp.custom_id, resp) for resp in self._chat(part))
            return [out[r.custom_id] for r in batch]
        prefilled = kinds.pop()
        try:
            outputs = self.llm.chat(
                [list(r.messages) for r in batch],
                sampling_params=[self._sampling(r) for r in batch],
                use_tqdm=True,
                **template_flags(prefilled),
            )
        except Exception as exc:
            if len(batch) == 1:
                log.warning("request %s failed: %s", batch[0].custom_id, exc)
                return [ChatResponse.failed(batch[0].custom_id, f"generation failed: {exc}")]
            log.warning("batch of %d failed (%s); retrying it in halves", len(batch), exc)
            half = len(batch) // 2
            return self._chat(batch[:half]) + self._chat(batch[half:])
        return [_to_response(r, out) for r, out in zip(batch, outputs, strict=True)]


def _to_response(req: ChatRequest, output: Any) -> ChatResponse:
    """Map a ``vllm.RequestOutput`` to a ChatResponse."""
    completion = output.outputs[0]
    finish = completion.finish_reason
    finish = FINISH_LENGTH if finish == "length" else FINISH_STOP if finish == "stop" else finish
    return ChatResponse(
        custom_id=req.custom_id,
        text=(req.prefill or "") + completion.text,
        prompt_tokens=len(output.prompt_token_ids or []),
        completion_tokens=len(completion.token_ids),
        finish_reason=finish or FINISH_STOP,
    )
