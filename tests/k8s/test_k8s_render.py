"""Every task of synthllm_generate, built in the kubernetes profile, renders to a valid object.

Pods come from ``KubernetesPodOperator.build_pod_request_obj`` (pod template + task fields),
serialised like the API client does; SparkApplications (``SPARK_RUNTIME = "operator"``) are
the body the provider would submit. Both are validated against the published schemas. The
Spark jobs' driver pods of the default runtime are checked in detail in
test_k8s_spark_driver.py.
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
from dag_tasks import SPARK_TASKS
from kubernetes.client import ApiClient
from restricted import restricted_violations, spark_role_pod

DAGS = Path(__file__).resolve().parents[2] / "dags"
TEMPLATES = DAGS / "synthllm_tasks/pod_templates"
SNAPSHOT = "2026-11-01"
RUN_ID = "scheduled__2026-11-01T00:00:00+00:00"
MAPPED_TASKS = {"concepts_generate", "questions_generate", "answers_generate"}
GPU_TASKS = {"write_positives", "refine"} | MAPPED_TASKS
POD_TASKS = {
    "shard_count",
    "validate_documents",
    "concepts_prepare",
    "concepts_collect",
    "validate_doc_concepts",
    "questions_prepare",
    "questions_collect",
    "validate_questions",
    "validate_questions_clean",
    "answers_prepare",
    "answers_collect",
    "validate_qa",
    "report",
    "publish",
} | GPU_TASKS
# Sized as SIZES.cpu (the rest of the CPU pods as SIZES.table).
CPU_TASKS = {"shard_count", "report", "publish"}
# Plain Python tasks on the worker (TaskFlow), not pods.
WORKER_TASKS = {"shards", "level_shards"}


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
    if shard:
        op = task.unmap({"arguments": ["--shard", shard]})
    else:  # a copy: the module's DAG serves every test, its templates must stay templates
        op = copy.copy(task)
        op.cmds = list(task.cmds)
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


def test_operator_kinds_per_task(k8s_dag, k8s_dag_operator):
    tasks = {t.task_id for t in k8s_dag.tasks}
    assert tasks == set(SPARK_TASKS) | POD_TASKS | WORKER_TASKS
    kinds = {t.task_id: type(t).__name__ for t in k8s_dag.tasks}
    for task_id in SPARK_TASKS:  # the default runtime: the task's pod is the Spark driver
        assert kinds[task_id] == "JobPodOperator"
        assert type(k8s_dag_operator.get_task(task_id)).__name__ == "SparkJobOperator"
    for task_id in POD_TASKS - MAPPED_TASKS:
        assert kinds[task_id] == "JobPodOperator"
        assert type(k8s_dag_operator.get_task(task_id)).__name__ == "JobPodOperator"
    for task_id in MAPPED_TASKS:
        task = k8s_dag.get_task(task_id)
        assert task.operator_class.__name__ == "JobPodOperator"
        assert set(task.expand_input.value) == {"arguments"}
    for task_id in WORKER_TASKS:
        assert kinds[task_id] == "_PythonDecoratedOperator"


@pytest.mark.parametrize("task_id", sorted(POD_TASKS))
def test_pods_render_and_validate(k8s_dag, validate_k8s, task_id):
    from synthllm_tasks.sizing import GPU_POOL, SIZES

    task = k8s_dag.get_task(task_id)
    gpu, mapped = task_id in GPU_TASKS, task_id in MAPPED_TASKS
    pod, op = render_pod(task, shard="1/2" if mapped else None)
    validate_k8s(pod)
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    # Only shard_count returns a value: the provider's XCom sidecar (test_shard_count_pod).
    sidecar = {"airflow-xcom-sidecar"} if task_id == "shard_count" else set()
    assert set(containers) == {"base"} | sidecar
    container = containers["base"]
    module = container["command"][2]
    assert container["command"][:3] == ["python", "-m", module]
    assert container["command"][3:9] == run_argv()
    assert container["args"] == (["--shard", "1/2"] if mapped else [])
    assert container["image"] == ("synthllm/vllm:0.1.0" if gpu else "synthllm/python:0.1.0")
    assert container["imagePullPolicy"] == "IfNotPresent"
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
    # The production sizes (SYNTHLLM_K8S_SIZES unset): whole cores, memory limit = request.
    sizes = SIZES["production"]
    size = sizes.gpu if gpu else sizes.cpu if task_id in CPU_TASKS else sizes.table
    assert container["resources"]["requests"] == {"cpu": str(size.cpu), "memory": size.memory}
    limits = container["resources"]["limits"]
    assert limits["memory"] == size.memory
    if gpu:
        assert limits["nvidia.com/gpu"] == "1"
        assert [t["key"] for t in pod["spec"]["tolerations"]] == ["nvidia.com/gpu"]
        assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {v["name"] for v in pod["spec"]["volumes"]} == {"dshm", "models", "scratch"}
        assert Path(op.pod_template_file) == TEMPLATES / "gpu.yaml"
        assert op.pool == GPU_POOL
    else:
        assert "nvidia.com/gpu" not in limits
        assert not pod["spec"].get("tolerations")
        assert Path(op.pod_template_file) == TEMPLATES / "python.yaml"
        assert op.pool == "default_pool"


@pytest.mark.parametrize("task_id", sorted(SPARK_TASKS))
def test_spark_applications_render_and_validate(k8s_dag_operator, validate_spark_app, task_id):
    from synthllm_tasks import kubernetes as kube

    app = render_spark_app(k8s_dag_operator.get_task(task_id))
    validate_spark_app(app)
    spec = app["spec"]
    assert app["metadata"] == {"name": task_id.replace("_", "-"), "namespace": "synthllm"}
    assert spec["type"] == "Python" and spec["mode"] == "cluster"
    assert spec["sparkVersion"] == "4.1.1"
    assert spec["image"] == "synthllm/spark:0.1.0"
    assert spec["imagePullPolicy"] == "IfNotPresent"
    assert spec["mainApplicationFile"] == "local:///opt/synthllm/launch.py"
    assert spec["arguments"] == [SPARK_TASKS[task_id], *run_argv(), "--config", ""]
    assert spec["driver"]["serviceAccount"] == "synthllm-spark"
    assert spec["executor"]["serviceAccount"] == "synthllm-spark-executor"
    # The production Spark size: 4 cores, 16Gi split 60/40 into JVM heap and overhead.
    for role in ("driver", "executor"):
        assert spec[role]["cores"] == 4
        assert (spec[role]["memory"], spec[role]["memoryOverhead"]) == ("9830m", "6554m")
    assert spec["executor"]["instances"] == 4
    for role in ("driver", "executor"):
        refs = [next(iter(ref.values()))["name"] for ref in spec[role]["envFrom"]]
        assert refs == ["synthllm-pipeline-env", "synthllm-s3-credentials"]
        assert restricted_violations(spark_role_pod(app, role)) == []
        assert spec[role]["podSecurityContext"]["runAsUser"] == kube.IMAGE_UID == 1000
        assert spec[role]["volumeMounts"] == [{"name": "scratch", "mountPath": "/tmp"}]
    assert [v["name"] for v in spec["volumes"]] == ["scratch"]
    conf = spec["sparkConf"]
    jars = "/opt/synthllm/jars/*"
    assert conf["spark.driver.extraClassPath"] == conf["spark.executor.extraClassPath"] == jars
    assert "spark.jars" not in conf


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
    import shlex

    from airflow.sdk import DAG
    from synthllm_tasks import JobSpec, Resources, job_task
    from synthllm_tasks import kubernetes as kube

    ingest = JobSpec("ingest", "jobs.ingest.ingest", kind="spark")
    monkeypatch.setenv("SYNTHLLM_IMAGE_TAG", "3f2c1a9b8e7d")
    with DAG("probe_image_tag", schedule=None):
        pod_task = job_task(JobSpec("report", "jobs.report.report"), "kubernetes")
        gpu_task = job_task(
            JobSpec("gen", "jobs.llm.run_shard", kind="python_gpu", resources=Resources(gpu=1)),
            "kubernetes",
        )
        driver_task = job_task(ingest, "kubernetes")
        monkeypatch.setattr(kube, "SPARK_RUNTIME", "operator")
        app_task = job_task(ingest, "kubernetes", task_id="ingest_app")
    pod = ApiClient().sanitize_for_serialization(pod_task.build_pod_request_obj(dry_run=True))
    assert pod["spec"]["containers"][0]["image"] == "synthllm/python:3f2c1a9b8e7d"
    assert gpu_task.image == "synthllm/vllm:3f2c1a9b8e7d"
    assert driver_task.image == "synthllm/spark:3f2c1a9b8e7d"
    (submit,) = [e.value for e in driver_task.env_vars if e.name == "PYSPARK_SUBMIT_ARGS"]
    assert "spark.kubernetes.container.image=synthllm/spark:3f2c1a9b8e7d" in shlex.split(submit)
    assert app_task.template_spec["spec"]["image"] == "synthllm/spark:3f2c1a9b8e7d"


def test_pull_policy_and_registry_settings_reach_every_image(monkeypatch):
    """A cluster without a registry (the project's own) runs what its node holds: Never."""
    import shlex

    from airflow.sdk import DAG
    from synthllm_tasks import JobSpec, job_task
    from synthllm_tasks import kubernetes as kube

    monkeypatch.setattr(kube, "IMAGE_PULL_POLICY", "Never")
    monkeypatch.setattr(kube, "IMAGE_REGISTRY", "localhost/synthllm")
    ingest = JobSpec("ingest", "jobs.ingest.ingest", kind="spark")
    with DAG("probe_pull_policy", schedule=None):
        plan = job_task(JobSpec("plan", "jobs.plan", returns_value=True), "kubernetes")
        driver = job_task(ingest, "kubernetes")
        monkeypatch.setattr(kube, "SPARK_RUNTIME", "operator")
        app = job_task(ingest, "kubernetes", task_id="ingest_app")
    pod = ApiClient().sanitize_for_serialization(plan.build_pod_request_obj(dry_run=True))
    for container in pod["spec"]["containers"]:  # the job and its XCom sidecar
        assert container["imagePullPolicy"] == "Never", container["name"]
        assert container["image"] == "localhost/synthllm/python:0.1.0", container["name"]
    (submit,) = [e.value for e in driver.env_vars if e.name == "PYSPARK_SUBMIT_ARGS"]
    args = shlex.split(submit)
    assert "spark.kubernetes.container.image.pullPolicy=Never" in args
    assert "spark.kubernetes.container.image=localhost/synthllm/spark:0.1.0" in args
    assert driver.image_pull_policy == "Never"
    assert app.template_spec["spec"]["imagePullPolicy"] == "Never"


def test_shard_count_pod_returns_its_value_through_a_restricted_sidecar(k8s_dag, validate_k8s):
    from synthllm_tasks.pods import SIDECAR_CONTAINER_NAME

    task = k8s_dag.get_task("shard_count")
    assert task.do_xcom_push is True
    assert task.cmds[-2:] == ["--result-file", "/airflow/xcom/return.json"]
    assert task.cmds[:3] == ["python", "-m", "jobs.plan"]
    pod, _ = render_pod(task)
    validate_k8s(pod)
    assert restricted_violations(pod["spec"]) == []
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    base, sidecar = containers["base"], containers[SIDECAR_CONTAINER_NAME]
    assert base["command"][-4:] == [
        "--num-shards",
        "2",  # the run's param (context()); empty when unset: test_k8s_profile_values.py
        "--result-file",
        "/airflow/xcom/return.json",
    ]
    # The sidecar reads the value from the shared XCom volume, in the job's own image.
    assert (sidecar["image"], sidecar["imagePullPolicy"]) == (base["image"], "IfNotPresent")
    xcom = {"name": "xcom", "mountPath": "/airflow/xcom"}
    assert xcom in base["volumeMounts"] and xcom in sidecar["volumeMounts"]
    assert {"name": "xcom", "emptyDir": {}} in pod["spec"]["volumes"]
    # The check sees the sidecar: without the house security context it would fail.
    bare = copy.deepcopy(pod["spec"])
    next(c for c in bare["containers"] if c["name"] == SIDECAR_CONTAINER_NAME).pop(
        "securityContext"
    )
    assert restricted_violations(bare) == [
        f"containers[{SIDECAR_CONTAINER_NAME}]: allowPrivilegeEscalation is not false",
        f"containers[{SIDECAR_CONTAINER_NAME}]: capabilities do not drop ALL",
        f"containers[{SIDECAR_CONTAINER_NAME}]: readOnlyRootFilesystem is not true",
    ]
