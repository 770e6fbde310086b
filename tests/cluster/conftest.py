"""Cluster tests: real pods on the project's local cluster.

They need what ``scripts/k8s/test-cluster.sh`` (``make test-cluster``) brings up first: the
cluster (scripts/cluster/), this checkout's images built and loaded into the node, the S3
API on this machine and the objects of k8s/ deployed. Every test here is marked ``cluster``;
the default run (``make test``) deselects them, CI runs them after ``make test``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from clusterkit import REPO

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster_env() -> dict[str, str]:
    """The Airflow side's environment for the local cluster, S3 credentials included."""
    script = (
        "source scripts/env.sh && source scripts/k8s/airflow-env.sh"
        ' && eval "$(scripts/k8s/s3.sh env)" && env -0'
    )
    done = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, check=True)
    env = dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)
    ready = subprocess.run(
        ["kubectl", "get", "--raw", "/readyz"], env=env, capture_output=True, text=True
    )
    if ready.returncode != 0:
        pytest.fail(f"the local cluster is not up (make test-cluster brings it up): {ready.stderr}")
    return env


@pytest.fixture(scope="session")
def kubectl(cluster_env):
    """``kubectl(*args)``: the cluster's kubectl as its admin; returns the CompletedProcess."""

    def run(*args: str, check: bool = True, stdin: str | None = None):
        done = subprocess.run(
            ["kubectl", *args], env=cluster_env, capture_output=True, text=True, input=stdin
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr}")
        return done

    return run


@pytest.fixture(scope="session")
def storage(cluster_env):
    """The pipeline's storage on the cluster's S3 API (what the pods read and write)."""
    from jobs.config import StorageConfig
    from jobs.storage import Storage

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        os.environ[key] = cluster_env[key]
    return Storage(
        StorageConfig(
            root_uri=cluster_env["SYNTHLLM_ROOT_URI"],
            s3_endpoint_url=cluster_env["SYNTHLLM_S3_ENDPOINT_URL"],
        )
    )
