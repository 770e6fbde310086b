"""Kubernetes objects for the ``kubernetes`` profile: pod operator kwargs and SparkApplications.

Only descriptions are built here (plain dicts and kwargs); the provider's operator classes are
imported by the factory. Settings that every pod shares (pipeline env, S3 credentials,
security context, GPU placement) live in the pod templates under ``k8s/``; what varies per
task (image, command, resources) is set here. SparkApplications have no pod template, so their
security context and scratch volume (the same as the templates') are set here.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from synthllm_tasks.spec import JobSpec

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "k8s"
POD_TEMPLATES = {"cpu": K8S_DIR / "pod-python.yaml", "gpu": K8S_DIR / "pod-gpu.yaml"}

# Read at parse time (environment only, no I/O) so one DAG file serves every cluster.
NAMESPACE = os.environ.get("SYNTHLLM_K8S_NAMESPACE", "synthllm")
IMAGE_REGISTRY = os.environ.get("SYNTHLLM_IMAGE_REGISTRY", "synthllm")
# The one image tag setting: production sets it to the commit the images were built from
# (scripts/build_images.sh), which the images also carry as SYNTHLLM_CODE_VERSION for
# _manifest.json. The default is the project version, never a floating tag.
IMAGE_TAG_ENV = "SYNTHLLM_IMAGE_TAG"
DEFAULT_IMAGE_TAG = "0.1.0"

# Names of the objects in k8s/ (tests check that these exist there).
PIPELINE_CONFIGMAP = "synthllm-pipeline-env"
S3_SECRET = "synthllm-s3-credentials"
LLM_API_SECRET = "synthllm-llm-api"
SPARK_SERVICE_ACCOUNT = "synthllm-spark"
JOB_SERVICE_ACCOUNT = "synthllm-jobs"

SPARK_VERSION = "4.1.1"
# images/spark/launch.py: runs `<module> <args...>` as __main__, since spark-operator starts a
# file while every job is a module.
SPARK_LAUNCHER = "local:///opt/synthllm/launch.py"
# The jars resolved by jars/pom.xml, baked into the Spark image (images/spark/Dockerfile).
SPARK_EXTRA_JARS = "/opt/spark/jars-extra/*"

GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

# Pod Security "restricted" for the Spark pods (the pod templates in k8s/ hold the same).
# uid 185 is the `spark` user of the Apache Spark base image (images/spark/Dockerfile).
SPARK_UID = 185
SPARK_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": SPARK_UID,
    "runAsGroup": SPARK_UID,
    "fsGroup": SPARK_UID,
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


def image_tag() -> str:
    """$SYNTHLLM_IMAGE_TAG (read when the DAG file is parsed: env only), else the default."""
    return os.environ.get(IMAGE_TAG_ENV) or DEFAULT_IMAGE_TAG


def image_for(spec: JobSpec) -> str:
    """The pinned image reference of a job, e.g. ``synthllm/vllm:0.1.0``."""
    return f"{IMAGE_REGISTRY}/{spec.image_kind}:{image_tag()}"


def _resource_dict(spec: JobSpec) -> dict[str, dict[str, str]]:
    res = spec.resources
    requests = {"cpu": str(res.cpu), "memory": res.memory}
    # Memory limit = request: an over-committed node kills the job mid-stage (OOM) otherwise.
    limits = {"memory": res.memory}
    if res.gpu:
        # GPUs are requested through limits only (extended resources cannot overcommit).
        limits["nvidia.com/gpu"] = str(res.gpu)
    return {"requests": requests, "limits": limits}


def pod_operator_kwargs(spec: JobSpec) -> dict[str, Any]:
    """Keyword arguments of ``KubernetesPodOperator`` for a python or python_gpu job.

    The module and the templated argv go into the container command; ``arguments`` is left
    for the mapped tail (``--shard i/N``), because values expanded from XCom are not templated.
    """
    from kubernetes.client import models as k8s

    gpu = spec.kind == "python_gpu"
    res = _resource_dict(spec)
    kwargs: dict[str, Any] = {
        "name": spec.k8s_name,
        "namespace": NAMESPACE,
        "image": image_for(spec),
        "cmds": ["python", "-m", spec.module, *spec.full_argv],
        "arguments": [],
        "pod_template_file": str(POD_TEMPLATES["gpu" if gpu else "cpu"]),
        "service_account_name": JOB_SERVICE_ACCOUNT,
        "container_resources": k8s.V1ResourceRequirements(
            requests=res["requests"], limits=res["limits"]
        ),
        "labels": {"app.kubernetes.io/part-of": "synthllm", "synthllm/job": spec.k8s_name},
        # Logs stream into the Airflow task log; the pod is removed once they are read.
        "get_logs": True,
        "on_finish_action": "delete_pod",
        # Image pulls of the multi-GB GPU image take minutes on a fresh node.
        "startup_timeout_seconds": 900 if gpu else 300,
    }
    if gpu:
        kwargs["tolerations"] = [k8s.V1Toleration(**t) for t in GPU_TOLERATIONS]
    return kwargs


def _spark_role(spec: JobSpec, role: str) -> dict[str, Any]:
    res = spec.resources
    env_from = [
        {"configMapRef": {"name": PIPELINE_CONFIGMAP}},
        {"secretRef": {"name": S3_SECRET, "optional": True}},
    ]
    body: dict[str, Any] = {
        "cores": res.cpu,
        "memory": res.spark_memory(),
        "envFrom": env_from,
        "labels": {"app.kubernetes.io/part-of": "synthllm", "synthllm/job": spec.k8s_name},
        "serviceAccount": SPARK_SERVICE_ACCOUNT,
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
            "imagePullPolicy": "IfNotPresent",
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
