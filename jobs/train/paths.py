"""Where a scaling study's subsets, training runs and evaluations live under the storage root.

``{root}/scaling/{study_id}/subsets/{K}/``      training rows (committed by the scaling study)
``{root}/scaling/{study_id}/runs/{K}/train/``   the trained model and its metrics (committed)
``{root}/scaling/{study_id}/runs/{K}/checkpoints/``  resumable state while training
``{root}/scaling/{study_id}/runs/{K}/eval/``    predictions and metrics (committed)
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from jobs.storage import join, resolve_uri

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def path_segment(value: str) -> str:
    """An argparse type: a name that is safe as one path segment (no ``/``, no ``..``)."""
    if not _SEGMENT.match(value or ""):
        raise argparse.ArgumentTypeError(
            f"expected 1-64 letters, digits, '.', '_' or '-' (not starting with one of "
            f"'._-'), got {value!r}"
        )
    return value


@dataclass(frozen=True)
class RunPaths:
    """URIs of one subset's training run in one scaling study."""

    root_uri: str
    study_id: str
    subset: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root_uri", resolve_uri(self.root_uri))
        for value in (self.study_id, self.subset):
            path_segment(value)

    @property
    def study(self) -> str:
        return join(self.root_uri, "scaling", self.study_id)

    @property
    def subset_data(self) -> str:
        return join(self.study, "subsets", self.subset)

    @property
    def run(self) -> str:
        return join(self.study, "runs", self.subset)

    @property
    def train(self) -> str:
        return join(self.run, "train")

    @property
    def checkpoints(self) -> str:
        return join(self.run, "checkpoints")

    @property
    def eval(self) -> str:
        return join(self.run, "eval")
