"""Where a scaling study lives: ``{root}/scaling/{study_id}/`` (the trainer's contract).

``subsets/{K}/``     nested training subsets (committed Parquet), K = 0 is the smallest
``runs/{K}/train/``  the trainer's output (``metrics.json``)
``runs/{K}/eval/``   the evaluation's output (``metrics.json``)
``study.json``       the study's description, written last by ``study prepare``
``report/``          the fits (report.json, report.html, fit.png)
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.layout import check_snapshot
from jobs.storage import join, resolve_uri

STUDY_FILE = "study.json"
METRICS_FILE = "metrics.json"


def check_study_id(study_id: str) -> str:
    """Study ids become path segments: the snapshot rule (1-64 of letters, digits, . _ -)."""
    try:
        return check_snapshot(study_id)
    except ValueError as exc:
        raise ValueError(str(exc).replace("snapshot:", "study id:", 1)) from None


@dataclass(frozen=True)
class StudyLayout:
    """URIs of one scaling study."""

    root_uri: str
    study_id: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root_uri", resolve_uri(self.root_uri))
        check_study_id(self.study_id)

    @property
    def base(self) -> str:
        return join(self.root_uri, "scaling", self.study_id)

    @property
    def study_file(self) -> str:
        return join(self.base, STUDY_FILE)

    def subset(self, k: int | str) -> str:
        return join(self.base, "subsets", str(k))

    def train(self, k: int | str) -> str:
        return join(self.base, "runs", str(k), "train")

    def eval(self, k: int | str) -> str:
        return join(self.base, "runs", str(k), "eval")

    @property
    def report(self) -> str:
        return join(self.base, "report")
