"""Images are pinned (no :latest, exact package pins equal to the lock) and match the factory.

Base images: every FROM, an ARG's default included, names a version. Packages: each image
installs its own lock (images/lock.py) with pip --no-deps, and every pin equals the project
lock (the locks themselves: test_k8s_image_locks.py). Users, paths and the build context
agree with the pod templates and the Dockerfiles; the build script tags every image with the
commit. The Spark image's entrypoint: test_spark_entrypoint.py.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from image_pins import requirement_pins

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
CONSTRAINTS = REPO / "requirements/constraints.txt"
KINDS = ("spark", "python", "vllm")
# The images installed from a lock of their own (images/lock.py); vllm keeps vLLM's pins.
LOCKED = ("python", "spark")
# FROM <image>:<tag> with a concrete version-like tag, or a digest.
PINNED_FROM = re.compile(r"^FROM\s+(\S+?)(?::([\w.-]+))?(@sha256:[0-9a-f]{64})?(\s+AS\s+\w+)?$")
ARG = re.compile(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?$")
ARG_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def from_problems(dockerfile_text: str) -> list[str]:
    """Reasons a Dockerfile's base images are not pinned (empty when all are).

    ``FROM ${NAME}`` resolves to the default of an ``ARG NAME=...`` declared before the first
    FROM (the only ARGs a FROM sees); a build may pass another value, but what a plain build
    gets must be pinned too.
    """
    problems, stages, args = [], set(), {}
    seen_from = False
    for line in dockerfile_text.splitlines():
        text = line.strip()
        if text.upper().startswith("ARG ") and not seen_from:
            match = ARG.match(text)
            if not match:
                problems.append(f"unparsed: {line}")
                continue
            name, default = match.groups()
            args[name] = default.strip("\"'") if default else None
            continue
        if not text.upper().startswith("FROM "):
            continue
        seen_from = True
        unresolved = [a or b for a, b in ARG_REF.findall(text) if not args.get(a or b)]
        if unresolved:
            problems.append(f"FROM uses ARG {', '.join(unresolved)} without a default: {line}")
            continue
        resolved = ARG_REF.sub(lambda m: args[m.group(1) or m.group(2)], text)
        shown = line if resolved == text else f"{line} (= {resolved})"
        match = PINNED_FROM.match(resolved)
        if not match:
            problems.append(f"unparsed: {shown}")
            continue
        image, tag, digest, alias = match.groups()
        if alias:
            stages.add(alias.split()[-1])
        if image in stages:
            continue
        if digest is None and (tag is None or tag == "latest" or not re.search(r"\d", tag)):
            problems.append(f"not pinned: {shown}")
    return problems


def dockerfile(kind: str) -> str:
    return (IMAGES / kind / "Dockerfile").read_text()


def last_user(text: str) -> str:
    return re.findall(r"^USER\s+(\S+)\s*$", text, flags=re.M)[-1]


@pytest.mark.parametrize("kind", KINDS)
def test_dockerfile_base_images_are_pinned(kind):
    text = dockerfile(kind)
    assert from_problems(text) == []
    assert "latest" not in text


def test_pin_checker_can_fail():
    assert from_problems("FROM python\n") == ["not pinned: FROM python"]
    assert from_problems("FROM vllm/vllm-openai:latest\n") != []
    assert from_problems("FROM python:slim\n") != []
    assert from_problems("FROM python:3.11.14-slim AS base\nFROM base\n") == []


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("ARG BASE=python:3.11.14-slim\nFROM ${BASE}\n", []),
        ('ARG BASE="python:3.11.14-slim"\nFROM $BASE AS build\nFROM build\n', []),
        ("ARG BASE=python\nFROM ${BASE}\n", ["not pinned: FROM ${BASE} (= FROM python)"]),
        ("ARG BASE=python:latest\nFROM $BASE\n", ["not pinned: FROM $BASE (= FROM python:latest)"]),
        ("ARG BASE\nFROM ${BASE}\n", ["FROM uses ARG BASE without a default: FROM ${BASE}"]),
        ("FROM ${NOWHERE}\n", ["FROM uses ARG NOWHERE without a default: FROM ${NOWHERE}"]),
        # An ARG after a FROM belongs to that stage: a later FROM cannot use it.
        (
            "FROM python:3.11.14-slim\nARG LATE=python:3.11.14\nFROM ${LATE}\n",
            ["FROM uses ARG LATE without a default: FROM ${LATE}"],
        ),
    ],
)
def test_pin_checker_resolves_arg_defaults(text, problems):
    assert from_problems(text) == problems


def test_no_latest_tag_anywhere_in_deployables():
    offenders = [
        str(p.relative_to(REPO))
        for folder in ("images", "k8s", "dags")
        for p in (REPO / folder).rglob("*")
        if p.is_file()
        and p.suffix in {"", ".yaml", ".py", ".txt", ".lock", ".sh"}
        and ":latest" in p.read_text()
    ]
    assert offenders == []


def test_python_image_is_the_spark_images_base():
    from synthllm_tasks import kubernetes as kube

    python, spark = dockerfile("python"), dockerfile("spark")
    assert "ARG BASE_IMAGE=python:3.11.14-slim-bookworm\n" in python
    # The Spark image adds Java and Spark to the Python image's runtime stage of the same
    # build, and then the same code as the Python image's last stage.
    assert "FROM ${BASE_IMAGE} AS runtime\n" in python and "\nFROM runtime\n" in python
    default = f"{kube.IMAGE_REGISTRY}/python-runtime:{kube.DEFAULT_IMAGE_TAG}"
    assert f"ARG RUNTIME_IMAGE={default}\nFROM ${{RUNTIME_IMAGE}}\n" in spark
    copies = re.compile(r"^COPY (?:jobs|configs|expectations)/ .*$", re.M)
    code = copies.findall(python)
    assert len(code) == 3 and code == copies.findall(spark)
    # Only the last stage copies code: the runtime layers stay cached across code changes.
    assert python.index("\nFROM runtime\n") < python.index(code[0])
    assert "openjdk-17-jre-headless" in spark  # Spark 4 runs on Java 17 or later
    # SPARK_HOME is pyspark inside the Python image's venv: its Python must be the base's.
    (home,) = re.findall(r"SPARK_HOME=(\S+)", spark)
    assert home == "/opt/venv/lib/python3.11/site-packages/pyspark"
    assert "python3 -m venv /opt/venv" in python and "BASE_IMAGE=python:3.11." in python


def test_base_images_match_the_versions_the_code_expects():
    from synthllm_tasks import kubernetes as kube

    spark = dockerfile("spark")
    assert requirement_pins(IMAGES / "spark/requirements.txt")["pyspark"] == kube.SPARK_VERSION
    assert requirement_pins(IMAGES / "spark/requirements.lock")["pyspark"] == kube.SPARK_VERSION
    assert "FROM vllm/vllm-openai:v0.33.0" in dockerfile("vllm")
    launcher = kube.SPARK_LAUNCHER.removeprefix("local://")
    assert f"COPY images/spark/launch.py {launcher}" in spark
    jars_dir = kube.SPARK_EXTRA_JARS.removesuffix("*")
    assert f"COPY jars/lib/ {jars_dir}" in spark
    assert f'jars_dir = "{jars_dir.rstrip("/")}"' in (REPO / "configs/kubernetes.toml").read_text()


@pytest.mark.parametrize("kind", LOCKED)
def test_image_pins_equal_the_lock_file(kind):
    lock = requirement_pins(CONSTRAINTS)
    pins = requirement_pins(IMAGES / kind / "requirements.txt")
    assert pins, kind
    mismatched = {name: (v, lock.get(name)) for name, v in pins.items() if lock.get(name) != v}
    assert mismatched == {}


@pytest.mark.parametrize("kind", LOCKED)
def test_images_install_their_lock_and_nothing_else(kind):
    text = dockerfile(kind)
    assert f"COPY images/{kind}/requirements.lock /tmp/requirements.lock" in text
    installs = re.findall(r"pip install ([^\n]*)", text)
    assert installs == ["--no-cache-dir --no-deps $PIP_ARGS -r /tmp/requirements.lock \\"]
    assert "constraints.txt" not in text and "requirements.txt" not in text


def test_vllm_image_does_not_override_vllms_torch_or_transformers():
    pins = requirement_pins(IMAGES / "vllm/requirements.txt")
    assert not {"torch", "transformers", "vllm"} & set(pins)
    assert all(re.fullmatch(r"[\w.+-]+", v) for v in pins.values())


def copied_sources(kind: str) -> list[str]:
    return re.findall(r"^COPY\s+(?!--)(\S+)\s+\S+$", dockerfile(kind), flags=re.M)


@pytest.mark.parametrize("kind", KINDS)
def test_copied_sources_exist(kind):
    for src in copied_sources(kind):
        if src == "jars/lib/":  # filled by resolving jars/pom.xml at set-up (gitignored)
            assert (REPO / "jars/pom.xml").is_file()
            continue
        assert (REPO / src).exists(), f"{kind}: COPY source {src} missing"


def test_spark_entrypoint_is_the_copied_executable_script():
    spark = dockerfile("spark")
    (entrypoint,) = re.findall(r'^ENTRYPOINT \["(\S+)"\]$', spark, flags=re.M)
    assert f"COPY images/spark/entrypoint.sh {entrypoint}" in spark
    assert os.access(IMAGES / "spark/entrypoint.sh", os.X_OK)  # COPY keeps the mode


def test_readme_says_vllm_needs_a_gpu_machine():
    text = (IMAGES / "README.md").read_text()
    assert "vLLM cannot be built or run on the project's machines (no\nGPU" in text


@pytest.mark.parametrize("kind", KINDS)
def test_images_carry_the_code_version_and_a_writable_home(kind):
    text = dockerfile(kind)
    assert 'ARG SYNTHLLM_CODE_VERSION=""' in text
    assert "SYNTHLLM_CODE_VERSION=${SYNTHLLM_CODE_VERSION}" in text  # ENV: read at run time
    # The root filesystem is read-only; /tmp is an emptyDir. Spark inherits the Python image's.
    home = dockerfile("python") if kind == "spark" else text
    assert "HOME=/tmp" in home


def test_image_users_match_the_pod_security_contexts(pod_templates, k8s_manifests):
    from synthllm_tasks import JobSpec
    from synthllm_tasks import kubernetes as kube

    assert "useradd --uid 1000" in dockerfile("python")
    for kind in LOCKED:
        assert last_user(dockerfile(kind)) == str(kube.IMAGE_UID) == "1000", kind
    contexts = [t["spec"]["securityContext"] for t in pod_templates.values()]
    (executor,) = [d for d in k8s_manifests["spark-executor.yaml"]]
    contexts.append(
        yaml.safe_load(next(iter(executor["data"].values())))["spec"]["securityContext"]
    )
    app = kube.spark_application(JobSpec("ingest", "jobs.ingest.ingest", kind="spark"))
    contexts += [app["spec"][role]["podSecurityContext"] for role in ("driver", "executor")]
    for context in contexts:
        assert context["runAsUser"] == context["runAsGroup"] == kube.IMAGE_UID
        assert context["runAsNonRoot"] is True


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """``(include, regex)`` per .dockerignore line, in Docker's syntax (``**``, ``!``)."""
    patterns = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        patterns.append((include, re.compile(f"^{regex}$")))
    return patterns


def in_build_context(path: str) -> bool:
    """Whether ``path`` (relative to the repository) reaches the build: the last pattern that
    matches it or one of its parent folders decides, as in Docker."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    allowed = True
    for include, regex in dockerignore_patterns():
        if any(regex.match(c) for c in candidates):
            allowed = include
    return allowed


def test_dockerignore_matcher_can_fail():
    for kept_out in ("dags/synthllm_generate.py", ".venv/bin/python", "var/x", "tests/t.py"):
        assert not in_build_context(kept_out), kept_out
    assert not in_build_context("jobs/__pycache__/cli.cpython-311.pyc")
    assert not in_build_context("jobs/llm/engine.pyc")
    assert in_build_context("jobs/cli.py") and in_build_context("jars/lib/x.jar")
    assert not in_build_context("jars/pom.xml")  # only the resolved jars


@pytest.mark.parametrize("kind", KINDS)
def test_dockerignore_lets_in_what_the_dockerfiles_copy(kind):
    for src in copied_sources(kind):
        path = REPO / src
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        files = [f for f in files if "__pycache__" not in f.parts and f.suffix != ".pyc"]
        rel = [str(f.relative_to(REPO)) for f in files]
        # An empty or absent folder (jars/lib before set-up) still lets its contents in.
        rel.append(src if path.is_file() else f"{src.rstrip('/')}/probe.txt")
        kept_out = [r for r in rel if not in_build_context(r)]
        assert kept_out == [], (kind, src)


def test_code_version_comes_from_the_image_when_set(monkeypatch):
    from jobs.cli import code_version

    monkeypatch.setenv("SYNTHLLM_CODE_VERSION", "3f2c1a9b8e7d")
    assert code_version() == "3f2c1a9b8e7d"
    monkeypatch.setenv("SYNTHLLM_CODE_VERSION", "")
    assert code_version() != "3f2c1a9b8e7d" and code_version()  # git, else "unknown"


def build_dry_run(*args: str, **env: str) -> list[list[str]]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SYNTHLLM_IMAGE_REGISTRY", "SYNTHLLM_BASE_IMAGE", "SYNTHLLM_IMAGE_BUILDER"}
    }
    # docker: the dry run needs neither podman's environment nor a daemon.
    result = subprocess.run(
        [str(REPO / "scripts/build_images.sh"), "--dry-run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**clean, "SYNTHLLM_IMAGE_BUILDER": "docker", **env},
    )
    return [shlex.split(line) for line in result.stdout.splitlines()]


def build_args(cmd: list[str]) -> dict[str, str]:
    pairs = [cmd[i + 1].split("=", 1) for i, arg in enumerate(cmd) if arg == "--build-arg"]
    return dict(pairs)


def test_build_script_tags_with_the_commit_and_passes_it_in(monkeypatch):
    from jobs.cli import code_version

    monkeypatch.delenv("SYNTHLLM_CODE_VERSION", raising=False)
    tag = code_version()  # the commit, -dirty with uncommitted changes: as the script tags
    assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?", tag)
    lines = build_dry_run("python", "spark", "vllm")
    assert lines[-1] == [f"SYNTHLLM_IMAGE_TAG={tag}"]
    builds = {cmd[cmd.index("-t") + 1]: cmd for cmd in lines[:-1]}
    # One build per kind; the Python image's runtime stage before the Spark image FROM it.
    kinds = ("python", "python-runtime", "spark", "vllm")
    assert list(builds) == [f"synthllm/{kind}:{tag}" for kind in kinds]
    for kind in kinds:
        cmd = builds[f"synthllm/{kind}:{tag}"]
        assert cmd[:2] == ["docker", "build"] and cmd[-1] == "."
        dockerfile = "python" if kind == "python-runtime" else kind
        assert cmd[cmd.index("-f") + 1] == f"images/{dockerfile}/Dockerfile"
        assert build_args(cmd)["SYNTHLLM_CODE_VERSION"] == tag
    runtime = builds[f"synthllm/python-runtime:{tag}"]
    assert runtime[runtime.index("--target") + 1] == "runtime"
    assert "--target" not in builds[f"synthllm/python:{tag}"]
    spark = builds[f"synthllm/spark:{tag}"]
    assert build_args(spark)["RUNTIME_IMAGE"] == f"synthllm/python-runtime:{tag}"
    assert "BASE_IMAGE" not in build_args(builds[f"synthllm/python:{tag}"])  # the default


def test_build_script_defaults_and_settings():
    default = build_dry_run()
    assert [cmd[cmd.index("-f") + 1] for cmd in default[:-1]] == [
        "images/python/Dockerfile",
        "images/python/Dockerfile",  # its runtime stage, the Spark image's base
        "images/spark/Dockerfile",
    ]  # vllm needs its CUDA base from a registry
    lines = build_dry_run(
        "python", "spark", SYNTHLLM_IMAGE_REGISTRY="reg.example/ml", SYNTHLLM_BASE_IMAGE="deb:12"
    )
    python, runtime, spark = lines[0], lines[1], lines[2]
    tag = lines[-1][0].split("=", 1)[1]
    assert build_args(python)["BASE_IMAGE"] == build_args(runtime)["BASE_IMAGE"] == "deb:12"
    assert python[python.index("-t") + 1] == f"reg.example/ml/python:{tag}"
    assert runtime[runtime.index("-t") + 1] == f"reg.example/ml/python-runtime:{tag}"
    assert build_args(spark)["RUNTIME_IMAGE"] == f"reg.example/ml/python-runtime:{tag}"
    bad = subprocess.run(
        [str(REPO / "scripts/build_images.sh"), "--dry-run", "cuda"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYNTHLLM_IMAGE_BUILDER": "docker"},
    )
    assert bad.returncode == 2 and "unknown argument cuda" in bad.stderr
