"""Spark jobs in the default runtime: the task's pod is the client-mode driver.

Every Spark task of synthllm_generate renders to a driver pod that the namespace admits, whose
``PYSPARK_SUBMIT_ARGS`` start executors Spark can create: the spark image, the executor pod
template that spark-driver.yaml mounts from k8s/spark-executor.yaml, an executor identity
without any API access, and the task's sizes.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pytest
import yaml
from dag_tasks import SPARK_TASKS
from kubernetes.client import ApiClient
from restricted import restricted_violations

REPO = Path(__file__).resolve().parents[2]
# Defined by the kubelet for every pod: the API server's in-cluster address.
SERVICE_ENV = {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"}
EXPANSION = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def render(task) -> dict:
    task.render_template_fields(
        {
            "params": {"snapshot": None, "num_shards": 2, "config": ""},
            "ds": "2026-11-01",
            "run_id": "scheduled__2026-11-01T00:00:00+00:00",
            "ti": SimpleNamespace(try_number=1, xcom_pull=lambda task_ids: 2),
        }
    )
    return ApiClient().sanitize_for_serialization(task.build_pod_request_obj(dry_run=True))


def submit_conf(args: list[str]) -> dict[str, str]:
    """``--conf key=value`` pairs of spark-submit arguments (each key once)."""
    pairs = [args[i + 1].split("=", 1) for i, arg in enumerate(args) if arg == "--conf"]
    conf = dict(pairs)
    assert len(conf) == len(pairs), "a --conf key given twice"
    return conf


def executor_configmap(k8s_manifests) -> dict:
    (cm,) = k8s_manifests["spark-executor.yaml"]
    return cm


@pytest.fixture(scope="module")
def driver_pods(k8s_dag):
    return {task_id: render(k8s_dag.get_task(task_id)) for task_id in SPARK_TASKS}


@pytest.mark.parametrize("task_id", sorted(SPARK_TASKS))
def test_driver_pod_validates_and_is_restricted(driver_pods, validate_k8s, task_id):
    from synthllm_tasks import kubernetes as kube

    pod = driver_pods[task_id]
    validate_k8s(pod)
    assert restricted_violations(pod["spec"]) == []
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["name"] == "base"
    assert container["image"] == "synthllm/spark:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"
    # The job runs in the pod itself (client mode), like every other job.
    assert container["command"][:3] == ["python", "-m", SPARK_TASKS[task_id]]
    assert container["args"] == []
    # The driver creates its executors through the API: its own account, with its token.
    assert spec["serviceAccountName"] == kube.SPARK_SERVICE_ACCOUNT == "synthllm-spark"
    assert spec["automountServiceAccountToken"] is True
    assert spec["securityContext"]["runAsUser"] == kube.IMAGE_UID
    assert {"name": "scratch", "mountPath": "/tmp"} in container["volumeMounts"]
    refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
    assert refs == ["synthllm-pipeline-env", "synthllm-s3-credentials"]
    assert not spec.get("tolerations") and "nvidia.com/gpu" not in container["resources"]["limits"]
    assert pod["metadata"]["labels"]["synthllm/job"] == task_id.replace("_", "-")


@pytest.mark.parametrize("task_id", sorted(SPARK_TASKS))
def test_driver_env_gives_its_address_before_the_spark_settings(driver_pods, task_id):
    (container,) = driver_pods[task_id]["spec"]["containers"]
    env = container["env"]
    assert [e["name"] for e in env] == [
        "POD_NAME",
        "POD_NAMESPACE",
        "POD_IP",
        "PYSPARK_SUBMIT_ARGS",
    ]
    fields = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in env[:3]}
    assert fields == {
        "POD_NAME": "metadata.name",
        "POD_NAMESPACE": "metadata.namespace",
        "POD_IP": "status.podIP",
    }
    # The kubelet expands $(NAME) only from variables defined before it (or the Service's):
    # anything else would reach Spark as the literal text.
    for name in EXPANSION.findall(env[3]["value"]):
        assert name in {"POD_NAME", "POD_NAMESPACE", "POD_IP"} | SERVICE_ENV, name


@pytest.mark.parametrize("task_id", sorted(SPARK_TASKS))
def test_submit_args_start_executors_spark_can_create(
    driver_pods, k8s_manifests, pod_templates, task_id
):
    from synthllm_tasks.sizing import SIZES

    pod = driver_pods[task_id]
    (container,) = pod["spec"]["containers"]
    args = shlex.split(container["env"][3]["value"])  # as pyspark splits it
    assert args[:2] == [
        "--master",
        "k8s://https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)",
    ]
    assert args[-1] == "pyspark-shell"  # what pyspark's gateway launch expects last
    conf = submit_conf(args[2:-1])
    assert set(args[2:-1][::2]) == {"--conf"}
    # Executors run the driver's own image, on the same pull policy.
    assert conf["spark.kubernetes.container.image"] == container["image"]
    assert conf["spark.kubernetes.container.image.pullPolicy"] == container["imagePullPolicy"]
    assert conf["spark.kubernetes.namespace"] == "$(POD_NAMESPACE)"
    assert conf["spark.kubernetes.driver.pod.name"] == "$(POD_NAME)"  # owner: deleted with it
    assert conf["spark.driver.host"] == "$(POD_IP)"
    assert conf["spark.kubernetes.authenticate.driver.serviceAccountName"] == "synthllm-spark"
    executor_account = conf["spark.kubernetes.authenticate.executor.serviceAccountName"]
    assert executor_account == "synthllm-spark-executor"
    token_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert conf["spark.kubernetes.authenticate.oauthTokenFile"] == f"{token_dir}/token"
    assert conf["spark.kubernetes.authenticate.caCertFile"] == f"{token_dir}/ca.crt"

    # The executor pod template: the file spark-driver.yaml mounts from the ConfigMap.
    cm = executor_configmap(k8s_manifests)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if "configMap" in volumes[m["name"]]]
    assert mount["readOnly"] is True
    assert volumes[mount["name"]]["configMap"]["name"] == cm["metadata"]["name"]
    (key,) = cm["data"]
    template = conf["spark.kubernetes.executor.podTemplateFile"]
    assert PurePosixPath(template) == PurePosixPath(mount["mountPath"]) / key
    executor = yaml.safe_load(cm["data"][key])
    (executor_container,) = executor["spec"]["containers"]
    assert conf["spark.kubernetes.executor.podTemplateContainerName"] == executor_container["name"]
    # The template's service account and the one Spark sets agree.
    assert executor["spec"]["serviceAccountName"] == executor_account
    # Both volumes come from the driver template the task names.
    for volume in pod_templates["spark"]["spec"]["volumes"]:
        assert volume in pod["spec"]["volumes"]

    # Executor sizes: the task's Resources (the production Spark size here).
    resources = SIZES["production"].spark
    heap, overhead = resources.spark_heap_and_overhead()
    assert conf["spark.executor.instances"] == str(resources.executors) == "4"
    assert conf["spark.executor.cores"] == str(resources.cpu) == "4"
    assert conf["spark.kubernetes.executor.request.cores"] == resources.cpu_quantity
    assert (conf["spark.executor.memory"], conf["spark.executor.memoryOverhead"]) == (
        heap,
        overhead,
    )
    assert conf["spark.executor.extraClassPath"] == "/opt/synthllm/jars/*"
    assert "spark.jars" not in conf  # executors would copy them into a read-only workdir
    assert conf["spark.kubernetes.executor.label.synthllm/job"] == task_id.replace("_", "-")
    # The driver itself is sized like an executor, through the pod.
    requests = container["resources"]["requests"]
    assert requests == {"cpu": resources.cpu_quantity, "memory": resources.memory}


def test_executor_template_is_restricted_and_has_no_api_access(k8s_manifests, validate_k8s):
    cm = executor_configmap(k8s_manifests)
    validate_k8s(cm)
    (text,) = cm["data"].values()
    executor = yaml.safe_load(text)
    validate_k8s(executor)  # a Pod, as Spark reads it (the image comes from Spark)
    spec = executor["spec"]
    assert restricted_violations(spec) == []
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsUser"] == 1000
    (container,) = spec["containers"]
    refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
    assert refs == ["synthllm-pipeline-env", "synthllm-s3-credentials"]
    assert {"name": "scratch", "mountPath": "/tmp"} in container["volumeMounts"]

    account = spec["serviceAccountName"]
    docs = [d for ds in k8s_manifests.values() for d in ds]
    (sa,) = [d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == account]
    assert sa["automountServiceAccountToken"] is False
    bound = {
        s["name"]
        for d in docs
        if d["kind"] in {"RoleBinding", "ClusterRoleBinding"}
        for s in d["subjects"]
        if s["kind"] == "ServiceAccount"
    }
    assert account not in bound
    assert "synthllm-spark" in bound  # the check sees bindings: the driver's account has one


def test_driver_role_lets_spark_manage_its_executors(k8s_manifests):
    """What Spark's Kubernetes scheduler calls: executor pods, their services and config maps."""
    docs = [d for ds in k8s_manifests.values() for d in ds]
    (binding,) = [
        d
        for d in docs
        if d["kind"] == "RoleBinding" and any(s["name"] == "synthllm-spark" for s in d["subjects"])
    ]
    (role,) = [
        d
        for d in docs
        if d["kind"] == "Role" and d["metadata"]["name"] == binding["roleRef"]["name"]
    ]
    allowed = {
        (resource, verb)
        for rule in role["rules"]
        if rule["apiGroups"] == [""]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for resource in ("pods", "services", "configmaps"):
        for verb in ("create", "get", "list", "watch", "delete", "deletecollection"):
            assert (resource, verb) in allowed, (resource, verb)
    assert not any(rule["apiGroups"] != [""] for rule in role["rules"])  # core objects only


def test_only_spark_drivers_get_the_account_that_may_create_pods(k8s_dag):
    for task in k8s_dag.tasks:
        account = getattr(task, "service_account_name", None) or getattr(
            task, "partial_kwargs", {}
        ).get("service_account_name")
        if account is None:
            continue  # the TaskFlow helpers run on the worker
        expected = "synthllm-spark" if task.task_id in SPARK_TASKS else "synthllm-jobs"
        assert account == expected, task.task_id
