"""Inside each built image: every job its pods run starts, and what the config names is there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from clusterkit import REPO

HERE = Path(__file__).resolve().parent
OVERLAY = "configs/cluster-local.toml"


def tracked(path: str) -> bool:
    """The checkout's own file or folder: git tracks it (ignored outputs such as ``var/`` are
    made at run time, never shipped in an image)."""
    done = subprocess.run(
        ["git", "--literal-pathspecs", "ls-files", "--", path],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return bool(done.stdout.strip())


def config_paths(cfg) -> set[str]:
    """Repository-relative paths the config names (``file://./x`` or a tracked path)."""
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str):
            if node.startswith("file://./"):
                found.add(node.removeprefix("file://./"))
            elif (
                node.strip(" ./")
                and "://" not in node
                and not node.startswith("/")
                and (REPO / node).exists()
                and tracked(node)
            ):
                found.add(node)

    walk(cfg.model_dump(mode="json"))
    return found


@pytest.fixture(scope="module")
def images(cluster_env) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, str(HERE / "dag_images.py")],
        env={**cluster_env, "PYTHONPATH": str(REPO / "dags")},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_dags_use_two_images_of_this_checkout(images, cluster_env):
    tag = cluster_env["SYNTHLLM_IMAGE_TAG"]
    assert sorted(images) == [f"localhost/synthllm/{k}:{tag}" for k in ("python", "spark")]
    spark = images[f"localhost/synthllm/spark:{tag}"]
    assert {"jobs.ingest.ingest", "jobs.filter.filter", "jobs.graph.build"} <= set(spark)
    python = images[f"localhost/synthllm/python:{tag}"]
    assert {"jobs.llm.run_shard", "jobs.validate.validate", "jobs.train.train"} <= set(python)


@pytest.mark.parametrize("kind", ["python", "spark"])
def test_every_job_of_the_image_starts_and_its_files_are_there(kind, images, cluster_env):
    from jobs.config import load_config

    image = f"localhost/synthllm/{kind}:{cluster_env['SYNTHLLM_IMAGE_TAG']}"
    paths = {OVERLAY, "expectations"}
    for overlay in (None, OVERLAY):
        cfg = load_config("kubernetes", str(REPO / overlay) if overlay else None)
        paths |= config_paths(cfg)
        paths |= {f"expectations/{t}.json" for t in ("documents", "qa", "questions")}
    if kind == "spark":
        paths |= {cfg.spark.jars_dir, "/opt/synthllm/launch.py"}
    assert "jobs/filter/seeds/positives.jsonl" in paths  # the walk found what it must
    done = subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "-v",
            f"{HERE / 'check_image.py'}:/checks/check_image.py:ro",
            image,
            "python",
            "/checks/check_image.py",
            json.dumps(sorted(paths)),
            *images[image],
        ],  # fmt: skip
        env=cluster_env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"checked {len(images[image])} modules" in done.stdout
