"""Fixed-shape decoding over a static KV cache: the transformers engine's fast loop.

``model.generate`` pays Python overhead on every step and grows its KV cache. This loop
prefills a left-padded batch once into a :class:`transformers.StaticCache`, then repeats one
decode step whose tensors never change shape or address: the next token, its position, the
cache write index and the key mask all live in buffers updated in place. On CUDA that step is
captured once per shape as a CUDA graph (after ``torch.compile`` when asked), so a step costs
one graph launch; on CPU the same step runs eagerly. Greedy decoding picks the same tokens as
``generate`` on the same left-padded batch (tests/jobs/test_llm_transformers_static.py).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# On CUDA every new (batch, cache length) shape costs a graph capture (and a compile): round
# both up so a run sees a handful of shapes. Padding rows and cache slots are cheap next to
# the weights every step reads.
_CUDA_CACHE_MULTIPLE = 256
# Checking "all rows finished?" syncs the GPU; checking every few steps costs at most that
# many wasted steps per batch instead of one sync per step.
_CUDA_STOP_CHECK_EVERY = 8
# Each shape holds its own KV cache (and graph memory pool); keep the most recent few.
_MAX_SLOTS = 4


# The attention function the decode step runs under (see _decode_attention).
ATTENTION = "static_decode_sdpa"


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _decode_attention(module, query, key, value, attention_mask, **kwargs):
    """transformers' SDPA attention, with grouped-query heads packed for one query token.

    Stock SDPA packs a single decode query's head groups onto the key/value heads only when
    not under ``torch.compile``; compiled, it falls back to ``repeat_kv``, which copies the
    whole KV cache ``num_key_value_groups`` times per layer per step. Packing here keeps the
    compiled step reading the cache once, with the same arithmetic as eager decoding.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    if query.shape[2] != 1 or groups == 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    batch, heads, _, dim = query.shape
    packed = query.reshape(batch, heads // groups, groups, dim)
    out = torch.nn.functional.scaled_dot_product_attention(
        packed, key, value, attn_mask=attention_mask, scale=kwargs.get("scaling")
    )
    return out.reshape(batch, heads, 1, value.shape[-1]).transpose(1, 2).contiguous(), None


def choose_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Next token per row: argmax when ``temperature <= 0``, else temperature + top-p sampling.

    Top-p keeps the smallest set of tokens whose probability reaches ``top_p`` (always at least
    the most likely one), as ``transformers``' ``TopPLogitsWarper`` does.
    """
    import torch

    if temperature <= 0:
        return logits.argmax(dim=-1)
    scores = logits.float() / temperature
    if top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=False)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative <= (1 - top_p)
        drop_sorted[:, -1] = False
        drop = drop_sorted.scatter(1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    return torch.multinomial(scores.softmax(dim=-1), 1, generator=generator).squeeze(1)


class _Slot:
    """Static buffers, KV cache and (on CUDA) the captured decode step for one shape."""

    def __init__(self, model, batch: int, cache_len: int, device: torch.device) -> None:
        import torch
        from transformers import StaticCache

        cfg = model.config
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.model = model
        self.batch, self.cache_len = batch, cache_len
        self.cache = StaticCache(config=cfg, max_cache_len=cache_len)
        # Allocated now, not on the first write, so a captured graph sees the final addresses.
        self.cache.early_initialization(
            batch, cfg.num_key_value_heads, head_dim, model.dtype, device
        )
        self.tokens = torch.zeros((batch, 1), dtype=torch.long, device=device)
        self.positions = torch.zeros((batch, 1), dtype=torch.long, device=device)
        self.index = torch.zeros((), dtype=torch.long, device=device)  # cache slot being written
        self.valid = torch.zeros((batch, cache_len), dtype=torch.bool, device=device)
        self.kv_index = torch.arange(cache_len, device=device)
        self.graph: Any = None
        self.logits: torch.Tensor | None = None

    def step(self) -> torch.Tensor:
        """One decode step on the static buffers; advances position and cache index in place."""
        mask = (self.valid & (self.kv_index <= self.index))[:, None, None, :]
        out = self.model(
            input_ids=self.tokens,
            attention_mask=mask,
            position_ids=self.positions,
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.positions.add_(1)
        self.index.add_(1)
        return out.logits[:, -1, :]

    def reset(self) -> None:
        """Empty the cache for a new batch (stale keys would be masked, but a NaN is not)."""
        for layer in self.cache.layers:
            layer.keys.zero_()
            layer.values.zero_()
            layer.cumulative_length.zero_()
        self.index.zero_()

    def run(self) -> torch.Tensor:
        if self.graph is None:
            return self.step()
        self.graph.replay()
        return self.logits


class StaticDecoder:
    """Batched prefill + fixed-shape decode steps over a static KV cache.

    The device is the model's. On CUDA each shape's decode step is captured as a CUDA graph
    (compiled first when ``compile``), and batch and cache length are rounded up so few shapes
    occur; on CPU the loop runs eagerly at exact shapes unless ``round_shapes`` (for tests).
    """

    def __init__(
        self,
        model,
        stop_ids: Sequence[int],
        pad_id: int,
        compile: bool = False,
        round_shapes: bool | None = None,
    ) -> None:
        import torch
        from transformers import AttentionInterface, AttentionMaskInterface
        from transformers.masking_utils import sdpa_mask

        # For a prompt it is stock SDPA with stock SDPA masks, so plain generate on the same
        # model is unchanged (the equality tests run generate after this).
        AttentionInterface.register(ATTENTION, _decode_attention)
        AttentionMaskInterface.register(ATTENTION, sdpa_mask)
        model.set_attn_implementation(ATTENTION)
        self.model = model
        self.device = model.device
        self.cuda = self.device.type == "cuda"
        self.round_shapes = self.cuda if round_shapes is None else round_shapes
        self.pad_id = int(pad_id)
        self.stop_ids = torch.tensor(list(stop_ids), dtype=torch.long, device=self.device)
        self.compile = compile and self.cuda
        self._slots: OrderedDict[tuple[int, int], _Slot] = OrderedDict()

    def decode(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> list[list[int]]:
        """New token ids per prompt, ``max_new_tokens`` long unless every row stopped earlier.

        A row that emitted a stop id is padded with ``pad_id`` afterwards, as ``generate`` does.
        """
        import torch

        rows = len(prompts)
        width = max(len(p) for p in prompts)
        batch, cache_len = rows, width + max_new_tokens
        if self.round_shapes:
            batch = 1 << (rows - 1).bit_length()
            cache_len = _round_up(cache_len, _CUDA_CACHE_MULTIPLE)
        generator = None
        if temperature > 0:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed or 0)
        with torch.inference_mode():
            slot = self._slot(batch, cache_len)
            logits = self._prefill(slot, prompts, width)
            out = self._loop(slot, logits, rows, max_new_tokens, (temperature, top_p, generator))
        return out[:rows].tolist()

    def _slot(self, batch: int, cache_len: int) -> _Slot:
        key = (batch, cache_len)
        slot = self._slots.pop(key, None)
        if slot is None:
            while len(self._slots) >= _MAX_SLOTS:
                self._slots.popitem(last=False)
            slot = _Slot(self.model, batch, cache_len, self.device)
            if self.cuda:
                self._capture(slot)
        self._slots[key] = slot
        return slot

    def _capture(self, slot: _Slot) -> None:
        """Record the decode step as a CUDA graph; on failure, fall back to running it eagerly."""
        import torch

        step = slot.step
        if self.compile:
            step = torch.compile(slot.step, dynamic=False)
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # compile, autotune and allocate outside the capture
                    step()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                slot.logits = step()
            slot.graph = graph
            log.info("captured decode step for batch %d, cache %d", slot.batch, slot.cache_len)
        except Exception as exc:  # a capture failure must cost speed, never the batch
            log.warning("CUDA graph capture failed (%s); decoding eagerly", exc)
            slot.graph, slot.logits = None, None
        slot.reset()

    def _prefill(self, slot: _Slot, prompts: Sequence[Sequence[int]], width: int) -> torch.Tensor:
        """Run the left-padded prompts through the model; return the last position's logits."""
        import torch

        device, batch = self.device, slot.batch
        ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        real = torch.zeros((batch, width), dtype=torch.bool)
        lengths = torch.ones(batch, dtype=torch.long)  # filler rows: one pad token each
        real[len(prompts) :, -1] = True
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            real[row, width - len(prompt) :] = True
            lengths[row] = len(prompt)
        ids, real, lengths = ids.to(device), real.to(device), lengths.to(device)
        slot.reset()
        slot.valid.fill_(True)
        slot.valid[:, :width] = real
        # Positions as generate numbers them: 0 at each row's first real token.
        positions = (real.long().cumsum(-1) - 1).masked_fill(~real, 1)
        causal = slot.kv_index[None, :] <= torch.arange(width, device=device)[:, None]
        mask = (slot.valid[:, None, :] & causal[None])[:, None]
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=slot.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        slot.index.fill_(width)
        slot.positions.copy_(lengths[:, None])
        return out.logits[:, -1, :]

    def _loop(self, slot, logits, rows: int, max_new_tokens: int, sampling) -> torch.Tensor:
        """Pick a token, record it, feed it back; stop at the budget or when every row stopped."""
        import torch

        check_every = _CUDA_STOP_CHECK_EVERY if self.cuda else 1
        out = torch.full((slot.batch, max_new_tokens), self.pad_id, device=self.device)
        finished = torch.zeros(slot.batch, dtype=torch.bool, device=self.device)
        finished[rows:] = True  # filler rows that round the batch up
        for step in range(max_new_tokens):
            tokens = choose_tokens(logits, *sampling)
            tokens = tokens.masked_fill(finished, self.pad_id)
            out[:, step] = tokens
            finished |= torch.isin(tokens, self.stop_ids)
            if step + 1 == max_new_tokens:
                break
            if (step + 1) % check_every == 0 and bool(finished.all()):
                return out[:, : step + 1]
            slot.tokens.copy_(tokens[:, None])
            logits = slot.run()
        return out
