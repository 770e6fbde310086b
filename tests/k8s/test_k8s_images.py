"""Images are pinned (no :latest, exact package pins equal to the lock) and match the factory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
CONSTRAINTS = REPO / "requirements/constraints.txt"
KINDS = ("spark", "python", "vllm")
# FROM <image>:<tag> with a concrete version-like tag, or a digest.
PINNED_FROM = re.compile(r"^FROM\s+(\S+?)(?::([\w.-]+))?(@sha256:[0-9a-f]{64})?(\s+AS\s+\w+)?$")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([\w.+-]+)$")


def from_problems(dockerfile_text: str) -> list[str]:
    """Reasons a Dockerfile's base images are not pinned (empty when all are)."""
    problems, stages = [], set()
    for line in dockerfile_text.splitlines():
        if not line.strip().upper().startswith("FROM "):
            continue
        match = PINNED_FROM.match(line.strip())
        if not match:
            problems.append(f"unparsed: {line}")
            continue
        image, tag, digest, alias = match.groups()
        if alias:
            stages.add(alias.split()[-1])
        if image in stages:
            continue
        if digest is None and (tag is None or tag == "latest" or not re.search(r"\d", tag)):
            problems.append(f"not pinned: {line}")
    return problems


def requirement_pins(path: Path) -> dict[str, str]:
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: not an exact pin: {raw!r}"
        pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


@pytest.mark.parametrize("kind", KINDS)
def test_dockerfile_base_images_are_pinned(kind):
    text = (IMAGES / kind / "Dockerfile").read_text()
    assert from_problems(text) == []
    assert "latest" not in text


def test_pin_checker_can_fail():
    assert from_problems("FROM python\n") == ["not pinned: FROM python"]
    assert from_problems("FROM vllm/vllm-openai:latest\n") != []
    assert from_problems("FROM python:slim\n") != []
    assert from_problems("FROM python:3.11.14-slim AS base\nFROM base\n") == []


def test_no_latest_tag_anywhere_in_deployables():
    offenders = [
        str(p.relative_to(REPO))
        for folder in ("images", "k8s", "dags")
        for p in (REPO / folder).rglob("*")
        if p.is_file() and p.suffix in {"", ".yaml", ".py", ".txt"} and ":latest" in p.read_text()
    ]
    assert offenders == []


def test_base_images_match_the_versions_the_code_expects():
    from synthllm_tasks import kubernetes as kube

    spark = (IMAGES / "spark/Dockerfile").read_text()
    assert f"FROM spark:{kube.SPARK_VERSION}-scala2.13-java17-python3-ubuntu" in spark
    assert requirement_pins(IMAGES / "spark/requirements.txt")["pyspark"] == kube.SPARK_VERSION
    assert "FROM vllm/vllm-openai:v0.33.0" in (IMAGES / "vllm/Dockerfile").read_text()
    launcher = kube.SPARK_LAUNCHER.removeprefix("local://")
    assert f"COPY images/spark/launch.py {launcher}" in spark
    jars_dir = kube.SPARK_EXTRA_JARS.removesuffix("*")
    assert f"COPY jars/lib/ {jars_dir}" in spark
    assert f'jars_dir = "{jars_dir.rstrip("/")}"' in (REPO / "configs/kubernetes.toml").read_text()


@pytest.mark.parametrize("kind", ["spark", "python"])
def test_image_pins_equal_the_lock_file(kind):
    lock = requirement_pins(CONSTRAINTS)
    pins = requirement_pins(IMAGES / kind / "requirements.txt")
    assert pins, kind
    mismatched = {name: (v, lock.get(name)) for name, v in pins.items() if lock.get(name) != v}
    assert mismatched == {}
    assert "-c /tmp/constraints.txt" in (IMAGES / kind / "Dockerfile").read_text()


def test_vllm_image_does_not_override_vllms_torch_or_transformers():
    pins = requirement_pins(IMAGES / "vllm/requirements.txt")
    assert not {"torch", "transformers", "vllm"} & set(pins)
    assert all(re.fullmatch(r"[\w.+-]+", v) for v in pins.values())


@pytest.mark.parametrize("kind", KINDS)
def test_copied_sources_exist(kind):
    text = (IMAGES / kind / "Dockerfile").read_text()
    for src in re.findall(r"^COPY\s+(?!--)(\S+)\s+\S+$", text, flags=re.M):
        if src == "jars/lib/":  # filled by resolving jars/pom.xml at set-up (gitignored)
            assert (REPO / "jars/pom.xml").is_file()
            continue
        assert (REPO / src).exists(), f"{kind}: COPY source {src} missing"


def test_readme_says_vllm_needs_a_gpu_machine():
    text = (IMAGES / "README.md").read_text()
    assert "vLLM cannot run on the development machines" in text


@pytest.mark.parametrize("kind", KINDS)
def test_images_carry_the_code_version_and_a_writable_home(kind):
    text = (IMAGES / kind / "Dockerfile").read_text()
    assert 'ARG SYNTHLLM_CODE_VERSION=""' in text
    assert "SYNTHLLM_CODE_VERSION=${SYNTHLLM_CODE_VERSION}" in text  # ENV: read at run time
    assert "HOME=/tmp" in text  # the root filesystem is read-only; /tmp is an emptyDir


def test_image_users_match_the_pod_security_contexts():
    from synthllm_tasks import kubernetes as kube

    assert "USER 1000" in (IMAGES / "python/Dockerfile").read_text()
    assert f"USER {kube.SPARK_UID}" in (IMAGES / "spark/Dockerfile").read_text()


def test_code_version_comes_from_the_image_when_set(monkeypatch):
    from jobs.cli import code_version

    monkeypatch.setenv("SYNTHLLM_CODE_VERSION", "3f2c1a9b8e7d")
    assert code_version() == "3f2c1a9b8e7d"
    monkeypatch.setenv("SYNTHLLM_CODE_VERSION", "")
    assert code_version() != "3f2c1a9b8e7d" and code_version()  # git, else "unknown"


def test_build_script_tags_with_the_commit_and_passes_it_in():
    import subprocess

    result = subprocess.run(
        [str(REPO / "scripts/build_images.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lines = result.stdout.splitlines()
    for kind in KINDS:
        assert (
            f"docker build -f images/{kind}/Dockerfile --build-arg SYNTHLLM_CODE_VERSION={commit}"
            f" -t synthllm/{kind}:{commit} ." in lines
        )
    assert lines[-1] == f"SYNTHLLM_IMAGE_TAG={commit}"
