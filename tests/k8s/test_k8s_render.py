"""Every task of synthllm_generate, built in the kubernetes profile, renders to a valid object.

Pods come from ``KubernetesPodOperator.build_pod_request_obj`` (pod template + task fields),
serialised like the API client does; SparkApplications are the body the provider would
submit. Both are validated against the published schemas.
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubernetes.client import ApiClient
from restricted import restricted_violations, spark_role_pod

DAGS = Path(__file__).resolve().parents[2] / "dags"
SNAPSHOT = "2026-11-01"
RUN_ID = "scheduled__2026-11-01T00:00:00+00:00"
SPARK_TASKS = {"ingest": "jobs.ingest.ingest", "filter": "jobs.filter.filter"}
GPU_TASKS = {"questions_generate", "answers_generate"}
POD_TASKS = {
    "validate_documents",
    "questions_prepare",
    "questions_collect",
    "validate_questions",
    "answers_prepare",
    "answers_collect",
    "validate_qa",
    "report",
    "publish",
} | GPU_TASKS


def context(try_number=1):
    return {
        "params": {"snapshot": None, "num_shards": 2, "config": ""},
        "ds": SNAPSHOT,
        "run_id": RUN_ID,
        # shard_count's XCom: the run's resolved shard count, rendered into the prepare pods.
        "ti": SimpleNamespace(try_number=try_number, xcom_pull=lambda task_ids: 2),
    }


def run_argv(try_number=1):
    return ["--snapshot", SNAPSHOT, "--run-id", RUN_ID, "--attempt", str(try_number)]


def render_pod(task, shard=None) -> dict:
    op = task.unmap({"arguments": ["--shard", shard]}) if shard else task
    op.render_template_fields(context())
    pod = op.build_pod_request_obj(dry_run=True)
    return ApiClient().sanitize_for_serialization(pod), op


def render_spark_app(task) -> dict:
    from airflow.providers.cncf.kubernetes.operators.custom_object_launcher import (
        CustomObjectLauncher,
    )

    task.render_template_fields(context())
    launcher = CustomObjectLauncher(
        name=task.name,
        namespace=task.namespace,
        kube_client=None,
        custom_obj_api=None,
        template_body=task.template_body,
    )
    return launcher.body


def test_operator_kinds_per_task(k8s_dag):
    kinds = {t.task_id: type(t).__name__ for t in k8s_dag.tasks}
    for task_id in SPARK_TASKS:
        assert kinds[task_id] == "SparkJobOperator"
    for task_id in POD_TASKS - GPU_TASKS:
        assert kinds[task_id] == "JobPodOperator"
    for task_id in GPU_TASKS:
        task = k8s_dag.get_task(task_id)
        assert task.operator_class.__name__ == "JobPodOperator"
        assert set(task.expand_input.value) == {"arguments"}


@pytest.mark.parametrize("task_id", sorted(POD_TASKS))
def test_pods_render_and_validate(k8s_dag, validate_k8s, task_id):
    task = k8s_dag.get_task(task_id)
    gpu = task_id in GPU_TASKS
    pod, op = render_pod(task, shard="1/2" if gpu else None)
    validate_k8s(pod)
    (container,) = pod["spec"]["containers"]
    module = container["command"][2]
    assert container["command"][:3] == ["python", "-m", module]
    assert container["command"][3:9] == run_argv()
    assert container["args"] == (["--shard", "1/2"] if gpu else [])
    assert container["image"] == ("synthllm/vllm:0.1.0" if gpu else "synthllm/python:0.1.0")
    refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
    assert refs == ["synthllm-pipeline-env", "synthllm-s3-credentials", "synthllm-llm-api"]
    assert container.get("env", []) == []  # settings and secrets come only from envFrom
    # Pod Security "restricted" after the template merge, with /tmp the writable scratch.
    assert restricted_violations(pod["spec"]) == []
    assert {"name": "scratch", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["metadata"]["namespace"] == "synthllm"
    assert pod["metadata"]["name"].startswith(task_id.replace("_", "-"))
    assert pod["spec"]["serviceAccountName"] == "synthllm-jobs"
    limits = container["resources"]["limits"]
    if gpu:
        assert limits["nvidia.com/gpu"] == "1"
        assert [t["key"] for t in pod["spec"]["tolerations"]] == ["nvidia.com/gpu"]
        assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {v["name"] for v in pod["spec"]["volumes"]} == {"dshm", "models", "scratch"}
        assert op.pod_template_file.endswith("k8s/pod-gpu.yaml")
    else:
        assert "nvidia.com/gpu" not in limits
        assert not pod["spec"].get("tolerations")
        assert op.pod_template_file.endswith("k8s/pod-python.yaml")


@pytest.mark.parametrize("task_id", sorted(SPARK_TASKS))
def test_spark_applications_render_and_validate(k8s_dag, validate_spark_app, task_id):
    app = render_spark_app(k8s_dag.get_task(task_id))
    validate_spark_app(app)
    spec = app["spec"]
    assert app["metadata"] == {"name": task_id, "namespace": "synthllm"}
    assert spec["type"] == "Python" and spec["mode"] == "cluster"
    assert spec["sparkVersion"] == "4.1.1"
    assert spec["image"] == "synthllm/spark:0.1.0"
    assert spec["mainApplicationFile"] == "local:///opt/synthllm/launch.py"
    assert spec["arguments"] == [SPARK_TASKS[task_id], *run_argv(), "--config", ""]
    assert spec["driver"]["serviceAccount"] == "synthllm-spark"
    assert spec["driver"]["cores"] == 4 and spec["driver"]["memory"] == "16g"
    assert spec["executor"]["instances"] == 4
    for role in ("driver", "executor"):
        refs = [next(iter(ref.values()))["name"] for ref in spec[role]["envFrom"]]
        assert refs == ["synthllm-pipeline-env", "synthllm-s3-credentials"]
        assert restricted_violations(spark_role_pod(app, role)) == []
        assert spec[role]["podSecurityContext"]["runAsUser"] == 185  # the Spark image's user
        assert spec[role]["volumeMounts"] == [{"name": "scratch", "mountPath": "/tmp"}]
    assert [v["name"] for v in spec["volumes"]] == ["scratch"]


def test_mapped_pod_keeps_the_templated_command(k8s_dag):
    task = k8s_dag.get_task("answers_generate")
    pods = [render_pod(task, shard=f"{i}/2")[0] for i in range(2)]
    commands = {tuple(p["spec"]["containers"][0]["command"]) for p in pods}
    assert len(commands) == 1
    assert list(next(iter(commands)))[3:] == [*run_argv(), "--config", "", "--task", "answers"]
    assert [p["spec"]["containers"][0]["args"] for p in pods] == [
        ["--shard", "0/2"],
        ["--shard", "1/2"],
    ]


def test_restricted_checker_flags_violations(k8s_dag):
    pod, _ = render_pod(k8s_dag.get_task("report"))
    good = pod["spec"]
    assert restricted_violations(good) == []

    def broken(change):
        spec = copy.deepcopy(good)
        change(spec, spec["containers"][0]["securityContext"])
        return restricted_violations(spec)

    cases = {
        "root": lambda s, c: s["securityContext"].update(runAsNonRoot=False),
        "root_unset": lambda s, c: (
            s["securityContext"].pop("runAsNonRoot"),
            c.pop("runAsNonRoot"),
        ),
        "escalation": lambda s, c: c.pop("allowPrivilegeEscalation"),
        "caps": lambda s, c: c["capabilities"].update(drop=["NET_RAW"]),
        "add": lambda s, c: c["capabilities"].update(add=["SYS_ADMIN"]),
        "seccomp": lambda s, c: s["securityContext"].pop("seccompProfile"),
        "unconfined": lambda s, c: c.update(seccompProfile={"type": "Unconfined"}),
        "privileged": lambda s, c: c.update(privileged=True),
        "host_net": lambda s, c: s.update(hostNetwork=True),
        "host_path": lambda s, c: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "uid0": lambda s, c: c.update(runAsUser=0),
        "rw_root": lambda s, c: c.update(readOnlyRootFilesystem=False),
    }
    found = {name: broken(change) for name, change in cases.items()}
    assert all(found.values()), [name for name, problems in found.items() if not problems]
    assert found["host_path"] == ["volume h: type ['hostPath'] not allowed"]
    assert found["caps"] == ["containers[base]: capabilities do not drop ALL"]


def test_image_tag_setting_reaches_pods_and_spark_applications(monkeypatch):
    from airflow.sdk import DAG
    from synthllm_tasks import JobSpec, Resources, job_task

    monkeypatch.setenv("SYNTHLLM_IMAGE_TAG", "3f2c1a9b8e7d")
    with DAG("probe_image_tag", schedule=None):
        pod_task = job_task(JobSpec("report", "jobs.report.report"), "kubernetes")
        gpu_task = job_task(
            JobSpec("gen", "jobs.llm.run_shard", kind="python_gpu", resources=Resources(gpu=1)),
            "kubernetes",
        )
        spark_task = job_task(JobSpec("ingest", "jobs.ingest.ingest", kind="spark"), "kubernetes")
    pod = ApiClient().sanitize_for_serialization(pod_task.build_pod_request_obj(dry_run=True))
    assert pod["spec"]["containers"][0]["image"] == "synthllm/python:3f2c1a9b8e7d"
    assert gpu_task.image == "synthllm/vllm:3f2c1a9b8e7d"
    assert spark_task.template_spec["spec"]["image"] == "synthllm/spark:3f2c1a9b8e7d"
