"""The kubernetes-profile operators fail without retries when the job exits permanently,
and a job pod that returns a value gets an XCom sidecar the restricted namespace admits.

No cluster runs here: ``cleanup`` is called with the finished pod the provider would read back,
and only the calls that would reach the API server (patching, deleting) are replaced. The three
operators: a job pod, a Spark job's driver pod (the default runtime) and a SparkApplication
(``SPARK_RUNTIME = "operator"``).
"""

from __future__ import annotations

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s
from synthllm_tasks import JobSpec, job_task
from synthllm_tasks.pods import (
    SIDECAR_CONTAINER_NAME,
    SIDECAR_SECURITY,
    JobPodOperator,
    PermanentPodFailure,
    SparkJobOperator,
    container_exit_code,
)

OPERATORS = ["job_pod", "spark_driver_pod", "spark_application"]


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
    from synthllm_tasks import kubernetes as kube

    ingest = JobSpec("ingest", "jobs.ingest.ingest", kind="spark")
    with DAG("probe_pod_operators", schedule=None):
        pod = job_task(JobSpec("validate_qa", "jobs.validate.validate"), "kubernetes")
        driver = job_task(ingest, "kubernetes")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(kube, "SPARK_RUNTIME", "operator")
            app = job_task(ingest, "kubernetes", task_id="ingest_app")
    assert type(pod) is JobPodOperator and type(driver) is JobPodOperator
    assert type(app) is SparkJobOperator
    return dict(zip(OPERATORS, map(offline, (pod, driver, app)), strict=True))


@pytest.mark.parametrize("which", OPERATORS)
def test_permanent_exit_fails_without_retry(operators, which):
    op = operators[which]
    pod = finished_pod(op.base_container_name, 2, "Failed")
    with pytest.raises(PermanentPodFailure) as info:
        op.cleanup(pod, pod)
    assert isinstance(info.value, AirflowFailException)
    assert f"container {op.base_container_name} exited with code 2" in str(info.value)
    assert "returned a failure" in str(info.value.__cause__)


@pytest.mark.parametrize("code", [75, 1, 137])
@pytest.mark.parametrize("which", OPERATORS)
def test_other_failures_stay_retryable(operators, which, code):
    op = operators[which]
    pod = finished_pod(op.base_container_name, code, "Failed")
    with pytest.raises(AirflowException) as info:
        op.cleanup(pod, pod)
    assert not isinstance(info.value, AirflowFailException)


def test_success_and_exit_code_lookup(operators):
    op = operators["job_pod"]
    # The driver pod's job runs in the pod's own container; spark-operator's in its driver.
    assert operators["spark_driver_pod"].base_container_name == "base"
    assert operators["spark_application"].base_container_name == "spark-kubernetes-driver"
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


def xcom_pod(**kwargs) -> dict:
    with DAG("probe_xcom_sidecar", schedule=None):
        op = JobPodOperator(
            task_id="plan",
            name="plan",
            namespace="synthllm",
            image="registry.example/python:abc",
            image_pull_policy="Never",
            cmds=["python", "-m", "jobs.plan"],
            do_xcom_push=True,
            **kwargs,
        )
    pod = ApiClient().sanitize_for_serialization(op.build_pod_request_obj(dry_run=True))
    return {c["name"]: c for c in pod["spec"]["containers"]}


def test_xcom_sidecar_runs_the_jobs_image_with_a_restricted_security_context():
    containers = xcom_pod()
    assert list(containers) == ["base", SIDECAR_CONTAINER_NAME]
    sidecar = containers[SIDECAR_CONTAINER_NAME]
    # The node holds the job's image already; the provider's default would pull alpine.
    assert sidecar["image"] == "registry.example/python:abc"
    assert sidecar["imagePullPolicy"] == "Never"
    assert sidecar["securityContext"] == SIDECAR_SECURITY
    assert SIDECAR_SECURITY["allowPrivilegeEscalation"] is False
    assert SIDECAR_SECURITY["capabilities"] == {"drop": ["ALL"]}
    assert SIDECAR_SECURITY["runAsNonRoot"] is True
    assert {"name": "xcom", "mountPath": "/airflow/xcom"} in containers["base"]["volumeMounts"]


def test_a_given_sidecar_security_context_wins():
    own = {"runAsNonRoot": True, "runAsUser": 2000}
    sidecar = xcom_pod(xcom_sidecar_container_security_context=own)[SIDECAR_CONTAINER_NAME]
    assert sidecar["securityContext"] == own
    assert sidecar["image"] == "registry.example/python:abc"


def test_no_sidecar_without_a_value_to_return():
    with DAG("probe_no_sidecar", schedule=None):
        op = job_task(JobSpec("report", "jobs.report.report"), "kubernetes")
    pod = ApiClient().sanitize_for_serialization(op.build_pod_request_obj(dry_run=True))
    assert [c["name"] for c in pod["spec"]["containers"]] == ["base"]
