"""The kubernetes profile's production values reach the pods.

The DAG is parsed with SYNTHLLM_PROFILE=kubernetes; the shard count comes from
configs/kubernetes.toml (16) through ``shard_count`` into the prepare pods' argv and the
shard mapping, and the pods' environment (the pipeline ConfigMap) makes every job load the
kubernetes profile.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from k8s_yaml import load_yaml_docs
from kubernetes.client import ApiClient

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


@pytest.fixture
def pod_env(monkeypatch):
    """The environment a job pod gets from the pipeline ConfigMap (envFrom)."""
    (cm,) = load_yaml_docs(REPO / "k8s/configmap-pipeline-env.yaml")
    for key, value in cm["data"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SYNTHLLM_REPO", raising=False)  # the real jobs, not a stub repo
    return cm


def render_pod(task, count, tail=None):
    op = task.unmap({"arguments": tail}) if tail else task
    op.render_template_fields(
        {
            "params": {"snapshot": None, "num_shards": None, "config": ""},
            "ds": "2026-11-01",
            "run_id": "scheduled__2026-11-01T00:00:00+00:00",
            "ti": SimpleNamespace(
                try_number=1, xcom_pull=lambda task_ids: {"shard_count": count}[task_ids]
            ),
        }
    )
    return ApiClient().sanitize_for_serialization(op.build_pod_request_obj(dry_run=True))


def test_jobs_in_the_pods_load_the_kubernetes_profile(pod_env):
    from jobs.config import load_config

    assert pod_env["data"]["SYNTHLLM_PROFILE"] == "kubernetes"
    cfg = load_config(None, "", [])  # what jobs/cli.py does with an unset --profile
    assert cfg.profile == "kubernetes"
    assert (cfg.generation.engine, cfg.generation.num_shards) == ("vllm", 16)
    assert cfg.storage.root_uri == "s3://synthllm-data/pipeline"
    assert cfg.generation.max_error_share == 0.1


def test_config_shard_count_reaches_the_prepare_pods_and_the_mapping(
    k8s_dag, pod_env, validate_k8s
):
    count_task = k8s_dag.get_task("shard_count")
    assert count_task.op_kwargs["profile"] == "kubernetes"  # fixed at parse time
    count = count_task.python_callable("", "", count_task.op_kwargs["profile"])
    assert count == 16
    assert k8s_dag.get_task("shards").python_callable(count) == [f"{i}/16" for i in range(16)]
    tails = k8s_dag.get_task("level_shards").python_callable(count)
    assert len(tails) == 3 * 16

    pod = render_pod(k8s_dag.get_task("questions_prepare"), count)
    validate_k8s(pod)
    (container,) = pod["spec"]["containers"]
    assert container["command"][-2:] == ["--num-shards", "16"]
    refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
    assert pod_env["metadata"]["name"] in refs  # SYNTHLLM_PROFILE=kubernetes in the pod

    pod = render_pod(k8s_dag.get_task("questions_generate"), count, tail=tails[-1])
    validate_k8s(pod)
    (container,) = pod["spec"]["containers"]
    assert container["command"][2] == "jobs.llm.run_shard"
    assert container["args"] == ["--task", "questions_l3", "--shard", "15/16"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod_env["metadata"]["name"] in [
        next(iter(ref.values()))["name"] for ref in container["envFrom"]
    ]


def test_a_set_param_wins_over_the_profile(k8s_dag, pod_env):
    count_task = k8s_dag.get_task("shard_count")
    assert count_task.python_callable("4", "", "kubernetes") == 4
    pod = render_pod(k8s_dag.get_task("answers_prepare"), 4)
    assert pod["spec"]["containers"][0]["command"][-2:] == ["--num-shards", "4"]
