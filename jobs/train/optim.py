"""AdamW and the learning-rate schedule (warm-up, then linear, cosine or constant)."""

from __future__ import annotations

import math
from typing import Any

from jobs.train.recipes import Recipe


def warmup_steps(recipe: Recipe, total_steps: int) -> int:
    return math.ceil(recipe.warmup_ratio * total_steps)


def lr_factor(step: int, total_steps: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based).

    Warm-up rises linearly and reaches the peak on its last step; the decay then runs from
    the peak to 0 at ``total_steps`` (linear) or along half a cosine, as HF's schedules do.
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}")


def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only: norms and biases (1-D tensors) get none, as is customary."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: Any, recipe: Recipe, device_type: str) -> Any:
    """AdamW over the model's parameters (fused kernels on CUDA)."""
    import torch

    return torch.optim.AdamW(
        _param_groups(model, recipe.weight_decay),
        lr=recipe.learning_rate,
        betas=recipe.adam_betas,
        eps=recipe.adam_eps,
        fused=device_type == "cuda",
    )


def build_scheduler(optimizer: Any, recipe: Recipe, total_steps: int) -> Any:
    """A LambdaLR of :func:`lr_factor`; its state (the step count) goes into checkpoints."""
    import torch

    warmup = warmup_steps(recipe, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup, recipe.schedule)
    )
