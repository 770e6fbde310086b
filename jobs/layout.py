"""Where every table lives under the storage root (DESIGN.md section 2)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from jobs.storage import join, resolve_uri

_SNAPSHOT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_snapshot(snapshot: str) -> str:
    """Snapshot names become path segments: refuse anything that could escape its prefix."""
    if not _SNAPSHOT_RE.match(snapshot or ""):
        raise ValueError(
            f"snapshot: expected 1-64 characters of letters, digits, '.', '_' or '-', "
            f"got {snapshot!r}"
        )
    return snapshot


@dataclass(frozen=True)
class Layout:
    """URIs of one snapshot's inputs and outputs."""

    root_uri: str
    snapshot: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root_uri", resolve_uri(self.root_uri))
        check_snapshot(self.snapshot)

    @property
    def corpus(self) -> str:
        return join(self.root_uri, "corpus", self.snapshot)

    @property
    def run(self) -> str:
        return join(self.root_uri, "runs", self.snapshot)

    def table(self, name: str) -> str:
        return join(self.run, name)

    def quarantine(self, stage: str) -> str:
        return join(self.run, "quarantine", stage)

    def llm_task(self, task: str) -> str:
        return join(self.run, "llm", task)

    @property
    def dataset(self) -> str:
        return join(self.root_uri, "datasets", "synthllm", self.snapshot)

    @property
    def question_index(self) -> str:
        """The published-question index, one committed prefix per snapshot below it."""
        return join(self.root_uri, "datasets", "synthllm", "_index")

    @property
    def reports(self) -> str:
        return join(self.root_uri, "reports", self.snapshot)
