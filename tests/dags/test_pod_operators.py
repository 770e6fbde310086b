"""The kubernetes-profile operators fail without retries when the job exits permanently.

No cluster runs here: ``cleanup`` is called with the finished pod the provider would read back,
and only the calls that would reach the API server (patching, deleting) are replaced.
"""

from __future__ import annotations

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import models as k8s
from synthllm_tasks import JobSpec, job_task
from synthllm_tasks.pods import (
    JobPodOperator,
    PermanentPodFailure,
    SparkJobOperator,
    container_exit_code,
)


def finished_pod(container: str, exit_code: int, phase: str) -> k8s.V1Pod:
    terminated = k8s.V1ContainerStateTerminated(exit_code=exit_code, reason="Error")
    status = k8s.V1ContainerStatus(
        name=container,
        image="synthllm/python:abc",
        image_id="",
        ready=False,
        restart_count=0,
        state=k8s.V1ContainerState(terminated=terminated),
    )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="validate-qa-x1", namespace="synthllm", annotations={}),
        status=k8s.V1PodStatus(phase=phase, container_statuses=[status]),
    )


def offline(op):
    """Keep ``cleanup`` off the API server: it re-reads, patches and deletes the pod."""
    op.is_istio_enabled = lambda pod: False
    op.patch_already_checked = lambda pod, reraise=True: None
    op.process_pod_deletion = lambda pod, reraise=True: True
    return op


@pytest.fixture(scope="module")
def operators():
    with DAG("probe_pod_operators", schedule=None):
        pod = job_task(JobSpec("validate_qa", "jobs.validate.validate"), "kubernetes")
        spark = job_task(JobSpec("ingest", "jobs.ingest.ingest", kind="spark"), "kubernetes")
    assert type(pod) is JobPodOperator and type(spark) is SparkJobOperator
    return offline(pod), offline(spark)


@pytest.mark.parametrize("which", [0, 1])
def test_permanent_exit_fails_without_retry(operators, which):
    op = operators[which]
    pod = finished_pod(op.base_container_name, 2, "Failed")
    with pytest.raises(PermanentPodFailure) as info:
        op.cleanup(pod, pod)
    assert isinstance(info.value, AirflowFailException)
    assert f"container {op.base_container_name} exited with code 2" in str(info.value)
    assert "returned a failure" in str(info.value.__cause__)


@pytest.mark.parametrize("code", [75, 1, 137])
@pytest.mark.parametrize("which", [0, 1])
def test_other_failures_stay_retryable(operators, which, code):
    op = operators[which]
    pod = finished_pod(op.base_container_name, code, "Failed")
    with pytest.raises(AirflowException) as info:
        op.cleanup(pod, pod)
    assert not isinstance(info.value, AirflowFailException)


def test_success_and_exit_code_lookup(operators):
    op, spark = operators
    assert spark.base_container_name == "spark-kubernetes-driver"
    ok = finished_pod("base", 0, "Succeeded")
    assert op.cleanup(ok, ok) is None
    assert container_exit_code(ok, "base") == 0
    assert container_exit_code(ok, "other") is None
    assert container_exit_code(k8s.V1Pod(status=None), "base") is None
    # Only the job's own container decides: a sidecar exiting 2 is not the job.
    sidecar = finished_pod("istio-proxy", 2, "Failed")
    with pytest.raises(AirflowException) as info:
        op.cleanup(sidecar, sidecar)
    assert not isinstance(info.value, AirflowFailException)
