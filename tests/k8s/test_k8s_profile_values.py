"""The kubernetes profile's production values reach the pods.

The DAG is parsed with SYNTHLLM_PROFILE=kubernetes; the shard count comes from
configs/kubernetes.toml (256): ``shard_count``'s pod runs ``jobs.plan``, here with the
command the pod gets and the environment the pipeline ConfigMap gives it, and its value
reaches the prepare pods' argv and the shard mapping. That environment makes every job load
the kubernetes profile.
"""

from __future__ import annotations

import copy
import json
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


CONFIGURED_SHARDS = 256  # configs/kubernetes.toml


def render_pod(task, count, tail=None, num_shards=None):
    if tail:
        op = task.unmap({"arguments": tail})
    else:  # a copy: the module's DAG serves every test, its templates must stay templates
        op = copy.copy(task)
        op.cmds = list(task.cmds)
    op.render_template_fields(
        {
            "params": {"snapshot": None, "num_shards": num_shards, "config": ""},
            "ds": "2026-11-01",
            "run_id": "scheduled__2026-11-01T00:00:00+00:00",
            "ti": SimpleNamespace(
                try_number=1, xcom_pull=lambda task_ids: {"shard_count": count}[task_ids]
            ),
        }
    )
    return ApiClient().sanitize_for_serialization(op.build_pod_request_obj(dry_run=True))


def run_shard_count_pod(task, tmp_path, num_shards=None) -> int:
    """Run the command shard_count's pod gets, in-process: its XCom (the job's value).

    Only the XCom volume's path moves to ``tmp_path``; the environment is the pod's
    (``pod_env``).
    """
    from jobs import plan

    pod = render_pod(task, None, num_shards=num_shards)
    command = pod["spec"]["containers"][0]["command"]
    assert command[:3] == ["python", "-m", "jobs.plan"]
    argv = command[3:]
    assert argv[-2:] == ["--result-file", "/airflow/xcom/return.json"]
    result = tmp_path / "return.json"
    assert plan.main([*argv[:-1], str(result)]) == 0
    return json.loads(result.read_text())


def test_jobs_in_the_pods_load_the_kubernetes_profile(pod_env):
    from jobs.config import load_config

    assert pod_env["data"]["SYNTHLLM_PROFILE"] == "kubernetes"
    cfg = load_config(None, "", [])  # what jobs/cli.py does with an unset --profile
    assert cfg.profile == "kubernetes"
    assert (cfg.generation.engine, cfg.generation.num_shards) == ("vllm", CONFIGURED_SHARDS)
    assert cfg.storage.root_uri == "s3://synthllm-data/pipeline"
    assert cfg.generation.max_error_share == 0.1


def test_config_shard_count_reaches_the_prepare_pods_and_the_mapping(
    k8s_dag, pod_env, validate_k8s, tmp_path
):
    count = run_shard_count_pod(k8s_dag.get_task("shard_count"), tmp_path)
    assert count == CONFIGURED_SHARDS
    shard_ids = k8s_dag.get_task("shards").python_callable(count)
    assert shard_ids == [f"{i}/{count}" for i in range(count)]
    tails = k8s_dag.get_task("level_shards").python_callable(count)
    assert len(tails) == 3 * count

    pod = render_pod(k8s_dag.get_task("questions_prepare"), count)
    validate_k8s(pod)
    (container,) = pod["spec"]["containers"]
    assert container["command"][-2:] == ["--num-shards", str(count)]
    refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
    assert pod_env["metadata"]["name"] in refs  # SYNTHLLM_PROFILE=kubernetes in the pod

    pod = render_pod(k8s_dag.get_task("questions_generate"), count, tail=tails[-1])
    validate_k8s(pod)
    (container,) = pod["spec"]["containers"]
    assert container["command"][2] == "jobs.llm.run_shard"
    assert container["args"] == ["--task", "questions_l3", "--shard", f"{count - 1}/{count}"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod_env["metadata"]["name"] in [
        next(iter(ref.values()))["name"] for ref in container["envFrom"]
    ]


def test_a_set_param_wins_over_the_profile(k8s_dag, pod_env, tmp_path):
    count = run_shard_count_pod(k8s_dag.get_task("shard_count"), tmp_path, num_shards=4)
    assert count == 4
    pod = render_pod(k8s_dag.get_task("answers_prepare"), count)
    assert pod["spec"]["containers"][0]["command"][-2:] == ["--num-shards", "4"]


@pytest.mark.parametrize("overlay", [None, "configs/cluster-local.toml"])
def test_the_profile_writes_only_under_tmp_in_a_pod(overlay):
    """The pods' root filesystem is read-only; /tmp (an emptyDir) is the one writable path."""
    from jobs.config import REPO_ROOT, load_config

    cfg = load_config("kubernetes", str(REPO_ROOT / overlay) if overlay else None)
    assert cfg.train.cache_dir.startswith("/tmp/")
    assert cfg.storage.root_uri.startswith("s3://")
    local = load_config("local")
    assert not local.train.cache_dir.startswith("/tmp/")  # the check can tell them apart
