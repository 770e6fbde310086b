"""How big each class of job is on the cluster the DAGs deploy to, and how long it may take.

``SYNTHLLM_K8S_SIZES`` picks a row of ``SIZES`` when a DAG file is parsed (the environment
only, no I/O, like the other deployment settings in ``kubernetes.py``):

- ``production``: GPU nodes; Spark executors of 4 cores / 16 GiB; the paper-scale run of
  ``configs/kubernetes.toml``.
- ``small``: one 2-core node without GPUs (the project's local cluster, CI): shares of a
  core, a few GiB, the sample run of ``configs/cluster-local.toml``.

LLM-stage timeouts follow from the configured run size: the requests one shard of a task
holds (documents, questions per prompt and samples per question over the shard count), the
seconds one request takes on that cluster's engine and the model's load time. The run's
``dagrun_timeout`` adds up the stages in sequence, each LLM stage in as many waves as the
GPU pool lets its shards run at once. ``tests/dags`` checks the run sizes here against the
job configs, so the two cannot drift apart.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import timedelta

from synthllm_tasks.spec import Resources

SIZES_ENV = "SYNTHLLM_K8S_SIZES"
# The Airflow pool every GPU (LLM, training) task runs in; the deployment creates it with
# ``slots`` = the GPUs the cluster lends the pipeline (scripts/k8s/airflow-pools.sh).
GPU_POOL = os.environ.get("SYNTHLLM_GPU_POOL", "synthllm_gpu")


@dataclass(frozen=True)
class RunSize:
    """The run a cluster is sized for (the job config's numbers; tests pin them)."""

    documents: int  # generation.max_documents
    num_shards: int  # generation.num_shards
    questions_per_prompt: int  # the largest of questions.num_questions_l1/_l2
    samples_per_question: int  # answers.num_samples
    # refine: num_iterations x (num_rate_previous + num_rate_random) ratings in one task
    # (write_positives writes fewer: one document per filter.positive_topics entry).
    ratings: int


@dataclass(frozen=True)
class Engine:
    """What one request costs on the cluster's generation engine."""

    seconds_per_request: float  # aggregate over a shard's batch, measured with margin
    load_s: float  # model load (and, on a fresh node, the image pull)
    # Repairs of unparseable answers and one retry of failed requests can double the work.
    margin: float = 2.0


@dataclass(frozen=True)
class Sizes:
    """One cluster's resources per class of job, and the run it is sized for."""

    spark: Resources
    gpu: Resources
    table: Resources
    cpu: Resources
    run: RunSize
    engine: Engine
    gpu_pool_slots: int
    # Ingest through validation, graph and cleaning: the non-LLM stages in sequence.
    fixed_stages: timedelta

    def requests_per_shard(self, task: str) -> int:
        """An upper bound of one shard's requests for the LLM ``task``."""
        docs = math.ceil(self.run.documents / self.run.num_shards)
        if task == "refine":
            return self.run.ratings
        if task == "answers":
            # Levels 1 and 2 ask per document, Level 3 (walks) adds at most as many again.
            per_doc = 2 * self.run.questions_per_prompt * self.run.samples_per_question
            return 2 * docs * per_doc
        return docs  # concepts and each question level: one prompt per document (or walk)

    def llm_timeout(self, task: str) -> timedelta:
        """The execution timeout of one shard of ``task``."""
        work = self.requests_per_shard(task) * self.engine.seconds_per_request
        return timedelta(seconds=math.ceil(self.engine.load_s + self.engine.margin * work))

    def waves(self, instances: int) -> int:
        """How many rounds ``instances`` GPU tasks take through the pool."""
        return math.ceil(instances / self.gpu_pool_slots)

    def dagrun_timeout(self, llm_stages: dict[str, int]) -> timedelta:
        """The generation run's limit: ``llm_stages`` maps a task to its mapped instances."""
        llm = sum(
            (self.waves(n) * self.llm_timeout(task) for task, n in llm_stages.items()),
            timedelta(),
        )
        return self.fixed_stages + llm


SIZES = {
    "production": Sizes(
        spark=Resources(cpu=4, memory="16Gi", executors=4),
        gpu=Resources(cpu=8, memory="64Gi", gpu=1),
        table=Resources(cpu=2, memory="8Gi"),
        cpu=Resources(cpu=1, memory="4Gi"),
        run=RunSize(
            documents=1_000_000,
            num_shards=256,
            questions_per_prompt=5,
            samples_per_question=4,
            ratings=20_000,
        ),
        # vLLM, an 8B model in bf16 on one H100-class GPU: ~4k output tokens/s offline at
        # ~400 tokens per answer is ~0.1 s a request; loading takes minutes on a cold node.
        engine=Engine(seconds_per_request=0.1, load_s=900),
        # A million documents make ~40M answer requests (4 samples each): at 64 GPUs a run
        # still takes about two days, so the daily schedule's next run waits its turn
        # (max_active_runs=1). Size the pool to the GPUs the pipeline really has.
        gpu_pool_slots=64,
        fixed_stages=timedelta(hours=12),
    ),
    "small": Sizes(
        # 4 GiB: the filter's Python workers hold torch and the MiniLM model (2 GiB was
        # OOM-killed on the local cluster).
        spark=Resources(cpu=1, cpu_request="250m", memory="4Gi", executors=2),
        gpu=Resources(cpu=1, cpu_request="500m", memory="2Gi", gpu=1),
        table=Resources(cpu=1, cpu_request="250m", memory="2Gi"),
        cpu=Resources(cpu=1, cpu_request="250m", memory="2Gi"),
        run=RunSize(
            documents=8, num_shards=2, questions_per_prompt=3, samples_per_question=1, ratings=20
        ),
        # llama.cpp, SmolLM2-135M on one CPU core: ~30 tokens/s alone, 256 tokens a reply,
        # ~10 s. The node is shared (Spark drivers, the served model, other work on a CI
        # machine): a concepts shard timed out at 10 s a request there, so 30 s.
        engine=Engine(seconds_per_request=30, load_s=120),
        gpu_pool_slots=1,
        fixed_stages=timedelta(hours=2),
    ),
}


def active_sizes() -> Sizes:
    """$SYNTHLLM_K8S_SIZES (default ``production``), read when the DAG file is parsed."""
    name = os.environ.get(SIZES_ENV, "production")
    if name not in SIZES:
        raise ValueError(f"{SIZES_ENV} must be one of {sorted(SIZES)}, got {name!r}")
    return SIZES[name]


if __name__ == "__main__":
    # "NAME SLOTS": the pool a deployment creates (scripts/k8s/airflow-pools.sh).
    print(GPU_POOL, active_sizes().gpu_pool_slots)
