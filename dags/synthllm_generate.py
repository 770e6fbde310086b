"""synthllm_generate: one corpus snapshot -> a validated synthetic math QA dataset.

Wiring only: every task runs a job module (``python -m jobs...``) built by the one factory in
``synthllm_tasks``; the profile (local subprocess or Kubernetes) comes from SYNTHLLM_PROFILE.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param, task
from synthllm_tasks import (
    DEFAULT_ARGS,
    SYNTHLLM_DATASET,
    JobSpec,
    Resources,
    job_task,
    shard_argv,
)

DOC_MD = """
# synthllm_generate

Turns one corpus snapshot into a validated synthetic math question-answer dataset the
SynthLLM way: Level-1 questions from one document, Level-2 questions combining one
document's key concepts, Level-3 questions combining concepts that weighted random walks on
the global concept co-occurrence graph draw from different documents; chain-of-thought
answers for all three.

**Inputs**: `{root}/corpus/{snapshot}/` (jsonl, jsonl.gz or parquet with a text field);
`{root}` is `storage.root_uri` of the profile, or `SYNTHLLM_ROOT_URI`.

**Outputs**: `{root}/runs/{snapshot}/` (documents, questions, qa, LLM shards, quarantine),
`{root}/reports/{snapshot}/` (Data Docs, summary report),
`{root}/datasets/synthllm/{snapshot}/` (published dataset). `publish` updates the Asset
`synthllm_dataset`, which schedules `synthllm_scaling`.

**Stages**: ingest → filter → validate_documents → concepts_prepare →
concepts_generate (mapped over shards) → concepts_collect → validate_doc_concepts →
build_graph (GraphFrames) → sample_combinations (walks) → questions_prepare →
questions_generate (mapped over level × shard) → questions_collect → validate_questions →
answers_prepare → answers_generate (mapped) → answers_collect → validate_qa → report → publish.

**Params**
- `snapshot`: snapshot name; empty means the run's logical date (`{{ ds }}`).
- `num_shards`: number of LLM shards (mapped task instances) per generation task; it wins
  over the profile's `generation.num_shards`.
- `config`: path of an extra TOML config overlay (empty: the profile's config only).

**Backfill** (one run per day, each names its snapshot by its logical date):
`airflow backfill create --dag-id synthllm_generate --from-date 2026-11-01 --to-date 2026-11-02`
(add `--reprocess-behavior failed` to rerun only failed snapshots). Stages commit atomically
per snapshot, so a rerun overwrites only its own snapshot.
"""

# Sizes for the kubernetes profile (the local profile runs everything on the worker).
# Ingest, filter, the concept graph and its walks run on Spark; the LLM-side stages handle
# per-document rows with pyarrow/pandas in one pod (jobs/tables.py).
SPARK = Resources(cpu=4, memory="16Gi", executors=4)
GPU = Resources(cpu=8, memory="64Gi", gpu=1)
TABLE = Resources(cpu=2, memory="8Gi")
CPU = Resources(cpu=1, memory="4Gi")
LLM_TIMEOUT = timedelta(hours=8)

INGEST = JobSpec("ingest", "jobs.ingest.ingest", kind="spark", resources=SPARK)
FILTER = JobSpec("filter", "jobs.filter.filter", kind="spark", resources=SPARK)
CONCEPTS_PREPARE = JobSpec(
    "concepts_prepare",
    "jobs.concepts.prepare",
    ("--num-shards", "{{ params.num_shards }}"),
    kind="python",
    resources=TABLE,
)
CONCEPTS_GENERATE = JobSpec(
    "concepts_generate",
    "jobs.llm.run_shard",
    ("--task", "concepts"),
    kind="python_gpu",
    resources=GPU,
    timeout=LLM_TIMEOUT,
)
CONCEPTS_COLLECT = JobSpec(
    "concepts_collect", "jobs.concepts.collect", kind="python", resources=TABLE
)
BUILD_GRAPH = JobSpec("build_graph", "jobs.graph.build", kind="spark", resources=SPARK)
SAMPLE_COMBINATIONS = JobSpec(
    "sample_combinations", "jobs.graph.combinations", kind="spark", resources=SPARK
)
QUESTIONS_PREPARE = JobSpec(
    "questions_prepare",
    "jobs.questions.prepare",
    ("--num-shards", "{{ params.num_shards }}"),
    kind="python",
    resources=TABLE,
)
# The level's task comes with each mapped instance (see level_shards).
QUESTIONS_GENERATE = JobSpec(
    "questions_generate",
    "jobs.llm.run_shard",
    kind="python_gpu",
    resources=GPU,
    timeout=LLM_TIMEOUT,
)
QUESTIONS_COLLECT = JobSpec(
    "questions_collect", "jobs.questions.collect", kind="python", resources=TABLE
)
ANSWERS_PREPARE = JobSpec(
    "answers_prepare",
    "jobs.answers.prepare",
    ("--num-shards", "{{ params.num_shards }}"),
    kind="python",
    resources=TABLE,
)
ANSWERS_GENERATE = JobSpec(
    "answers_generate",
    "jobs.llm.run_shard",
    ("--task", "answers"),
    kind="python_gpu",
    resources=GPU,
    timeout=LLM_TIMEOUT,
)
ANSWERS_COLLECT = JobSpec("answers_collect", "jobs.answers.collect", kind="python", resources=TABLE)
REPORT = JobSpec("report", "jobs.report.report", kind="python", resources=CPU)
PUBLISH = JobSpec("publish", "jobs.publish.publish", kind="python", resources=CPU)


def validate(table: str) -> JobSpec:
    """The Great Expectations gate on one table; a critical failure stops the run."""
    return JobSpec(
        f"validate_{table}",
        "jobs.validate.validate",
        ("--table", table),
        kind="python",
        resources=TABLE,
    )


@task
def shards(num_shards: str) -> list[str]:
    """Shard ids ``["0/N", ..., "N-1/N"]``; one mapped LLM task instance per id."""
    count = int(num_shards)
    if count < 1:
        raise ValueError(f"num_shards must be >= 1, got {count}")
    return [f"{i}/{count}" for i in range(count)]


QUESTION_TASKS = ["questions_l1", "questions_l2", "questions_l3"]


@task
def level_shards(num_shards: str) -> list[list[str]]:
    """Argv tails ``["--task", "questions_lK", "--shard", "i/N"]``: every level's shards."""
    count = int(num_shards)
    if count < 1:
        raise ValueError(f"num_shards must be >= 1, got {count}")
    return [["--task", t, "--shard", f"{i}/{count}"] for t in QUESTION_TASKS for i in range(count)]


with DAG(
    dag_id=Path(__file__).stem,
    description="Corpus snapshot -> validated synthetic math QA dataset (SynthLLM)",
    doc_md=DOC_MD,
    # Daily: a run's logical date names the snapshot, and backfills need a time schedule.
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    # Old snapshots are processed on purpose (backfill), never by accident on deploy.
    catchup=False,
    # One snapshot at a time: runs share the GPU pool (or the one local machine).
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=24),
    default_args=DEFAULT_ARGS,
    params={
        "snapshot": Param(
            None,
            type=["null", "string"],
            description="Snapshot name; empty: the run's logical date ({{ ds }}).",
        ),
        "num_shards": Param(2, type="integer", minimum=1, description="LLM shards per stage."),
        "config": Param("", type="string", description="Extra TOML config overlay path."),
    },
    tags=["synthllm", "generation", "spark", "llm"],
) as dag:
    shard_ids = shards(num_shards="{{ params.num_shards }}")
    shard_tails = shard_ids.map(shard_argv)
    question_tails = level_shards(num_shards="{{ params.num_shards }}")

    ingest = job_task(INGEST)
    filter_docs = job_task(FILTER)
    validate_documents = job_task(validate("documents"))
    concepts_prepare = job_task(CONCEPTS_PREPARE)
    concepts_generate = job_task(CONCEPTS_GENERATE, expand_argv=shard_tails)
    concepts_collect = job_task(CONCEPTS_COLLECT)
    validate_doc_concepts = job_task(validate("doc_concepts"))
    build_graph = job_task(BUILD_GRAPH)
    sample_combinations = job_task(SAMPLE_COMBINATIONS)
    questions_prepare = job_task(QUESTIONS_PREPARE)
    questions_generate = job_task(QUESTIONS_GENERATE, expand_argv=question_tails)
    questions_collect = job_task(QUESTIONS_COLLECT)
    validate_questions = job_task(validate("questions"))
    answers_prepare = job_task(ANSWERS_PREPARE)
    answers_generate = job_task(ANSWERS_GENERATE, expand_argv=shard_tails)
    answers_collect = job_task(ANSWERS_COLLECT)
    validate_qa = job_task(validate("qa"))
    report = job_task(REPORT)
    publish = job_task(PUBLISH, outlets=[SYNTHLLM_DATASET])

    (
        ingest
        >> filter_docs
        >> validate_documents
        >> concepts_prepare
        >> concepts_generate
        >> concepts_collect
        >> validate_doc_concepts
        >> build_graph
        >> sample_combinations
        >> questions_prepare
        >> questions_generate
        >> questions_collect
        >> validate_questions
        >> answers_prepare
        >> answers_generate
        >> answers_collect
        >> validate_qa
        >> report
        >> publish
    )


if __name__ == "__main__":
    dag.test()
