"""The manifests in k8s/ and the pod templates shipped with the DAG code are valid Kubernetes
objects and agree with the task factory."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from restricted import restricted_violations

REPO = Path(__file__).resolve().parents[2]

# Cluster objects only: the pod templates moved to dags/synthllm_tasks/pod_templates/.
EXPECTED_FILES = {
    "configmap-pipeline-env.yaml",
    "namespace.yaml",
    "pvc-models.yaml",
    "serviceaccounts.yaml",
    "spark-executor.yaml",
    "templates/secrets.yaml",
}
TEMPLATE_FILES = {"cpu": "python.yaml", "gpu": "gpu.yaml", "spark": "spark-driver.yaml"}


def by_kind(manifests, kind):
    return {
        d["metadata"]["name"]: d for docs in manifests.values() for d in docs if d["kind"] == kind
    }


def test_every_manifest_validates_strictly(k8s_manifests, validate_k8s):
    assert set(k8s_manifests) == EXPECTED_FILES
    count = 0
    for name, docs in k8s_manifests.items():
        for doc in docs:
            validate_k8s(doc)
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == "synthllm", name
            count += 1
    # 1 each: pipeline ConfigMap, Namespace, model PVC, executor template ConfigMap;
    # 4 service accounts, 2 Roles, 2 RoleBindings; 2 secret templates.
    assert count == 14


def test_pod_templates_ship_with_the_dag_code_and_validate(pod_templates, validate_k8s):
    from synthllm_tasks import kubernetes as kube

    assert kube.TEMPLATES_DIR == REPO / "dags/synthllm_tasks/pod_templates"
    assert {k: p.name for k, p in kube.POD_TEMPLATES.items()} == TEMPLATE_FILES
    assert {p.name for p in kube.TEMPLATES_DIR.iterdir()} == set(TEMPLATE_FILES.values())
    for kind, pod in pod_templates.items():
        validate_k8s(pod)
        assert pod["kind"] == "Pod" and pod["metadata"]["namespace"] == "synthllm", kind


def test_names_used_by_the_factory_exist(k8s_manifests):
    from synthllm_tasks import kubernetes as kube

    assert kube.PIPELINE_CONFIGMAP in by_kind(k8s_manifests, "ConfigMap")
    assert kube.SPARK_EXECUTOR_CONFIGMAP in by_kind(k8s_manifests, "ConfigMap")
    accounts = by_kind(k8s_manifests, "ServiceAccount")
    assert {
        kube.SPARK_SERVICE_ACCOUNT,
        kube.SPARK_EXECUTOR_SERVICE_ACCOUNT,
        kube.JOB_SERVICE_ACCOUNT,
    } <= set(accounts)
    binding = by_kind(k8s_manifests, "RoleBinding")["synthllm-spark-driver"]
    assert binding["subjects"][0]["name"] == kube.SPARK_SERVICE_ACCOUNT
    assert kube.NAMESPACE == "synthllm"
    for path in kube.POD_TEMPLATES.values():
        assert path.is_file(), path


def test_configmap_sets_what_jobs_read(k8s_manifests):
    data = by_kind(k8s_manifests, "ConfigMap")["synthllm-pipeline-env"]["data"]
    assert data["SYNTHLLM_PROFILE"] == "kubernetes"
    assert data["SYNTHLLM_ROOT_URI"].startswith("s3://")
    assert "SYNTHLLM_S3_ENDPOINT_URL" in data
    assert not any("SECRET" in key or "PASSWORD" in key for key in data)


def test_pod_templates_share_env_and_gpu_one_adds_placement(pod_templates):
    cpu, gpu, driver = (pod_templates[k] for k in ("cpu", "gpu", "spark"))
    for pod in (cpu, gpu, driver):
        (container,) = pod["spec"]["containers"]
        assert container["name"] == "base"  # the container KubernetesPodOperator fills in
        assert restricted_violations(pod["spec"]) == []
        assert "image" not in container  # one setting: the operator's, from SYNTHLLM_IMAGE_TAG
        assert pod["spec"]["securityContext"]["runAsUser"] == 1000
        assert {"name": "scratch", "mountPath": "/tmp"} in container["volumeMounts"]
    for pod in (cpu, gpu):
        refs = [next(iter(ref.values()))["name"] for ref in pod["spec"]["containers"][0]["envFrom"]]
        assert refs == ["synthllm-pipeline-env", "synthllm-s3-credentials", "synthllm-llm-api"]
    # The Spark jobs call no LLM API: the driver (and its executors) get no such key.
    refs = [next(iter(ref.values()))["name"] for ref in driver["spec"]["containers"][0]["envFrom"]]
    assert refs == ["synthllm-pipeline-env", "synthllm-s3-credentials"]
    gpu_container = gpu["spec"]["containers"][0]
    assert gpu_container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert gpu["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {v["name"] for v in gpu["spec"]["volumes"]} >= {"dshm", "models"}
    for pod in (cpu, driver):
        assert "tolerations" not in pod["spec"] and "nodeSelector" not in pod["spec"]


def test_driver_template_mounts_the_executor_template(pod_templates, k8s_manifests):
    from synthllm_tasks import kubernetes as kube

    spec = pod_templates["spark"]["spec"]
    assert spec["serviceAccountName"] == kube.SPARK_SERVICE_ACCOUNT
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in spec["containers"][0]["volumeMounts"]}
    mount = mounts[str(Path(kube.SPARK_EXECUTOR_TEMPLATE).parent)]
    assert mount["readOnly"] is True
    configmap = volumes[mount["name"]]["configMap"]["name"]
    assert configmap == kube.SPARK_EXECUTOR_CONFIGMAP
    data = by_kind(k8s_manifests, "ConfigMap")[configmap]["data"]
    assert set(data) == {Path(kube.SPARK_EXECUTOR_TEMPLATE).name}
    executor = yaml.safe_load(data[Path(kube.SPARK_EXECUTOR_TEMPLATE).name])
    assert executor["kind"] == "Pod"
    assert executor["spec"]["serviceAccountName"] == kube.SPARK_EXECUTOR_SERVICE_ACCOUNT


def test_validator_rejects_broken_core_objects(k8s_manifests, pod_templates, validate_k8s):
    pod = pod_templates["gpu"]
    wrong_type = copy.deepcopy(pod)
    wrong_type["spec"]["containers"][0]["envFrom"] = "synthllm-pipeline-env"
    unknown_field = copy.deepcopy(pod)
    unknown_field["spec"]["tolerations"][0]["efect"] = "NoSchedule"
    bad_account = copy.deepcopy(by_kind(k8s_manifests, "ServiceAccount")["synthllm-spark"])
    bad_account["automountServiceAccountToken"] = "yes"
    for broken in (wrong_type, unknown_field, bad_account):
        with pytest.raises(kubernetes_validate.ValidationError):
            validate_k8s(broken)


def test_crd_validator_rejects_broken_spark_applications(validate_spark_app):
    from synthllm_tasks import JobSpec, Resources
    from synthllm_tasks.kubernetes import spark_application

    app = spark_application(JobSpec("ingest", "jobs.ingest.ingest", kind="spark"))
    validate_spark_app(app)
    wrong_type = copy.deepcopy(app)
    wrong_type["spec"]["driver"]["cores"] = "2"
    bad_enum = copy.deepcopy(app)
    bad_enum["spec"]["mode"] = "local"
    missing = copy.deepcopy(app)
    del missing["spec"]["sparkVersion"]
    unknown = copy.deepcopy(app)
    unknown["spec"]["executor"]["instance"] = 2
    zero_cores = spark_application(
        JobSpec("ingest", "jobs.ingest.ingest", kind="spark", resources=Resources())
    )
    zero_cores["spec"]["executor"]["cores"] = 0
    for broken in (wrong_type, bad_enum, missing, unknown, zero_cores):
        with pytest.raises(jsonschema.ValidationError):
            validate_spark_app(broken)


def test_namespace_enforces_the_restricted_profile(k8s_manifests):
    (ns,) = k8s_manifests["namespace.yaml"]
    labels = ns["metadata"]["labels"]
    assert ns["metadata"]["name"] == "synthllm"
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"].startswith("v1.")


def test_objects_the_pods_refer_to_exist(k8s_manifests, pod_templates):
    """Service accounts, Secrets, ConfigMaps and volume claims named by pods are in k8s/."""
    from synthllm_tasks import JobSpec
    from synthllm_tasks import kubernetes as kube

    accounts = by_kind(k8s_manifests, "ServiceAccount")
    secrets = by_kind(k8s_manifests, "Secret")
    claims = by_kind(k8s_manifests, "PersistentVolumeClaim")
    maps = by_kind(k8s_manifests, "ConfigMap")
    (executor_template,) = maps[kube.SPARK_EXECUTOR_CONFIGMAP]["data"].values()
    pods = [p["spec"] for p in pod_templates.values()]
    pods.append(yaml.safe_load(executor_template)["spec"])
    app = kube.spark_application(JobSpec("ingest", "jobs.ingest.ingest", kind="spark"))
    roles = [app["spec"]["driver"], app["spec"]["executor"]]
    used_accounts = {p["serviceAccountName"] for p in pods} | {r["serviceAccount"] for r in roles}
    assert used_accounts == {
        kube.JOB_SERVICE_ACCOUNT,
        kube.SPARK_SERVICE_ACCOUNT,
        kube.SPARK_EXECUTOR_SERVICE_ACCOUNT,
    }
    assert used_accounts <= set(accounts)
    env_from = [ref for p in pods for ref in p["containers"][0]["envFrom"]]
    env_from += [ref for r in roles for ref in r["envFrom"]]
    assert {r["secretRef"]["name"] for r in env_from if "secretRef" in r} == set(secrets)
    assert {r["configMapRef"]["name"] for r in env_from if "configMapRef" in r} <= set(maps)
    used_maps = {v["configMap"]["name"] for p in pods for v in p["volumes"] if "configMap" in v}
    assert used_maps == {kube.SPARK_EXECUTOR_CONFIGMAP} and used_maps <= set(maps)
    used_claims = {
        v["persistentVolumeClaim"]["claimName"]
        for p in pods
        for v in p["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert used_claims == {"synthllm-models"} and used_claims <= set(claims)
    assert kube.S3_SECRET in secrets and kube.LLM_API_SECRET in secrets


def test_secret_templates_hold_no_values(k8s_manifests):
    secrets = k8s_manifests["templates/secrets.yaml"]
    assert {s["metadata"]["name"] for s in secrets} == {
        "synthllm-s3-credentials",
        "synthllm-llm-api",
    }
    for secret in secrets:
        assert "data" not in secret
        assert secret["stringData"] and set(secret["stringData"].values()) == {""}
    assert set(secrets[0]["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    # Outside `kubectl apply -f k8s/`, which would otherwise blank the live Secrets.
    assert not any(
        d["kind"] == "Secret" for n, ds in k8s_manifests.items() if "/" not in n for d in ds
    )


def test_only_the_spark_driver_account_gets_an_api_token(k8s_manifests, pod_templates):
    accounts = by_kind(k8s_manifests, "ServiceAccount")
    assert set(accounts) == {
        "synthllm-jobs",
        "synthllm-spark",
        "synthllm-spark-executor",
        "synthllm-airflow",
    }
    for name in ("synthllm-jobs", "synthllm-spark-executor", "synthllm-airflow"):
        assert accounts[name]["automountServiceAccountToken"] is False, name
    assert accounts["synthllm-spark"].get("automountServiceAccountToken", True) is True
    for kind in ("cpu", "gpu"):
        assert pod_templates[kind]["spec"]["automountServiceAccountToken"] is False
    assert pod_templates["spark"]["spec"]["automountServiceAccountToken"] is True
    (executor,) = by_kind(k8s_manifests, "ConfigMap")["synthllm-spark-executor"]["data"].values()
    assert yaml.safe_load(executor)["spec"]["automountServiceAccountToken"] is False


def role_rules(k8s_manifests, account: str) -> set[tuple[str, str, str]]:
    """``(apiGroup, resource, verb)`` that the Roles bound to ``account`` allow."""
    roles = by_kind(k8s_manifests, "Role")
    allowed = set()
    for binding in by_kind(k8s_manifests, "RoleBinding").values():
        if not any(
            s["kind"] == "ServiceAccount" and s["name"] == account for s in binding["subjects"]
        ):
            continue
        assert binding["roleRef"]["kind"] == "Role"
        for rule in roles[binding["roleRef"]["name"]]["rules"]:
            allowed |= {
                (group, resource, verb)
                for group in rule["apiGroups"]
                for resource in rule["resources"]
                for verb in rule["verbs"]
            }
    return allowed


def test_each_account_may_call_only_what_it_needs(k8s_manifests):
    # Job pods and executors call no API at all.
    assert role_rules(k8s_manifests, "synthllm-jobs") == set()
    assert role_rules(k8s_manifests, "synthllm-spark-executor") == set()
    driver = role_rules(k8s_manifests, "synthllm-spark")
    assert ("", "pods", "create") in driver and ("", "pods", "deletecollection") in driver
    assert {group for group, _, _ in driver} == {""}
    # Airflow starts, watches and deletes job pods, reads their logs, execs into the XCom
    # sidecar (shard_count's value) and runs SparkApplications where spark-operator runs.
    airflow = role_rules(k8s_manifests, "synthllm-airflow")
    for verb in ("create", "get", "list", "watch", "delete"):
        assert ("", "pods", verb) in airflow, verb
        assert ("sparkoperator.k8s.io", "sparkapplications", verb) in airflow, verb
    assert ("", "pods/log", "get") in airflow
    assert ("", "pods/exec", "create") in airflow
    # Airflow never acts as a driver: it creates no services or config maps.
    assert not {r for r in airflow if r[1] in {"services", "configmaps", "secrets"}}
