"""JobSpec validation and the factory's choice of operator per profile and kind."""

from __future__ import annotations

import pytest
from airflow.sdk import DAG
from airflow.sdk.definitions.mappedoperator import MappedOperator
from synthllm_tasks import RUN_ARGV, JobSpec, Resources, active_profile, job_task, shard_argv
from synthllm_tasks.local import LocalJobOperator

GPU_SPEC = JobSpec(
    "gen",
    "jobs.llm.run_shard",
    ("--task", "answers"),
    kind="python_gpu",
    resources=Resources(gpu=1),
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task_id": "Bad-Id", "module": "jobs.x.y"}, "lower snake case"),
        ({"task_id": "t", "module": "os.path"}, "jobs.* module"),
        ({"task_id": "t", "module": "jobs.llm.run_shard", "kind": "python_gpu"}, "gpu >= 1"),
    ],
)
def test_job_spec_rejects_bad_descriptions(kwargs, message):
    with pytest.raises(ValueError, match=message):
        JobSpec(**kwargs)


def test_resources_validate_and_convert_memory():
    assert Resources(memory="16Gi").spark_memory() == "16g"
    assert Resources(memory="512Mi").spark_memory() == "512m"
    with pytest.raises(ValueError, match="memory must look like"):
        Resources(memory="4g")
    with pytest.raises(ValueError, match="out of range"):
        Resources(cpu=0)


def test_spec_derives_argv_image_and_k8s_name():
    assert GPU_SPEC.full_argv == [*RUN_ARGV, "--task", "answers"]
    assert GPU_SPEC.image_kind == "vllm"
    assert JobSpec("a_b", "jobs.x.y", kind="spark").image_kind == "spark"
    assert JobSpec("a_b", "jobs.x.y", image="vllm").image_kind == "vllm"
    assert JobSpec("validate_qa", "jobs.validate.validate").k8s_name == "validate-qa"
    assert shard_argv("3/16") == ["--shard", "3/16"]


def test_profile_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("SYNTHLLM_PROFILE", raising=False)
    assert active_profile() == "local"
    monkeypatch.setenv("SYNTHLLM_PROFILE", "kubernetes")
    assert active_profile() == "kubernetes"
    with DAG("probe_env_profile", schedule=None):
        assert type(job_task(JobSpec("t", "jobs.x.y"))).__name__ == "JobPodOperator"


@pytest.mark.parametrize(
    ("profile", "kind", "expected"),
    [
        ("local", "spark", "LocalJobOperator"),
        ("local", "python", "LocalJobOperator"),
        ("kubernetes", "spark", "SparkJobOperator"),
        ("kubernetes", "python", "JobPodOperator"),
    ],
)
def test_operator_per_profile_and_kind(profile, kind, expected):
    with DAG(f"probe_{profile}_{kind}", schedule=None):
        op = job_task(JobSpec("t", "jobs.x.y", kind=kind), profile)
    assert type(op).__name__ == expected


def test_local_gpu_task_is_mapped_and_serialised():
    with DAG("probe_local_gpu", schedule=None):
        mapped = job_task(GPU_SPEC, "local", expand_argv=[["--shard", "0/2"], ["--shard", "1/2"]])
    assert isinstance(mapped, MappedOperator)
    assert mapped.partial_kwargs["max_active_tis_per_dagrun"] == 1
    assert mapped.partial_kwargs["argv"] == GPU_SPEC.full_argv
    op = mapped.unmap({"extra_argv": ["--shard", "1/2"]})
    assert isinstance(op, LocalJobOperator)
    assert op.command()[-4:] == ["--task", "answers", "--shard", "1/2"]


def test_factory_refuses_unknown_profile_and_mapped_spark():
    with DAG("probe_refusals", schedule=None):
        with pytest.raises(ValueError, match="profile must be one of"):
            job_task(JobSpec("t", "jobs.x.y"), "cloud")
        with pytest.raises(ValueError, match="mapped Spark jobs are not supported"):
            job_task(JobSpec("t", "jobs.x.y", kind="spark"), "kubernetes", expand_argv=[["a"]])


def test_extra_operator_kwargs_pass_through():
    with DAG("probe_kwargs", schedule=None):
        op = job_task(JobSpec("t", "jobs.x.y"), "local", retries=7)
    assert op.retries == 7
    assert op.execution_timeout == JobSpec("t", "jobs.x.y").timeout


def test_retries_back_off_exponentially_up_to_a_cap():
    """Airflow 3 reads retry_exponential_backoff as a multiplier: True (1) would mean none."""
    from datetime import timedelta

    from synthllm_tasks import DEFAULT_ARGS

    with DAG("probe_retry_policy", schedule=None, default_args=DEFAULT_ARGS):
        for profile in ("local", "kubernetes"):
            op = job_task(JobSpec(f"t_{profile}", "jobs.x.y"), profile)
            assert op.retries == 3
            assert op.retry_exponential_backoff == 2.0
            assert op.retry_delay == timedelta(minutes=2)
            assert op.max_retry_delay == timedelta(minutes=30)
