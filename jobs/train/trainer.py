"""The training loop: answer-only loss, gradient accumulation, checkpoints and exact resume.

Loss: the summed token NLL of every answer token in the optimizer step, divided by the
step's answer-token count over all ranks (known from the batch plan, so no extra
communication). Gradient accumulation and DDP therefore give the same gradient as one big
batch; DDP averages gradients over ranks, which the loss undoes by multiplying by the world
size. The logged loss of a step is that same token-weighted mean.

Exact resume: model, optimizer and scheduler state, RNG states and the step are restored
from the newest checkpoint; the batch plan is rebuilt from the seed, so step ``k + 1`` of a
resumed run sees the same batch and state as in an uninterrupted run and its loss is
bit-identical on the same hardware and thread count.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobs.train.checkpoint import CheckpointStore, rng_state, set_rng_state
from jobs.train.data import TokenizedSet, collate, micro_batches, plan_steps, step_counts
from jobs.train.distributed import DistInfo, all_reduce_sum, gather_objects
from jobs.train.loss import answer_nll_module
from jobs.train.meter import Progress, mfu, peak_memory
from jobs.train.optim import build_optimizer, build_scheduler
from jobs.train.recipes import Recipe, recipe_dict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSettings:
    """Run-scoped knobs that do not change what is learned (besides the seed)."""

    seed: int = 0
    checkpoint_every: int = 50
    log_every: int = 10
    max_steps: int | None = None
    progress: bool = True


@dataclass
class TrainResult:
    """The loss curve and the counters of a finished run (all attempts together)."""

    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    step_tokens: list[int] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    loss_tokens: int = 0
    train_seconds: float = 0.0
    resumed_from: int | None = None
    num_steps: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    num_params: int = 0
    world_size: int = 1
    peak_memory_bytes: int = 0
    peak_memory_kind: str = ""
    steady_tokens_per_s: float | None = None

    @property
    def tokens_seen(self) -> int:
        return sum(self.step_tokens)

    def metrics(self) -> dict[str, Any]:
        """The training half of ``metrics.json``."""
        rate = self.tokens_seen / self.train_seconds if self.train_seconds > 0 else 0.0
        seen = 0
        curve = []
        for i, (loss, lr, tokens, seconds) in enumerate(
            zip(self.losses, self.lrs, self.step_tokens, self.step_seconds, strict=True)
        ):
            seen += tokens
            curve.append(
                {"step": i + 1, "loss": loss, "lr": lr, "tokens_seen": seen, "seconds": seconds}
            )
        gpu = self.device.startswith("cuda")
        return {
            "loss_curve": curve,
            "final_loss": self.losses[-1] if self.losses else None,
            "num_steps": self.num_steps,
            "tokens_seen": self.tokens_seen,  # non-padding tokens trained on, all epochs
            "train_tokens": self.tokens_seen,  # the same; the name the evaluation copies
            "train_answer_tokens": self.loss_tokens,
            "train_seconds": round(self.train_seconds, 3),
            "tokens_per_s": rate,
            "steady_tokens_per_s": self.steady_tokens_per_s,
            "peak_memory_bytes": self.peak_memory_bytes,
            "peak_memory_kind": self.peak_memory_kind,
            # Tokens/s are over all ranks: each GPU's share is 1 / world_size of it.
            "mfu": (
                mfu(self.num_params, (self.steady_tokens_per_s or rate) / self.world_size)
                if gpu
                else None
            ),
            "num_params": self.num_params,
            "device": self.device,
            "precision": self.precision,
            "resumed_from_step": self.resumed_from,
        }


def fingerprint(recipe: Recipe, settings: RunSettings, data: TokenizedSet, world: int) -> str:
    """What a checkpoint must match to be resumed from."""
    body = json.dumps(
        [recipe_dict(recipe), settings.seed, settings.max_steps, world, data.fingerprint()],
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:16]


class Trainer:
    """Trains one model on one tokenized set with one recipe."""

    def __init__(
        self,
        model: Any,
        data: TokenizedSet,
        recipe: Recipe,
        settings: RunSettings,
        device: Any,
        pad_id: int,
        dist: DistInfo | None = None,
    ) -> None:
        self.raw_model = model.to(device)
        self.data, self.recipe, self.settings = data, recipe, settings
        self.device, self.pad_id = device, pad_id
        self.dist = dist or DistInfo()
        cuda = device.type == "cuda"
        self.bf16 = recipe.precision == "bf16" and cuda
        if recipe.precision == "bf16" and not cuda:
            log.info("recipe %s: bf16 needs CUDA; training in fp32 on %s", recipe.name, device)
        runner = answer_nll_module(self.raw_model, compile=recipe.compile and cuda)
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            runner = DistributedDataParallel(runner, device_ids=[device.index] if cuda else None)
        self.model = runner
        # A compiled model recompiles for every new width; rounding widths bounds the shapes.
        self.pad_multiple = 64 if recipe.compile and cuda else 1
        self.optimizer = build_optimizer(self.raw_model, recipe, device.type)
        self.steps = plan_steps(
            data.lengths,
            recipe.batch_size,
            recipe.num_epochs,
            settings.seed,
            recipe.bucket_batches,
            self.dist.world_size,
        )
        if settings.max_steps:
            self.steps = self.steps[: settings.max_steps]
        if not self.steps:
            raise ValueError("no training steps: the subset has too few examples")
        self.scheduler = build_scheduler(self.optimizer, recipe, len(self.steps))
        self.fingerprint = fingerprint(recipe, settings, data, self.dist.world_size)

    # -- checkpoints ------------------------------------------------------------------------

    def _payload(self, result: TrainResult) -> dict[str, Any]:
        step = len(result.losses)
        return {
            "fingerprint": self.fingerprint,
            "step": step,
            "data_position": {"step": step, "examples": int(sum(map(len, self.steps[:step])))},
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": gather_objects(rng_state(), self.dist),
            "losses": list(result.losses),
            "lrs": list(result.lrs),
            "step_tokens": list(result.step_tokens),
            "step_seconds": list(result.step_seconds),
            "loss_tokens": result.loss_tokens,
            "train_seconds": result.train_seconds,
        }

    def _restore(self, payload: dict[str, Any], result: TrainResult) -> None:
        self.raw_model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        set_rng_state(payload["rng"][self.dist.rank])
        result.losses = list(payload["losses"])
        result.lrs = list(payload["lrs"])
        result.step_tokens = list(payload["step_tokens"])
        result.step_seconds = list(payload["step_seconds"])
        result.loss_tokens = int(payload["loss_tokens"])
        result.train_seconds = float(payload["train_seconds"])
        result.resumed_from = int(payload["step"])

    # -- the loop ---------------------------------------------------------------------------

    def _step(self, indices: Any) -> tuple[float, int, int]:
        """One optimizer step; returns (loss, tokens, answer tokens) over all ranks."""
        import torch

        tokens, loss_tokens = step_counts(self.data, indices)
        parts = micro_batches(
            indices, self.recipe.micro_batch_size, self.dist.world_size, self.dist.rank
        )
        scale = self.dist.world_size / max(loss_tokens, 1)
        nll_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        for j, part in enumerate(parts):
            batch = {
                k: v.to(self.device, non_blocking=True)
                for k, v in collate(self.data, part, self.pad_id, self.pad_multiple).items()
            }
            last = j == len(parts) - 1
            no_sync = self.model.no_sync() if self.dist.enabled and not last else None
            autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)
            with no_sync or contextlib.nullcontext(), autocast:
                nll = self.model(**batch)
            (nll * scale).backward()
            nll_sum += nll.detach().double()
        if self.recipe.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.recipe.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        all_reduce_sum(nll_sum, self.dist)
        return float(nll_sum.item()) / max(loss_tokens, 1), tokens, loss_tokens

    def train(
        self,
        checkpoints: CheckpointStore | None = None,
        after_step: Callable[[int], None] | None = None,
    ) -> TrainResult:
        """Run (or finish) the plan; ``after_step(step)`` runs after each step's checkpoint."""
        import torch

        result = TrainResult(
            num_steps=len(self.steps), device=str(self.device), world_size=self.dist.world_size
        )
        result.precision = "bf16-autocast" if self.bf16 else "fp32"
        result.num_params = sum(p.numel() for p in self.raw_model.parameters())
        payload = checkpoints.load_latest(self.fingerprint) if checkpoints else None
        if payload is not None:
            self._restore(payload, result)
        else:
            torch.manual_seed(self.settings.seed + self.dist.rank)
        start = len(result.losses)
        self.raw_model.train()
        progress = Progress(
            len(self.steps),
            start,
            self.settings.log_every,
            self.settings.progress and self.dist.is_main,
        )
        steady_tokens, steady_seconds = 0, 0.0
        try:
            for step in range(start, len(self.steps)):
                began = time.monotonic()
                lr = self.scheduler.get_last_lr()[0]
                loss, tokens, loss_tokens = self._step(self.steps[step])
                elapsed = time.monotonic() - began
                result.losses.append(loss)
                result.lrs.append(lr)
                result.step_tokens.append(tokens)
                result.step_seconds.append(round(elapsed, 6))
                result.loss_tokens += loss_tokens
                result.train_seconds += elapsed
                if step > start:  # the first step of an attempt compiles and warms up
                    steady_tokens, steady_seconds = steady_tokens + tokens, steady_seconds + elapsed
                progress.update(step + 1, loss, lr, tokens)
                done = step + 1
                if (
                    checkpoints
                    and done % self.settings.checkpoint_every == 0
                    and done < len(self.steps)
                ):
                    payload = self._payload(result)
                    if self.dist.is_main:
                        checkpoints.save(done, payload)
                if after_step:
                    after_step(done)
        finally:
            progress.close()
        if steady_seconds > 0:
            result.steady_tokens_per_s = steady_tokens / steady_seconds
        result.peak_memory_bytes, result.peak_memory_kind = peak_memory(self.device)
        self.raw_model.eval()
        return result
