"""The manifests in k8s/ are valid Kubernetes objects and agree with the task factory."""

from __future__ import annotations

import copy

import jsonschema
import kubernetes_validate
import pytest
from restricted import restricted_violations

EXPECTED_FILES = {
    "configmap-pipeline-env.yaml",
    "namespace.yaml",
    "pod-gpu.yaml",
    "pod-python.yaml",
    "pvc-models.yaml",
    "serviceaccounts.yaml",
    "templates/secrets.yaml",
}


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
    assert count == 11


def test_names_used_by_the_factory_exist(k8s_manifests):
    from synthllm_tasks import kubernetes as kube

    assert kube.PIPELINE_CONFIGMAP in by_kind(k8s_manifests, "ConfigMap")
    accounts = by_kind(k8s_manifests, "ServiceAccount")
    assert {kube.SPARK_SERVICE_ACCOUNT, kube.JOB_SERVICE_ACCOUNT} <= set(accounts)
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


def test_pod_templates_share_env_and_gpu_one_adds_placement(k8s_manifests):
    cpu = k8s_manifests["pod-python.yaml"][0]
    gpu = k8s_manifests["pod-gpu.yaml"][0]
    for pod in (cpu, gpu):
        (container,) = pod["spec"]["containers"]
        assert container["name"] == "base"  # the container KubernetesPodOperator fills in
        refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
        assert refs == ["synthllm-pipeline-env", "synthllm-s3-credentials", "synthllm-llm-api"]
        assert restricted_violations(pod["spec"]) == []
        assert "image" not in container  # one setting: the operator's, from SYNTHLLM_IMAGE_TAG
    gpu_container = gpu["spec"]["containers"][0]
    assert gpu_container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert {v["name"] for v in gpu["spec"]["volumes"]} >= {"dshm", "models"}
    assert "tolerations" not in cpu["spec"]


def test_validator_rejects_broken_core_objects(k8s_manifests, validate_k8s):
    pod = k8s_manifests["pod-gpu.yaml"][0]
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


def test_objects_the_pods_refer_to_exist(k8s_manifests):
    """Service accounts, Secrets, ConfigMaps and volume claims named by pods are in k8s/."""
    from synthllm_tasks import JobSpec
    from synthllm_tasks import kubernetes as kube

    accounts = by_kind(k8s_manifests, "ServiceAccount")
    secrets = by_kind(k8s_manifests, "Secret")
    claims = by_kind(k8s_manifests, "PersistentVolumeClaim")
    maps = by_kind(k8s_manifests, "ConfigMap")
    pods = [k8s_manifests[n][0]["spec"] for n in ("pod-python.yaml", "pod-gpu.yaml")]
    app = kube.spark_application(JobSpec("ingest", "jobs.ingest.ingest", kind="spark"))
    roles = [app["spec"]["driver"], app["spec"]["executor"]]
    used_accounts = {p["serviceAccountName"] for p in pods} | {r["serviceAccount"] for r in roles}
    assert used_accounts == {kube.JOB_SERVICE_ACCOUNT, kube.SPARK_SERVICE_ACCOUNT}
    assert used_accounts <= set(accounts)
    env_from = [ref for p in pods for ref in p["containers"][0]["envFrom"]]
    env_from += [ref for r in roles for ref in r["envFrom"]]
    assert {r["secretRef"]["name"] for r in env_from if "secretRef" in r} == set(secrets)
    assert {r["configMapRef"]["name"] for r in env_from if "configMapRef" in r} <= set(maps)
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


def test_only_the_spark_driver_account_gets_an_api_token(k8s_manifests):
    accounts = by_kind(k8s_manifests, "ServiceAccount")
    assert accounts["synthllm-jobs"]["automountServiceAccountToken"] is False
    assert accounts["synthllm-spark"].get("automountServiceAccountToken", True) is True
    for name in ("pod-python.yaml", "pod-gpu.yaml"):
        assert k8s_manifests[name][0]["spec"]["automountServiceAccountToken"] is False
