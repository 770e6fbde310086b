"""Throughput, MFU, peak memory and the progress display of a training run.

MFU is ``6 * N * tokens/s`` over the GPU's peak dense bf16 throughput (989 TFLOP/s, the
H100/H200 SXM figure), with N every parameter counted once (tied embeddings once: the
lm-head product is real work) and attention's sequence-length term left out, the usual
approximation. Tokens are real (non-padding) tokens, so padding waste lowers MFU.
"""

from __future__ import annotations

import logging
import resource
import sys
import time
from typing import Any

log = logging.getLogger(__name__)

PEAK_FLOPS = 989e12  # dense bf16, H100/H200 SXM


def mfu(num_params: int, tokens_per_s: float, peak_flops: float = PEAK_FLOPS) -> float:
    """Model FLOPs utilisation of a training run (forward + backward = 6 N per token)."""
    return 6.0 * num_params * tokens_per_s / peak_flops


def peak_memory(device: Any) -> tuple[int, str]:
    """``(bytes, kind)``: CUDA peak allocated, or the process's peak resident set on CPU."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024), "cpu_max_rss"


class Progress:
    """A tqdm bar on stderr (interactive terminals only) and a log line every ``log_every``."""

    def __init__(self, total: int, start: int, log_every: int, enabled: bool = True) -> None:
        from tqdm import tqdm

        self.total = total
        self.log_every = log_every
        self.enabled = enabled
        # disable=None: tqdm hides itself when stderr is not a terminal (job logs).
        self.bar = tqdm(
            total=total,
            initial=start,
            unit="step",
            file=sys.stderr,
            disable=None if enabled else True,
            dynamic_ncols=True,
        )
        self.started = time.monotonic()
        self.window_tokens = 0
        self.window_started = self.started

    def update(self, step: int, loss: float, lr: float, tokens: int) -> None:
        """Record one finished optimizer step (``step`` is 1-based)."""
        now = time.monotonic()
        self.window_tokens += tokens
        rate = self.window_tokens / max(now - self.window_started, 1e-9)
        self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{rate:,.0f}", refresh=False)
        self.bar.update(1)
        if self.enabled and (step % self.log_every == 0 or step == self.total):
            log.info("step %d/%d loss %.4f lr %.3g %.0f tokens/s", step, self.total, loss, lr, rate)
            self.window_tokens, self.window_started = 0, now

    def close(self) -> None:
        self.bar.close()
