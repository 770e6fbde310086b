"""The served generator (k8s/llm-server/) and its CPU overlay (k8s/overlays/cluster-local/):
valid, restricted, and consistent with the jobs that serve and call it."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import jsonpatch
import pytest
import yaml
from k8s_yaml import load_yaml_docs
from kustomize_build import KustomizeError, build
from restricted import restricted_violations

from jobs.config import GenerationConfig, expand_env

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "k8s/llm-server"
OVERLAY = REPO / "k8s/overlays/cluster-local"
NAME = "synthllm-llm"
DOCUMENTED_URL = "http://${SYNTHLLM_LLM_SERVICE_HOST}:${SYNTHLLM_LLM_SERVICE_PORT}/v1"


def _objects(docs):
    return {d["kind"]: d for d in docs}


@pytest.fixture(scope="module")
def base():
    return _objects(build(BASE))


@pytest.fixture(scope="module")
def overlay():
    return _objects(build(OVERLAY))


def _pod(objs):
    return objs["Deployment"]["spec"]["template"]["spec"]


def _container(objs):
    (container,) = _pod(objs)["containers"]
    return container


def test_base_and_overlay_validate_strictly_and_are_restricted(base, overlay, validate_k8s):
    for objs in (base, overlay):
        assert set(objs) == {"Deployment", "Service"}
        for doc in objs.values():
            validate_k8s(doc)
            assert doc["metadata"]["name"] == NAME
            assert doc["metadata"]["namespace"] == "synthllm"
        assert restricted_violations(_pod(objs)) == []
        assert _pod(objs)["automountServiceAccountToken"] is False
        assert _pod(objs)["securityContext"]["runAsUser"] == 1000
        env = {e["name"]: e["value"] for e in _container(objs)["env"]}
        assert env["HOME"] == "/tmp"
        mounts = {m["mountPath"]: m["name"] for m in _container(objs)["volumeMounts"]}
        volumes = {v["name"]: v for v in _pod(objs)["volumes"]}
        assert volumes[mounts["/tmp"]]["emptyDir"]
        assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"


def test_validator_rejects_a_broken_deployment(base, validate_k8s):
    import kubernetes_validate

    broken = copy.deepcopy(base["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_k8s(broken)


def test_base_serves_the_model_volume_on_one_gpu_like_the_gpu_pod(base, pod_templates):
    gpu_pod = pod_templates["gpu"]["spec"]  # dags/synthllm_tasks/pod_templates/gpu.yaml
    pod, container = _pod(base), _container(base)
    assert container["image"] == "synthllm/vllm:0.1.0"
    assert container["command"] == ["vllm", "serve"]
    args = container["args"]
    assert args[0] == "/models/generator"
    flags = dict(zip(args[1::2], args[2::2], strict=True))
    assert flags == {"--served-model-name": "generator", "--host": "0.0.0.0", "--port": "8000"}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["tolerations"] == gpu_pod["tolerations"]
    assert pod["nodeSelector"] == gpu_pod["nodeSelector"]
    assert pod["securityContext"] == gpu_pod["securityContext"]
    assert container["securityContext"] == gpu_pod["containers"][0]["securityContext"]
    claim = {v["name"]: v for v in pod["volumes"]}["models"]["persistentVolumeClaim"]
    assert claim == {"claimName": "synthllm-models", "readOnly": True}
    models = [m for m in container["volumeMounts"] if m["name"] == "models"]
    assert models == [{"name": "models", "mountPath": "/models", "readOnly": True}]
    # One GPU: the old pod must go before the new one can be scheduled.
    assert base["Deployment"]["spec"]["strategy"] == {"type": "Recreate"}


def test_objects_the_server_refers_to_exist(base, k8s_manifests):
    from synthllm_tasks import kubernetes as kube

    accounts = {
        d["metadata"]["name"]
        for docs in k8s_manifests.values()
        for d in docs
        if d["kind"] == "ServiceAccount"
    }
    claims = {d["metadata"]["name"] for d in k8s_manifests["pvc-models.yaml"]}
    assert _pod(base)["serviceAccountName"] == kube.JOB_SERVICE_ACCOUNT in accounts
    assert "synthllm-models" in claims


def test_probes_ask_health_on_the_served_port_and_wait_minutes_to_start(base, overlay):
    for objs in (base, overlay):
        container = _container(objs)
        (port,) = container["ports"]
        assert port == {"name": "http", "containerPort": 8000, "protocol": "TCP"}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_service_selects_the_pods_and_exposes_the_container_port(base, overlay):
    for objs in (base, overlay):
        service, deployment = objs["Service"], objs["Deployment"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
        (port,) = service["spec"]["ports"]
        assert (port["port"], port["targetPort"]) == (8000, "http")


def test_overlay_runs_the_cpu_server_without_gpu_or_models(base, overlay):
    pod, container = _pod(overlay), _container(overlay)
    assert container["image"] == "localhost/synthllm/python:0.1.0"
    assert container["imagePullPolicy"] == "Never"
    assert container["command"] == ["python", "-m", "jobs.llm.serve"]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "1Gi"},
        "limits": {"memory": "1Gi"},
    }
    text = json.dumps(overlay["Deployment"])
    assert "nvidia" not in text and "/models" not in text and "synthllm-models" not in text
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert {v["name"] for v in pod["volumes"]} == {"dshm", "scratch"}
    assert {m["name"] for m in container["volumeMounts"]} == {"dshm", "scratch"}
    # The rest of the shape is the base's: same Service, probes, security, labels.
    assert overlay["Service"] == base["Service"]
    for key in ("ports", "startupProbe", "readinessProbe", "securityContext", "env"):
        assert container[key] == _container(base)[key]


def test_overlay_arguments_are_what_the_serve_job_parses(overlay):
    from jobs.llm.serve import build_parser

    args = build_parser().parse_args(_container(overlay)["args"])
    assert (args.host, args.port, args.model_alias) == ("0.0.0.0", 8000, "generator")
    assert args.port == overlay["Service"]["spec"]["ports"][0]["port"]
    assert args.profile == "local"


def test_the_image_tag_is_one_kustomize_images_entry():
    spec = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    (image,) = spec["images"]
    assert image == {
        "name": "synthllm/vllm",
        "newName": "localhost/synthllm/python",
        "newTag": "0.1.0",
    }
    assert not any(t["target"].get("name") != NAME for t in spec["patches"])


def test_patch_guards_fail_the_build_when_the_base_is_reordered(base):
    ops = yaml.safe_load((OVERLAY / "llm-server-cpu.yaml").read_text())
    reordered = copy.deepcopy(base["Deployment"])
    volumes = reordered["spec"]["template"]["spec"]["volumes"]
    volumes[1], volumes[2] = volumes[2], volumes[1]
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(reordered, ops)


def test_kustomize_rules_that_the_layout_works_around(tmp_path):
    """A file above the kustomization, or a base folder containing the overlay, does not build."""
    (tmp_path / "k8s/overlays/x").mkdir(parents=True)
    shutil.copy(BASE / "llm-server.yaml", tmp_path / "k8s/llm-server.yaml")
    kfile = tmp_path / "k8s/overlays/x/kustomization.yaml"
    kfile.write_text("resources: [../../llm-server.yaml]\n")
    with pytest.raises(KustomizeError, match="is not in or below"):
        build(kfile.parent)
    (tmp_path / "k8s/kustomization.yaml").write_text("resources: [llm-server.yaml]\n")
    kfile.write_text("resources: [../..]\n")
    with pytest.raises(KustomizeError, match="cycle detected"):
        build(kfile.parent)


def test_the_documented_client_url_reaches_the_service(base):
    text = (REPO / "configs/kubernetes.toml").read_text()
    assert f'openai_base_url = "{DOCUMENTED_URL}"' in text
    gen = GenerationConfig(engine="openai", model="generator", openai_base_url=DOCUMENTED_URL)
    port = base["Service"]["spec"]["ports"][0]["port"]
    # What Kubernetes injects into pods for a Service named synthllm-llm.
    env = {"SYNTHLLM_LLM_SERVICE_HOST": "10.96.0.12", "SYNTHLLM_LLM_SERVICE_PORT": str(port)}
    assert expand_env(gen.openai_base_url, "openai_base_url", env) == "http://10.96.0.12:8000/v1"


def test_base_file_is_outside_kubectl_apply_f_k8s():
    """`kubectl apply -f k8s/` is not recursive: the GPU server stays opt-in."""
    assert not (REPO / "k8s/llm-server.yaml").exists()
    assert [d["kind"] for d in load_yaml_docs(BASE / "llm-server.yaml")] == [
        "Deployment",
        "Service",
    ]
