"""One DAG folder, several kinds of cluster: the deployment settings read at parse time.

``SYNTHLLM_K8S_GPUS=0`` (a cluster without GPUs: GPU jobs become CPU pods of the Python
image), ``SYNTHLLM_K8S_SIZES`` (production or small requests), the GPU pool, and the
defaults a DAG folder deployed without any setting gets.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubernetes.client import ApiClient
from restricted import restricted_violations

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "dags/synthllm_tasks/pod_templates"
MAPPED_GPU_TASKS = {"concepts_generate", "questions_generate", "answers_generate"}
GPU_TASKS = {"write_positives", "refine"} | MAPPED_GPU_TASKS


def render(task, shard="0/2") -> dict:
    op = task.unmap({"arguments": ["--shard", shard]}) if task.task_id in MAPPED_GPU_TASKS else task
    op.render_template_fields(
        {
            "params": {"snapshot": None, "num_shards": 2, "config": ""},
            "ds": "2026-11-01",
            "run_id": "manual__2026-11-01T00:00:00+00:00",
            "ti": SimpleNamespace(try_number=1, xcom_pull=lambda task_ids: 2),
        }
    )
    pod = ApiClient().sanitize_for_serialization(op.build_pod_request_obj(dry_run=True))
    return pod, op


def pool_of(task) -> str:
    partial = getattr(task, "partial_kwargs", None)
    return partial.get("pool", task.pool) if partial is not None else task.pool


@pytest.mark.parametrize("task_id", sorted(GPU_TASKS))
def test_without_gpus_gpu_jobs_run_as_cpu_pods_of_the_python_image(
    parse_k8s_dag, validate_k8s, task_id
):
    dag = parse_k8s_dag(constants={"GPUS": False})
    pod, op = render(dag.get_task(task_id))
    validate_k8s(pod)
    assert restricted_violations(pod["spec"]) == []
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "synthllm/python:0.1.0"
    assert container["command"][:3] == ["python", "-m", op.cmds[2]]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert not pod["spec"].get("tolerations")
    assert not pod["spec"].get("nodeSelector")
    assert Path(op.pod_template_file) == TEMPLATES / "python.yaml"
    assert {v["name"] for v in pod["spec"]["volumes"]} == {"scratch"}  # no models PVC, no shm
    assert op.startup_timeout_seconds == 300  # no multi-GB GPU image to pull
    # Still one LLM job at a time per lent slot: the pool does not depend on the hardware.
    assert op.pool == "synthllm_gpu"


def test_with_gpus_the_same_tasks_get_a_gpu(parse_k8s_dag):
    """The other side of the setting, so the test above can fail."""
    dag = parse_k8s_dag(constants={"GPUS": True})
    pod, op = render(dag.get_task("refine"))
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "synthllm/vllm:0.1.0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert Path(op.pod_template_file) == TEMPLATES / "gpu.yaml"
    assert op.startup_timeout_seconds == 900


def test_small_sizes_request_shares_of_a_core(parse_k8s_dag, validate_k8s):
    """The project's local cluster: small sizes, no GPUs (scripts/k8s/e2e.sh sets both)."""
    from synthllm_tasks.sizing import SIZES

    small = SIZES["small"]
    dag = parse_k8s_dag(constants={"GPUS": False}, env={"SYNTHLLM_K8S_SIZES": "small"})
    expected = {
        "report": small.cpu,
        "shard_count": small.cpu,
        "answers_collect": small.table,
        "validate_qa": small.table,
        "refine": small.gpu,
        "answers_generate": small.gpu,
        "ingest": small.spark,
    }
    for task_id, size in expected.items():
        pod, _ = render(dag.get_task(task_id))
        validate_k8s(pod)
        container = pod["spec"]["containers"][0]
        requests = container["resources"]["requests"]
        assert requests == {"cpu": size.cpu_quantity, "memory": size.memory}, task_id
        assert requests["cpu"] in {"250m", "500m"}, task_id
        assert container["resources"]["limits"] == {"memory": size.memory}, task_id
    # The Spark driver's executors: two of a quarter core, 4Gi split into heap and overhead.
    pod, _ = render(dag.get_task("ingest"))
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    args = shlex.split(env["PYSPARK_SUBMIT_ARGS"])
    conf = dict(args[i + 1].split("=", 1) for i, arg in enumerate(args) if arg == "--conf")
    assert conf["spark.executor.instances"] == "2"
    assert conf["spark.executor.cores"] == "1"
    assert conf["spark.kubernetes.executor.request.cores"] == "250m"
    assert (conf["spark.executor.memory"], conf["spark.executor.memoryOverhead"]) == (
        "2457m",
        "1639m",
    )
    # And the LLM stages' limits are the small run's.
    assert dag.get_task("refine").execution_timeout == small.llm_timeout("refine")


def test_production_sizes_are_the_default(k8s_dag):
    from synthllm_tasks.sizing import SIZES

    pod, _ = render(k8s_dag.get_task("report"))
    requests = pod["spec"]["containers"][0]["resources"]["requests"]
    assert requests == {"cpu": "1", "memory": SIZES["production"].cpu.memory}


def test_gpu_tasks_and_only_they_take_the_gpu_pool(k8s_dag):
    pools = {t.task_id: pool_of(t) for t in k8s_dag.tasks}
    assert {t for t, pool in pools.items() if pool == "synthllm_gpu"} == GPU_TASKS
    assert set(pools.values()) == {"synthllm_gpu", "default_pool"}


def test_deployment_settings_default_to_a_production_cluster():
    """What a DAG folder deployed without any SYNTHLLM_* setting builds (read at import)."""
    probe = (
        "from synthllm_tasks import kubernetes as k, sizing as s; "
        "print(k.NAMESPACE, k.IMAGE_REGISTRY, k.image_tag(), k.IMAGE_PULL_POLICY, "
        "k.SPARK_RUNTIME, k.GPUS, s.GPU_POOL, s.active_sizes() is s.SIZES['production'])"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "dags")}

    def settings(**extra: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", probe],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.split()

    defaults = ["synthllm", "synthllm", "0.1.0", "IfNotPresent", "pods", "True", "synthllm_gpu"]
    assert settings() == [*defaults, "True"]
    # The project's local cluster: no registry (its node holds the images), no GPUs.
    local = settings(
        SYNTHLLM_IMAGE_PULL_POLICY="Never",
        SYNTHLLM_K8S_GPUS="0",
        SYNTHLLM_K8S_SIZES="small",
        SYNTHLLM_IMAGE_TAG="3f2c1a9b8e7d",
        SYNTHLLM_SPARK_RUNTIME="operator",
    )
    assert local == [
        "synthllm",
        "synthllm",
        "3f2c1a9b8e7d",
        "Never",
        "operator",
        "False",
        "synthllm_gpu",
        "False",
    ]
