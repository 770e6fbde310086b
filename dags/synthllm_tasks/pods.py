"""The house operators of the ``kubernetes`` profile: the provider's pod and Spark operators
with the job's exit code read from the finished pod.

The provider fails a task whose pod failed with a plain ``AirflowException``, which Airflow
retries whatever the cause. Here the base container's exit code decides: a job that exited
``EXIT_PERMANENT`` (``jobs/errors.py``) fails with ``AirflowFailException``, without retries;
any other failure (transient 75, an OOM kill 137, an evicted pod) keeps the retry with backoff.
The Spark driver container exits with the job's code (``launch.py`` runs the module; spark-submit
exits with the Python process's code), so Spark jobs follow the same rule.

Imported by the factory only when a kubernetes-profile task is built (provider import cost).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from synthllm_tasks.exitcodes import is_permanent

# The provider's name for the container that holds a pod's XCom until it is read.
SIDECAR_CONTAINER_NAME = "airflow-xcom-sidecar"
SIDECAR_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}


class PermanentPodFailure(AirflowFailException):
    """The job in the pod exited with the permanent exit code: fail without retries."""


def container_exit_code(pod: Any, container: str) -> int | None:
    """The exit code of ``container`` in a finished ``V1Pod`` (None while it has not ended)."""
    statuses = (pod.status.container_statuses if pod is not None and pod.status else None) or []
    for status in statuses:
        if status.name == container and status.state and status.state.terminated:
            return status.state.terminated.exit_code
    return None


class _ExitCodeAware:
    """Turns the provider's pod failure into ``PermanentPodFailure`` for a permanent exit."""

    base_container_name: str

    def cleanup(self, pod, remote_pod, xcom_result=None, context=None) -> None:
        try:
            super().cleanup(pod, remote_pod, xcom_result, context)
        except (AirflowFailException, AirflowSkipException):
            raise
        except AirflowException as exc:
            code = container_exit_code(remote_pod, self.base_container_name)
            if is_permanent(code):
                raise PermanentPodFailure(
                    f"container {self.base_container_name} exited with code {code} "
                    f"(permanent failure, not retried)\n{exc}"
                ) from exc
            raise


class JobPodOperator(_ExitCodeAware, KubernetesPodOperator):
    """``KubernetesPodOperator`` for job pods (see module docstring).

    A job that returns a value (``do_xcom_push``) writes it to the XCom volume; the provider
    reads it from a sidecar it adds. That sidecar runs the job's own image (``sh`` and
    ``cat`` are all it needs, and the node holds that image already, where the provider's
    default would pull another one) with the restricted security context every container of
    the namespace needs.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("xcom_sidecar_container_security_context", dict(SIDECAR_SECURITY))
        super().__init__(**kwargs)

    def build_pod_request_obj(self, context=None, *, dry_run: bool = False):
        pod = super().build_pod_request_obj(context, dry_run=dry_run)
        for container in pod.spec.containers:
            if container.name == SIDECAR_CONTAINER_NAME:
                container.image = self.image
                container.image_pull_policy = self.image_pull_policy
        return pod


class SparkJobOperator(_ExitCodeAware, SparkKubernetesOperator):
    """``SparkKubernetesOperator`` for Spark jobs (see module docstring)."""
