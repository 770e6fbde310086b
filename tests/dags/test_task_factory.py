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
    assert Resources(memory="2Gi").mebibytes() == 2048
    with pytest.raises(ValueError, match="memory must look like"):
        Resources(memory="4g")
    with pytest.raises(ValueError, match="out of range"):
        Resources(cpu=0)


def test_cpu_request_is_whole_cores_unless_a_share_is_asked_for():
    assert Resources(cpu=4).cpu_quantity == "4"
    assert Resources(cpu=1, cpu_request="250m").cpu_quantity == "250m"
    assert Resources(cpu=2, cpu_request="1.5").cpu_quantity == "1.5"
    for bad in ("250 m", "0.5 cores", "1Gi", ""):
        with pytest.raises(ValueError, match="cpu_request must look like"):
            Resources(cpu_request=bad)


@pytest.mark.parametrize(
    ("memory", "heap", "overhead"),
    [("16Gi", "9830m", "6554m"), ("2Gi", "1228m", "820m"), ("1000Mi", "600m", "400m")],
)
def test_spark_memory_splits_into_heap_and_overhead(memory, heap, overhead):
    """60% JVM heap, the rest overhead (the Python workers); the two add up to the pod."""
    assert Resources(memory=memory).spark_heap_and_overhead() == (heap, overhead)
    total = int(heap[:-1]) + int(overhead[:-1])
    assert total == Resources(memory=memory).mebibytes()


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
    ("profile", "kind", "runtime", "expected"),
    [
        ("local", "spark", "pods", "LocalJobOperator"),
        ("local", "spark", "operator", "LocalJobOperator"),
        ("local", "python", "pods", "LocalJobOperator"),
        # The default: the task's pod is the Spark driver.
        ("kubernetes", "spark", "pods", "JobPodOperator"),
        ("kubernetes", "spark", "operator", "SparkJobOperator"),
        ("kubernetes", "python", "pods", "JobPodOperator"),
        ("kubernetes", "python", "operator", "JobPodOperator"),
        ("kubernetes", "python_gpu", "operator", "JobPodOperator"),
    ],
)
def test_operator_per_profile_kind_and_spark_runtime(monkeypatch, profile, kind, runtime, expected):
    from synthllm_tasks import kubernetes as kube

    monkeypatch.setattr(kube, "SPARK_RUNTIME", runtime)
    resources = Resources(gpu=1 if kind == "python_gpu" else 0)
    with DAG(f"probe_{profile}_{kind}_{runtime}", schedule=None):
        op = job_task(JobSpec("t", "jobs.x.y", kind=kind, resources=resources), profile)
    assert type(op).__name__ == expected


def test_spark_runs_in_pods_by_default_and_rejects_unknown_runtimes(monkeypatch):
    from synthllm_tasks import kubernetes as kube

    assert kube.SPARK_RUNTIME == "pods"  # tests/dags/conftest.py clears the setting
    assert kube.SPARK_RUNTIMES == ("pods", "operator")
    monkeypatch.setattr(kube, "SPARK_RUNTIME", "spark-submit")
    with DAG("probe_bad_runtime", schedule=None):
        with pytest.raises(ValueError, match="SYNTHLLM_SPARK_RUNTIME must be one of"):
            job_task(JobSpec("t", "jobs.x.y", kind="spark"), "kubernetes")
        # Only Spark jobs ask which runtime: the others build as before.
        assert type(job_task(JobSpec("u", "jobs.x.y"), "kubernetes")).__name__ == "JobPodOperator"


def test_a_job_that_returns_a_value_gets_a_result_file_in_both_profiles():
    from synthllm_tasks.factory import XCOM_RESULT_FILE

    plan = JobSpec("plan", "jobs.plan", returns_value=True)
    with DAG("probe_returns_value_local", schedule=None):
        local = job_task(plan, "local")
        local_plain = job_task(JobSpec("t", "jobs.x.y"), "local")
    with DAG("probe_returns_value_kubernetes", schedule=None):
        pod = job_task(plan, "kubernetes")
        pod_plain = job_task(JobSpec("t", "jobs.x.y"), "kubernetes")
    assert local.returns_value is True and local_plain.returns_value is False
    assert local.command("/tmp/r.json")[-2:] == ["--result-file", "/tmp/r.json"]
    assert "--result-file" not in local.command()
    assert XCOM_RESULT_FILE == "/airflow/xcom/return.json"  # where the provider's sidecar reads
    assert pod.do_xcom_push is True
    assert pod.cmds == [
        "python",
        "-m",
        "jobs.plan",
        *plan.full_argv,
        "--result-file",
        XCOM_RESULT_FILE,
    ]
    assert pod_plain.do_xcom_push is False
    assert "--result-file" not in pod_plain.cmds


def test_gpu_jobs_take_the_gpu_pool_in_kubernetes_only():
    from synthllm_tasks.sizing import GPU_POOL

    assert GPU_POOL == "synthllm_gpu"
    with DAG("probe_gpu_pool", schedule=None):
        pod = job_task(GPU_SPEC, "kubernetes")
        mapped = job_task(
            GPU_SPEC, "kubernetes", task_id="mapped", expand_argv=[["--shard", "0/2"]]
        )
        other_pool = job_task(GPU_SPEC, "kubernetes", task_id="other", pool="big_gpus")
        cpu = job_task(JobSpec("cpu", "jobs.x.y"), "kubernetes")
        spark = job_task(JobSpec("spark", "jobs.x.y", kind="spark"), "kubernetes")
    with DAG("probe_gpu_pool_local", schedule=None):
        local = job_task(GPU_SPEC, "local")
    assert pod.pool == GPU_POOL
    assert mapped.partial_kwargs["pool"] == GPU_POOL
    assert cpu.pool == spark.pool == local.pool == "default_pool"
    assert other_pool.pool == "big_gpus"  # a caller's pool wins (setdefault)


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
