"""Job descriptions: what a DAG task runs, independent of where it runs.

A ``JobSpec`` names a job module and its argv (Jinja templates allowed); the factory in
``factory.py`` turns it into the operator of the active profile. Nothing here imports
Airflow, so the specs can be unit-tested and reused by any DAG.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

JobKind = Literal["spark", "python", "python_gpu"]
ImageKind = Literal["spark", "python", "vllm"]

# Every job receives the snapshot, the run id and the try number (names its _tmp prefix).
# An explicit `snapshot` param wins over the run's logical date, so a backfill or a manual
# run can name any snapshot.
SNAPSHOT = "{{ params.snapshot or ds }}"
RUN_ARGV: tuple[str, ...] = (
    "--snapshot",
    SNAPSHOT,
    "--run-id",
    "{{ run_id }}",
    "--attempt",
    "{{ ti.try_number }}",
    "--config",
    "{{ params.config }}",
)

# default_args of every synthllm DAG.
DEFAULT_ARGS = {
    "owner": "data-platform",
    # Transient failures (preempted pod, S3 hiccup); outputs commit per attempt. A job that
    # exits with the permanent code fails at once instead (synthllm_tasks/exitcodes.py).
    "retries": 3,
    "retry_delay": timedelta(minutes=2),
    # A multiplier in Airflow 3 (True is 1: a constant delay): waits of 2-4, 4-8, 8-16 min
    # (hash jitter); an S3 brown-out or a node drain usually clears within that.
    "retry_exponential_backoff": 2.0,
    # Caps a long backoff so a retried task still finishes within the day's run.
    "max_retry_delay": timedelta(minutes=30),
}

_IMAGE_FOR_KIND: dict[str, ImageKind] = {"spark": "spark", "python": "python", "python_gpu": "vllm"}
_QUANTITY = re.compile(r"^(\d+)(Mi|Gi)$")
_CPU = re.compile(r"^(\d+m|\d+(\.\d+)?)$")


@dataclass(frozen=True)
class Resources:
    """What one job needs; for Spark jobs ``cpu``/``memory`` size the driver and each executor."""

    # Whole cores: Spark's driver/executor ``cores`` is an integer in the CRD schema.
    cpu: int = 1
    # Kubernetes quantity (Mi/Gi only), converted to Spark's "4g"/"512m" for SparkApplications.
    memory: str = "2Gi"
    # GPUs per pod; only python_gpu jobs ask for any.
    gpu: int = 0
    # Spark executors; two is the smallest count that still exercises a shuffle across pods.
    executors: int = 2
    # None: request ``cpu`` whole cores. A small cluster asks for a share of a core (e.g.
    # "250m") so that a driver and two executors fit on one 2-core node.
    cpu_request: str | None = None

    def __post_init__(self) -> None:
        if self.cpu < 1 or self.gpu < 0 or self.executors < 1:
            raise ValueError(f"resources out of range: {self}")
        if not _QUANTITY.match(self.memory):
            raise ValueError(f"memory must look like '512Mi' or '4Gi', got {self.memory!r}")
        if self.cpu_request is not None and not _CPU.match(self.cpu_request):
            raise ValueError(f"cpu_request must look like '250m' or '2', got {self.cpu_request!r}")

    @property
    def cpu_quantity(self) -> str:
        """The pod's CPU request as a Kubernetes quantity."""
        return self.cpu_request or str(self.cpu)

    def mebibytes(self) -> int:
        number, unit = _QUANTITY.match(self.memory).groups()
        return int(number) * (1024 if unit == "Gi" else 1)

    def spark_memory(self) -> str:
        """The memory in Spark's notation ("4Gi" -> "4g", "512Mi" -> "512m")."""
        number, unit = _QUANTITY.match(self.memory).groups()
        return f"{number}{'g' if unit == 'Gi' else 'm'}"

    def spark_heap_and_overhead(self) -> tuple[str, str]:
        """``memory`` split into an executor's JVM heap and its overhead ("1228m", "820m" of 2Gi).

        A PySpark executor's Python workers (pandas UDFs, the embedding model) live in the
        overhead, so it gets 40% of the pod, where Spark's default is 10%.
        """
        total = self.mebibytes()
        heap = total * 3 // 5
        return f"{heap}m", f"{total - heap}m"


@dataclass(frozen=True)
class JobSpec:
    """One task: ``python -m <module> <argv...>`` with the resources it needs."""

    task_id: str
    module: str
    # Empty: most jobs need only the run-scoped flags (RUN_ARGV); templated by Airflow.
    argv: tuple[str, ...] = ()
    # Plain Python: the cheapest runtime; Spark and GPU must be asked for explicitly.
    kind: JobKind = "python"
    # One core, 2 GiB: enough for the small-table jobs; big stages size themselves.
    resources: Resources = field(default_factory=Resources)
    # None: the image that matches ``kind`` (spark -> spark, python -> python, GPU -> vllm).
    image: ImageKind | None = None
    # A stuck job must not hold a worker slot or a GPU forever; LLM shards override it.
    timeout: timedelta = timedelta(hours=2)
    # False: the job's exit code is its only answer. True: it writes one JSON value to the
    # file named by --result-file, and the task returns it as its XCom (the shard count).
    returns_value: bool = False

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.task_id):
            raise ValueError(f"task_id must be lower snake case, got {self.task_id!r}")
        if not re.fullmatch(r"jobs(\.[a-z_][a-z0-9_]*)+", self.module):
            raise ValueError(f"module must be a jobs.* module path, got {self.module!r}")
        if self.kind == "python_gpu" and self.resources.gpu < 1:
            raise ValueError(f"{self.task_id}: a python_gpu job needs resources.gpu >= 1")

    @property
    def image_kind(self) -> ImageKind:
        """The image this job runs in."""
        return self.image or _IMAGE_FOR_KIND[self.kind]

    @property
    def full_argv(self) -> list[str]:
        """The job's argv: run-scoped flags first, then the job's own."""
        return [*RUN_ARGV, *self.argv]

    @property
    def k8s_name(self) -> str:
        """The task id as a DNS-1123 name (pods and SparkApplications reject underscores)."""
        return self.task_id.replace("_", "-")


def shard_argv(shard: str) -> list[str]:
    """The per-instance tail of a mapped LLM task: ``["--shard", "0/2"]``."""
    return ["--shard", shard]
