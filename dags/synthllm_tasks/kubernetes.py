"""Kubernetes objects for the ``kubernetes`` profile: pod operator kwargs and SparkApplications.

Only descriptions are built here (plain dicts and kwargs); the provider's operator classes are
imported by the factory. Settings every pod shares (pipeline env, S3 credentials, security
context, GPU placement) live in the pod templates shipped beside this module
(``pod_templates/``), so the Airflow side needs the DAG folder and nothing else; what varies
per task (image, command, resources) is set here.

Spark jobs run one of two ways (``SYNTHLLM_SPARK_RUNTIME``):

- ``pods`` (the default; any cluster): the task's pod is the Spark driver in client mode, on
  Spark's own Kubernetes scheduler. Its executors are pods it creates from the same image,
  through the ``synthllm-spark`` service account; ``PYSPARK_SUBMIT_ARGS`` carries the
  settings, with the driver's address and pod name from the downward API.
- ``operator``: a ``SparkApplication`` for clusters that run spark-operator.

Deployment settings are read when a DAG file is parsed (the environment only, no I/O), so one
DAG folder serves every cluster.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from synthllm_tasks.spec import JobSpec

TEMPLATES_DIR = Path(__file__).resolve().parent / "pod_templates"
POD_TEMPLATES = {
    "cpu": TEMPLATES_DIR / "python.yaml",
    "gpu": TEMPLATES_DIR / "gpu.yaml",
    "spark": TEMPLATES_DIR / "spark-driver.yaml",
}

NAMESPACE = os.environ.get("SYNTHLLM_K8S_NAMESPACE", "synthllm")
IMAGE_REGISTRY = os.environ.get("SYNTHLLM_IMAGE_REGISTRY", "synthllm")
# The one image tag setting: production sets it to the commit the images were built from
# (scripts/build_images.sh), which the images also carry as SYNTHLLM_CODE_VERSION for
# _manifest.json. The default is the project version, never a floating tag.
IMAGE_TAG_ENV = "SYNTHLLM_IMAGE_TAG"
DEFAULT_IMAGE_TAG = "0.1.0"
# IfNotPresent: a tag names one build (the commit). Never: a cluster without a registry, whose
# node holds every image already (the project's local cluster).
IMAGE_PULL_POLICY = os.environ.get("SYNTHLLM_IMAGE_PULL_POLICY", "IfNotPresent")
SPARK_RUNTIME = os.environ.get("SYNTHLLM_SPARK_RUNTIME", "pods")
SPARK_RUNTIMES = ("pods", "operator")
# "0": the cluster has no GPUs, so GPU jobs run as CPU pods of the Python image (the
# generation engine of the config, e.g. llama.cpp, decides how; configs/cluster-local.toml).
GPUS = os.environ.get("SYNTHLLM_K8S_GPUS", "1") != "0"

# Names of the objects in k8s/ (tests check that these exist there).
PIPELINE_CONFIGMAP = "synthllm-pipeline-env"
SPARK_EXECUTOR_CONFIGMAP = "synthllm-spark-executor"
S3_SECRET = "synthllm-s3-credentials"
LLM_API_SECRET = "synthllm-llm-api"
SPARK_SERVICE_ACCOUNT = "synthllm-spark"
SPARK_EXECUTOR_SERVICE_ACCOUNT = "synthllm-spark-executor"
JOB_SERVICE_ACCOUNT = "synthllm-jobs"

SPARK_VERSION = "4.1.1"
# images/spark/launch.py: runs `<module> <args...>` as __main__, since spark-operator starts a
# file while every job is a module.
SPARK_LAUNCHER = "local:///opt/synthllm/launch.py"
# The jars resolved by jars/pom.xml, baked into the Spark image (images/spark/Dockerfile).
SPARK_EXTRA_JARS = "/opt/synthllm/jars/*"
# Where spark-driver.yaml mounts the executors' pod template (k8s/spark-executor.yaml).
SPARK_EXECUTOR_TEMPLATE = "/etc/synthllm/spark/executor-pod.yaml"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Fixed, so the executors' connections to the driver are known ports of the driver pod.
SPARK_DRIVER_PORT, SPARK_BLOCK_MANAGER_PORT = 7078, 7079

GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

# Pod Security "restricted" for the SparkApplication's pods (the pod templates hold the
# same). uid 1000 is the images' own user (images/python/Dockerfile).
IMAGE_UID = 1000
SPARK_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": IMAGE_UID,
    "runAsGroup": IMAGE_UID,
    "fsGroup": IMAGE_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}
# The root filesystem is read-only: /tmp (Python, py4j, the JVM) is a size-capped emptyDir.
# Spark's shuffle and spill dirs are emptyDirs Spark adds itself (spark-local-dir-*).
SCRATCH_VOLUME = {"name": "scratch", "emptyDir": {"sizeLimit": "20Gi"}}
SCRATCH_MOUNT = {"name": "scratch", "mountPath": "/tmp"}
LABELS = {"app.kubernetes.io/part-of": "synthllm"}


def image_tag() -> str:
    """$SYNTHLLM_IMAGE_TAG (read when the DAG file is parsed: env only), else the default."""
    return os.environ.get(IMAGE_TAG_ENV) or DEFAULT_IMAGE_TAG


def on_gpu(spec: JobSpec) -> bool:
    """True when the job gets a GPU pod: a GPU job on a cluster that has GPUs."""
    return spec.kind == "python_gpu" and GPUS


def image_for(spec: JobSpec) -> str:
    """The pinned image reference of a job, e.g. ``synthllm/vllm:0.1.0``.

    A GPU job on a cluster without GPUs runs in the Python image (its CPU engines).
    """
    kind = spec.image_kind
    if spec.kind == "python_gpu" and not GPUS and spec.image is None:
        kind = "python"
    return f"{IMAGE_REGISTRY}/{kind}:{image_tag()}"


def _resource_requirements(spec: JobSpec):
    from kubernetes.client import models as k8s

    res = spec.resources
    requests = {"cpu": res.cpu_quantity, "memory": res.memory}
    # Memory limit = request: an over-committed node kills the job mid-stage (OOM) otherwise.
    limits = {"memory": res.memory}
    if res.gpu and on_gpu(spec):
        # GPUs are requested through limits only (extended resources cannot overcommit).
        limits["nvidia.com/gpu"] = str(res.gpu)
    return k8s.V1ResourceRequirements(requests=requests, limits=limits)


def _labels(spec: JobSpec) -> dict[str, str]:
    return {**LABELS, "synthllm/job": spec.k8s_name}


def pod_operator_kwargs(spec: JobSpec) -> dict[str, Any]:
    """Keyword arguments of ``KubernetesPodOperator`` for a job's own pod.

    The module and the templated argv go into the container command; ``arguments`` is left
    for the mapped tail (``--shard i/N``), because values expanded from XCom are not templated.
    A Spark job's pod is its driver (``spark_driver_env``).
    """
    from kubernetes.client import models as k8s

    gpu = on_gpu(spec)
    template = "spark" if spec.kind == "spark" else "gpu" if gpu else "cpu"
    kwargs: dict[str, Any] = {
        "name": spec.k8s_name,
        "namespace": NAMESPACE,
        "image": image_for(spec),
        "image_pull_policy": IMAGE_PULL_POLICY,
        "cmds": ["python", "-m", spec.module, *spec.full_argv],
        "arguments": [],
        "pod_template_file": str(POD_TEMPLATES[template]),
        "service_account_name": (
            SPARK_SERVICE_ACCOUNT if spec.kind == "spark" else JOB_SERVICE_ACCOUNT
        ),
        "container_resources": _resource_requirements(spec),
        "labels": _labels(spec),
        # Logs stream into the Airflow task log; the pod is removed once they are read.
        "get_logs": True,
        "on_finish_action": "delete_pod",
        # Image pulls of the multi-GB GPU image take minutes on a fresh node.
        "startup_timeout_seconds": 900 if gpu else 300,
    }
    if spec.kind == "spark":
        kwargs["env_vars"] = spark_driver_env(spec)
    if gpu:
        kwargs["tolerations"] = [k8s.V1Toleration(**t) for t in GPU_TOLERATIONS]
    return kwargs


def spark_submit_args(spec: JobSpec) -> str:
    """``PYSPARK_SUBMIT_ARGS`` of a driver pod: master, executors, identity, addresses.

    ``$(NAME)`` references are expanded by the kubelet from the variables before it in the
    container's env and from the ``kubernetes`` Service's variables, so no value depends on
    cluster DNS.
    """
    res = spec.resources
    heap, overhead = res.spark_heap_and_overhead()
    conf = {
        "spark.kubernetes.namespace": "$(POD_NAMESPACE)",
        "spark.kubernetes.container.image": image_for(spec),
        "spark.kubernetes.container.image.pullPolicy": IMAGE_PULL_POLICY,
        # The owner of the executor pods: deleting the task's pod removes them.
        "spark.kubernetes.driver.pod.name": "$(POD_NAME)",
        "spark.driver.host": "$(POD_IP)",
        "spark.driver.bindAddress": "0.0.0.0",
        "spark.driver.port": str(SPARK_DRIVER_PORT),
        "spark.driver.blockManager.port": str(SPARK_BLOCK_MANAGER_PORT),
        "spark.kubernetes.authenticate.driver.serviceAccountName": SPARK_SERVICE_ACCOUNT,
        "spark.kubernetes.authenticate.executor.serviceAccountName": (
            SPARK_EXECUTOR_SERVICE_ACCOUNT
        ),
        "spark.kubernetes.authenticate.caCertFile": f"{SERVICE_ACCOUNT_DIR}/ca.crt",
        "spark.kubernetes.authenticate.oauthTokenFile": f"{SERVICE_ACCOUNT_DIR}/token",
        "spark.kubernetes.executor.podTemplateFile": SPARK_EXECUTOR_TEMPLATE,
        "spark.kubernetes.executor.podTemplateContainerName": "executor",
        "spark.executor.instances": str(res.executors),
        "spark.executor.cores": str(res.cpu),
        "spark.kubernetes.executor.request.cores": res.cpu_quantity,
        "spark.executor.memory": heap,
        "spark.executor.memoryOverhead": overhead,
        "spark.executor.extraClassPath": SPARK_EXTRA_JARS,
        "spark.kubernetes.executor.deleteOnTermination": "true",
        **{f"spark.kubernetes.executor.label.{k}": v for k, v in _labels(spec).items()},
    }
    args = ["--master", "k8s://https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return " ".join([*args, "pyspark-shell"])


def spark_driver_env(spec: JobSpec) -> list[Any]:
    """The driver pod's env: its own name, IP and namespace, then the Spark settings."""
    from kubernetes.client import models as k8s

    def field(name: str, path: str) -> Any:
        source = k8s.V1EnvVarSource(field_ref=k8s.V1ObjectFieldSelector(field_path=path))
        return k8s.V1EnvVar(name=name, value_from=source)

    return [
        field("POD_NAME", "metadata.name"),
        field("POD_NAMESPACE", "metadata.namespace"),
        field("POD_IP", "status.podIP"),
        k8s.V1EnvVar(name="PYSPARK_SUBMIT_ARGS", value=spark_submit_args(spec)),
    ]


def _spark_role(spec: JobSpec, role: str) -> dict[str, Any]:
    res = spec.resources
    heap, overhead = res.spark_heap_and_overhead()
    env_from = [
        {"configMapRef": {"name": PIPELINE_CONFIGMAP}},
        {"secretRef": {"name": S3_SECRET, "optional": True}},
    ]
    body: dict[str, Any] = {
        "cores": res.cpu,
        "memory": heap,
        "memoryOverhead": overhead,
        "envFrom": env_from,
        "labels": _labels(spec),
        "serviceAccount": (
            SPARK_SERVICE_ACCOUNT if role == "driver" else SPARK_EXECUTOR_SERVICE_ACCOUNT
        ),
        "podSecurityContext": copy.deepcopy(SPARK_POD_SECURITY),
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
        "volumeMounts": [copy.deepcopy(SCRATCH_MOUNT)],
    }
    if role == "executor":
        body["instances"] = res.executors
    return body


def spark_application(spec: JobSpec) -> dict[str, Any]:
    """The ``SparkApplication`` (spark-operator v1beta2) that runs a Spark job module."""
    return {
        "apiVersion": "sparkoperator.k8s.io/v1beta2",
        "kind": "SparkApplication",
        "metadata": {"name": spec.k8s_name, "namespace": NAMESPACE},
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": image_for(spec),
            "imagePullPolicy": IMAGE_PULL_POLICY,
            "mainApplicationFile": SPARK_LAUNCHER,
            "arguments": [spec.module, *spec.full_argv],
            "sparkVersion": SPARK_VERSION,
            # Airflow owns retries (with the try number in argv); the operator must not rerun.
            "restartPolicy": {"type": "Never"},
            "sparkConf": {
                "spark.driver.extraClassPath": SPARK_EXTRA_JARS,
                "spark.executor.extraClassPath": SPARK_EXTRA_JARS,
                "spark.sql.session.timeZone": "UTC",
            },
            "volumes": [copy.deepcopy(SCRATCH_VOLUME)],
            "driver": _spark_role(spec, "driver"),
            "executor": _spark_role(spec, "executor"),
        },
    }
