"""synthllm_tasks/sizing.py: sizes per cluster, the run each is sized for, and the timeouts.

The run sizes are a copy of job config numbers (DAG code never loads the config), so the
first test ties them to the configs the jobs load on that cluster.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from synthllm_tasks import Resources
from synthllm_tasks.sizing import SIZES, Engine, RunSize, Sizes, active_sizes

from jobs.config import load_config

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
# LLM task -> the sizing task its timeout is computed for (write_positives shares refine's).
LLM_TASKS = {
    "write_positives": "refine",
    "refine": "refine",
    "concepts_generate": "concepts",
    "questions_generate": "questions",
    "answers_generate": "answers",
}


def run_size(cfg) -> RunSize:
    """The numbers of a job config that size the LLM stages (see RunSize)."""
    refine = cfg.refine
    return RunSize(
        documents=cfg.generation.max_documents,
        num_shards=cfg.generation.num_shards,
        questions_per_prompt=max(cfg.questions.num_questions_l1, cfg.questions.num_questions_l2),
        samples_per_question=cfg.answers.num_samples,
        ratings=refine.num_iterations * (refine.num_rate_previous + refine.num_rate_random),
    )


@pytest.mark.parametrize(
    ("sizes", "overlay"),
    [("production", None), ("small", REPO / "configs/cluster-local.toml")],
)
def test_each_cluster_is_sized_for_the_run_its_config_makes(sizes, overlay):
    cfg = load_config("kubernetes", str(overlay) if overlay else None)
    assert SIZES[sizes].run == run_size(cfg)


def test_sizes_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("SYNTHLLM_K8S_SIZES", raising=False)
    assert active_sizes() is SIZES["production"]
    monkeypatch.setenv("SYNTHLLM_K8S_SIZES", "small")
    assert active_sizes() is SIZES["small"]
    monkeypatch.setenv("SYNTHLLM_K8S_SIZES", "huge")
    with pytest.raises(ValueError, match=r"SYNTHLLM_K8S_SIZES must be one of \['production', "):
        active_sizes()


def test_small_cluster_fits_a_spark_job_on_one_two_core_node():
    """A driver and its executors request shares of a core; one GPU task half a core."""
    small = SIZES["small"]
    millicores = int(small.spark.cpu_quantity.removesuffix("m"))
    assert millicores * (1 + small.spark.executors) <= 2000
    assert small.gpu.cpu_quantity == "500m" and small.gpu_pool_slots == 1
    assert {r.cpu_quantity for r in (small.spark, small.table, small.cpu)} == {"250m"}
    production = SIZES["production"]
    assert production.spark.cpu_quantity == "4" and production.gpu.cpu_quantity == "8"


# A cluster of hand-checkable numbers: 10 documents in 4 shards (3 a shard, rounded up),
# 2 s a request, doubled work and a 30 s load, 3 GPU slots.
TINY = Sizes(
    spark=Resources(),
    gpu=Resources(gpu=1),
    table=Resources(),
    cpu=Resources(),
    run=RunSize(
        documents=10, num_shards=4, questions_per_prompt=3, samples_per_question=2, ratings=7
    ),
    engine=Engine(seconds_per_request=2.0, load_s=30, margin=2.0),
    gpu_pool_slots=3,
    fixed_stages=timedelta(hours=1),
)


def test_requests_per_shard_and_timeouts_on_a_tiny_cluster():
    assert TINY.requests_per_shard("concepts") == 3  # ceil(10 / 4) documents
    assert TINY.requests_per_shard("questions") == 3
    assert TINY.requests_per_shard("refine") == 7  # the ratings, in one task
    # Levels 1+2 (and Level 3 walks as many again) x 3 questions x 2 samples per document.
    assert TINY.requests_per_shard("answers") == 2 * 3 * (2 * 3 * 2)
    assert TINY.llm_timeout("concepts") == timedelta(seconds=30 + 2 * 3 * 2)
    assert TINY.llm_timeout("refine") == timedelta(seconds=30 + 2 * 7 * 2)
    assert TINY.llm_timeout("answers") == timedelta(seconds=30 + 2 * 72 * 2)
    # Fractional seconds round up: a timeout is never shorter than the estimate.
    slow_load = Sizes(**{**TINY.__dict__, "engine": Engine(seconds_per_request=0.7, load_s=0.5)})
    assert slow_load.llm_timeout("concepts") == timedelta(seconds=5)  # 0.5 + 2 x 3 x 0.7 = 4.7


def test_waves_and_the_run_timeout_on_a_tiny_cluster():
    assert [TINY.waves(n) for n in (1, 3, 4, 6, 7, 12)] == [1, 1, 2, 2, 3, 4]
    stages = {"concepts": 4, "questions": 12, "answers": 4}
    concepts, answers = TINY.llm_timeout("concepts"), TINY.llm_timeout("answers")
    expected = timedelta(hours=1) + 2 * concepts + 4 * concepts + 2 * answers
    assert TINY.dagrun_timeout(stages) == expected == timedelta(seconds=3600 + 84 + 168 + 636)
    assert TINY.dagrun_timeout({}) == TINY.fixed_stages


def expected_dagrun_timeout(sizes: Sizes) -> timedelta:
    """What synthllm_generate's file computes: the stages in sequence, LLM stages in waves."""
    shards = sizes.run.num_shards
    llm = (
        sizes.waves(shards) * sizes.llm_timeout("concepts")
        + sizes.waves(3 * shards) * sizes.llm_timeout("questions")  # three question levels
        + sizes.waves(shards) * sizes.llm_timeout("answers")
    )
    return sizes.fixed_stages + llm + 2 * sizes.llm_timeout("refine")  # + refine, positives


@pytest.mark.parametrize("sizes", ["production", "small"])
def test_dag_timeouts_follow_the_sizes(parse_dags, monkeypatch, sizes):
    monkeypatch.setenv("SYNTHLLM_K8S_SIZES", sizes)
    dag = parse_dags("local").dags["synthllm_generate"]
    chosen = SIZES[sizes]
    for task_id, llm_task in LLM_TASKS.items():
        assert dag.get_task(task_id).execution_timeout == chosen.llm_timeout(llm_task), task_id
    assert dag.dagrun_timeout == expected_dagrun_timeout(chosen)
    # Every other job keeps its own, shorter limit.
    others = [t for t in dag.tasks if getattr(t, "module", None) and t.task_id not in LLM_TASKS]
    assert len(others) == 19
    for task in others:
        assert task.execution_timeout <= timedelta(hours=2), task.task_id


def test_unknown_sizes_are_an_import_error(parse_dags, monkeypatch):
    monkeypatch.setenv("SYNTHLLM_K8S_SIZES", "huge")
    errors = "\n".join(parse_dags("local").import_errors.values())
    assert "SYNTHLLM_K8S_SIZES must be one of" in errors and "'huge'" in errors


@pytest.mark.parametrize(("sizes", "slots"), [("production", "64"), ("small", "1")])
def test_the_module_prints_the_gpu_pool_a_deployment_creates(sizes, slots):
    """scripts/k8s/e2e.sh creates the Airflow pool from this line."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(DAGS), "SYNTHLLM_K8S_SIZES": sizes}
    done = subprocess.run(
        [sys.executable, "-m", "synthllm_tasks.sizing"],
        env=env,
        cwd=DAGS,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["synthllm_gpu", slots]
    assert str(SIZES[sizes].gpu_pool_slots) == slots
