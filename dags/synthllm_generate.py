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
    job_task,
    shard_argv,
)
from synthllm_tasks.sizing import active_sizes

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

**Stages**: ingest → write_positives (LLM-written classifier positives, when
`filter.positive_topics` is set) → filter (heuristics, dedup, cold-start classifier) →
refine (fine-grained rounds: LLM ratings, random-forest regressor) → validate_documents →
concepts_prepare →
concepts_generate (mapped over shards) → concepts_collect → validate_doc_concepts →
build_graph (GraphFrames) → sample_combinations (walks) → questions_prepare →
questions_generate (mapped over level × shard) → questions_collect → validate_questions →
clean_questions (dedup, published-question index, decontamination, format rules) →
validate_questions_clean → answers_prepare → answers_generate (mapped) → answers_collect →
validate_qa → report → publish.

**Params**
- `snapshot`: snapshot name; empty means the run's logical date (`{{ ds }}`).
- `num_shards`: number of LLM shards (mapped task instances) per generation task. Empty
  (the default): the config's `generation.num_shards` (the profile, e.g. 256 in
  `configs/kubernetes.toml`, plus the overlay); when set, the param wins over the config.
  `shard_count` (the job `jobs.plan`, in a pod like every job) resolves it once per run,
  and the prepare jobs and the shard mapping both take that value (`--num-shards` from its
  XCom), so they cannot disagree.
- `config`: path of an extra TOML config overlay (empty: the profile's config only), as
  the jobs see it (in a pod: relative to the image's /opt/synthllm, e.g.
  `configs/cluster-local.toml`).

**Kubernetes**: GPU tasks run in the Airflow pool `synthllm_gpu`, sized to the GPUs the
cluster lends; LLM-stage timeouts and this run's `dagrun_timeout` follow from the sizes in
`synthllm_tasks/sizing.py` (`SYNTHLLM_K8S_SIZES`).

**Backfill** (one run per day, each names its snapshot by its logical date):
`airflow backfill create --dag-id synthllm_generate --from-date 2026-11-01 --to-date 2026-11-02`
(add `--reprocess-behavior failed` to rerun only failed snapshots). Stages commit atomically
per snapshot, so a rerun overwrites only its own snapshot.
"""

# Sizes for the kubernetes profile, per kind of cluster (synthllm_tasks/sizing.py; the local
# profile runs everything on the worker). Ingest, filter, the concept graph, its walks and
# question cleaning run on Spark; the LLM-side stages handle per-document rows with
# pyarrow/pandas in one pod (jobs/tables.py).
SIZES = active_sizes()
SPARK, GPU, TABLE, CPU = SIZES.spark, SIZES.gpu, SIZES.table, SIZES.cpu
# Mapped LLM instances per stage: the shard count, three question levels of it.
LLM_STAGES = {
    "concepts": SIZES.run.num_shards,
    "questions": 3 * SIZES.run.num_shards,
    "answers": SIZES.run.num_shards,
}
# refine and write_positives are one task each, rating (or writing) a bounded sample.
SINGLE_LLM_TIMEOUT = SIZES.llm_timeout("refine")

# The run's shard count, resolved once by the shard_count task (param, else config).
NUM_SHARDS = "{{ ti.xcom_pull(task_ids='shard_count') }}"

# The jobs' own config loader resolves the count, in a pod like every job (jobs/plan.py).
SHARD_COUNT = JobSpec(
    "shard_count",
    "jobs.plan",
    ("--num-shards", "{{ params.num_shards or '' }}"),
    kind="python",
    resources=CPU,
    # A config load: it must not hold a worker slot for long.
    timeout=timedelta(minutes=10),
    returns_value=True,
)
INGEST = JobSpec("ingest", "jobs.ingest.ingest", kind="spark", resources=SPARK)
FILTER = JobSpec("filter", "jobs.filter.filter", kind="spark", resources=SPARK)
# Both run an LLM where the model lives; the Spark pods have no GPU.
WRITE_POSITIVES = JobSpec(
    "write_positives",
    "jobs.filter.positives",
    kind="python_gpu",
    resources=GPU,
    timeout=SINGLE_LLM_TIMEOUT,
)
REFINE = JobSpec(
    "refine", "jobs.filter.refine", kind="python_gpu", resources=GPU, timeout=SINGLE_LLM_TIMEOUT
)
CONCEPTS_PREPARE = JobSpec(
    "concepts_prepare",
    "jobs.concepts.prepare",
    ("--num-shards", NUM_SHARDS),
    kind="python",
    resources=TABLE,
)
CONCEPTS_GENERATE = JobSpec(
    "concepts_generate",
    "jobs.llm.run_shard",
    ("--task", "concepts"),
    kind="python_gpu",
    resources=GPU,
    timeout=SIZES.llm_timeout("concepts"),
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
    ("--num-shards", NUM_SHARDS),
    kind="python",
    resources=TABLE,
)
# The level's task comes with each mapped instance (see level_shards).
QUESTIONS_GENERATE = JobSpec(
    "questions_generate",
    "jobs.llm.run_shard",
    kind="python_gpu",
    resources=GPU,
    timeout=SIZES.llm_timeout("questions"),
)
QUESTIONS_COLLECT = JobSpec(
    "questions_collect", "jobs.questions.collect", kind="python", resources=TABLE
)
CLEAN_QUESTIONS = JobSpec("clean_questions", "jobs.questions.clean", kind="spark", resources=SPARK)
ANSWERS_PREPARE = JobSpec(
    "answers_prepare",
    "jobs.answers.prepare",
    ("--num-shards", NUM_SHARDS),
    kind="python",
    resources=TABLE,
)
ANSWERS_GENERATE = JobSpec(
    "answers_generate",
    "jobs.llm.run_shard",
    ("--task", "answers"),
    kind="python_gpu",
    resources=GPU,
    timeout=SIZES.llm_timeout("answers"),
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


# Both list shard ids from the resolved count: instant, so a short timeout.
@task(execution_timeout=timedelta(minutes=5))
def shards(num_shards: str) -> list[str]:
    """Shard ids ``["0/N", ..., "N-1/N"]``; one mapped LLM task instance per id."""
    count = int(num_shards)
    if count < 1:
        raise ValueError(f"num_shards must be >= 1, got {count}")
    return [f"{i}/{count}" for i in range(count)]


QUESTION_TASKS = ["questions_l1", "questions_l2", "questions_l3"]


@task(execution_timeout=timedelta(minutes=5))
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
    # The stages in sequence, each LLM stage in as many waves as the GPU pool allows.
    dagrun_timeout=SIZES.dagrun_timeout(LLM_STAGES) + 2 * SINGLE_LLM_TIMEOUT,
    default_args=DEFAULT_ARGS,
    params={
        "snapshot": Param(
            None,
            type=["null", "string"],
            description="Snapshot name; empty: the run's logical date ({{ ds }}).",
        ),
        "num_shards": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="LLM shards per stage; empty: generation.num_shards of the config. "
            "When set, it wins over the config.",
        ),
        "config": Param(
            "",
            type="string",
            description="Extra TOML config overlay path; its values win over the profile's.",
        ),
    },
    tags=["synthllm", "generation", "spark", "llm"],
) as dag:
    # The profile is fixed when the file is parsed, like the operators the factory builds.
    count = job_task(SHARD_COUNT)
    shard_ids = shards(count.output)
    shard_tails = shard_ids.map(shard_argv)
    question_tails = level_shards(count.output)

    ingest = job_task(INGEST)
    write_positives = job_task(WRITE_POSITIVES)
    filter_docs = job_task(FILTER)
    refine = job_task(REFINE)
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
    clean_questions = job_task(CLEAN_QUESTIONS)
    validate_questions_clean = job_task(validate("questions_clean"))
    answers_prepare = job_task(ANSWERS_PREPARE)
    answers_generate = job_task(ANSWERS_GENERATE, expand_argv=shard_tails)
    answers_collect = job_task(ANSWERS_COLLECT)
    # Templates that pull an XCom add no edge: the prepare jobs read the resolved count.
    count >> [concepts_prepare, questions_prepare, answers_prepare]
    validate_qa = job_task(validate("qa"))
    report = job_task(REPORT)
    publish = job_task(PUBLISH, outlets=[SYNTHLLM_DATASET])

    (
        ingest
        >> write_positives
        >> filter_docs
        >> refine
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
        >> clean_questions
        >> validate_questions_clean
        >> answers_prepare
        >> answers_generate
        >> answers_collect
        >> validate_qa
        >> report
        >> publish
    )


if __name__ == "__main__":
    dag.test()
