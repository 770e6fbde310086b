"""Training checkpoints through the storage layer, and the RNG states they carry.

One checkpoint is one object, ``{uri}/step-00000050.pt``: ``torch.save`` of the model,
optimizer and scheduler state dicts, every rank's RNG states (python, numpy, torch, CUDA),
the data position (the optimizer step; the batch plan is a pure function of the data and the
seed) and the loss curve so far. It is saved to a local temp file (a 1B model with AdamW
state is ~15 GB: no second copy in memory) and then published atomically: on S3 by one
(multipart) upload, whose object appears only when complete, locally by upload to a
``.partial`` name and a rename. A SIGKILL leaves either the old or the new checkpoint, never
half of one. Older checkpoints beyond ``keep`` are deleted after each save.

A checkpoint records a fingerprint of the recipe, seed, world size and token stream; a
checkpoint with another fingerprint (the subset was rebuilt, the recipe changed) is not
resumed from: the folder is cleared and training starts over.
"""

from __future__ import annotations

import io
import logging
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from jobs.storage import Storage, basename, join

log = logging.getLogger(__name__)

_NAME = re.compile(r"^step-(\d{8})\.pt$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.pt"


def rng_state() -> dict[str, Any]:
    """This process's RNG states, as plain types ``torch.load(weights_only=True)`` accepts."""
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`rng_state`."""
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointStore:
    """Save, find, load and prune the checkpoints of one training run."""

    def __init__(self, storage: Storage, uri: str, keep: int = 2) -> None:
        self.storage = storage
        self.uri = uri
        self.keep = keep

    def steps(self) -> list[int]:
        """Steps that have a checkpoint, ascending."""
        found = []
        for child in self.storage.list(self.uri):
            m = _NAME.match(basename(child))
            if m:
                found.append(int(m.group(1)))
        return sorted(found)

    def save(self, step: int, payload: dict[str, Any]) -> str:
        """Write the checkpoint of ``step`` and prune the oldest beyond ``keep``."""
        import torch

        uri = join(self.uri, checkpoint_name(step))
        with tempfile.TemporaryDirectory(prefix="synthllm-ckpt-") as tmp:
            path = Path(tmp) / checkpoint_name(step)
            torch.save(payload, path)
            size = path.stat().st_size
            if uri.startswith("s3://"):
                # One PUT stops at 5 GB; a multipart upload has no such limit and is atomic.
                self.storage.upload_file(path, uri)
            else:
                self.storage.upload_file(path, uri + ".partial")
                self.storage.move(uri + ".partial", uri)
        for old in self.steps()[: -self.keep]:
            self.storage.delete(join(self.uri, checkpoint_name(old)))
        log.info("checkpoint %s (%.1f MB)", uri, size / 1e6)
        return uri

    def load_latest(self, fingerprint: str) -> dict[str, Any] | None:
        """The newest readable checkpoint with this fingerprint; None to start over."""
        import torch

        for step in reversed(self.steps()):
            uri = join(self.uri, checkpoint_name(step))
            data = self.storage.read_bytes(uri)  # a failed read (S3 500) is not a damaged file
            try:
                payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            except Exception as exc:  # a damaged object: fall back to the one before
                log.warning("unreadable checkpoint %s (%s); trying an older one", uri, exc)
                continue
            if payload.get("fingerprint") != fingerprint:
                log.warning(
                    "checkpoints under %s belong to another run (fingerprint %s, expected %s); "
                    "starting over",
                    self.uri, payload.get("fingerprint"), fingerprint,
                )  # fmt: skip
                self.clear()
                return None
            log.info("resuming from %s", uri)
            return payload
        return None

    def clear(self) -> None:
        self.storage.delete(self.uri)
