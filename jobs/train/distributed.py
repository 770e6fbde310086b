"""Single process or ``torchrun``: the rank layout and the few collectives the trainer needs.

``torchrun --nproc_per_node G -m jobs.train.train ...`` sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; with ``WORLD_SIZE`` > 1 the trainer wraps the model in DDP (NCCL on CUDA,
gloo on CPU). Every rank builds the same batch plan and takes its share of each step's
micro-batches; rank 0 alone writes checkpoints and the committed output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits among the training processes."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_from_env(environ: Mapping[str, str]) -> DistInfo:
    """The layout ``torchrun`` describes in the environment (single process without it)."""
    world = int(environ.get("WORLD_SIZE", "1"))
    rank = int(environ.get("RANK", "0"))
    local = int(environ.get("LOCAL_RANK", str(rank)))
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"bad torchrun layout: WORLD_SIZE={world} RANK={rank}")
    return DistInfo(world, rank, local)


def device_for(dist: DistInfo, requested: str) -> Any:
    """The torch device of this rank (``auto``: CUDA when available)."""
    import torch

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device=cuda but no CUDA device is visible")
        torch.cuda.set_device(dist.local_rank)
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def init(dist: DistInfo, device: Any) -> None:
    """Join the process group (a no-op for a single process)."""
    if not dist.enabled:
        return
    import torch.distributed as torch_dist

    if not torch_dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch_dist.init_process_group(backend, rank=dist.rank, world_size=dist.world_size)


def shutdown(dist: DistInfo) -> None:
    if not dist.enabled:
        return
    import torch.distributed as torch_dist

    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def all_reduce_sum(tensor: Any, dist: DistInfo) -> Any:
    """Sum ``tensor`` over ranks in place (returned for chaining)."""
    if dist.enabled:
        import torch.distributed as torch_dist

        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
    return tensor


def gather_objects(obj: Any, dist: DistInfo) -> list[Any]:
    """``obj`` of every rank, in rank order (a one-item list for a single process)."""
    if not dist.enabled:
        return [obj]
    import torch.distributed as torch_dist

    out: list[Any] = [None] * dist.world_size
    torch_dist.all_gather_object(out, obj)
    return out


def barrier(dist: DistInfo) -> None:
    if dist.enabled:
        import torch.distributed as torch_dist

        torch_dist.barrier()
