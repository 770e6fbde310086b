"""Shared fixtures: one Spark session per test session, a real S3 API on loopback, configs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# A throw-away Airflow home for the DAG and Kubernetes tests, set before anything imports
# airflow (importing it without AIRFLOW_HOME creates ~/airflow).
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="synthllm-airflow-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ.pop("SYNTHLLM_PROFILE", None)
# Deployment settings, read when synthllm_tasks.kubernetes / .sizing is imported or a DAG file
# is parsed: one exported in the shell (a build's SYNTHLLM_IMAGE_TAG, the local cluster's
# SYNTHLLM_K8S_SIZES=small) would change what the DAG and Kubernetes tests build. Tests set
# them explicitly (monkeypatch) where they are the subject; the cluster tests pass the
# cluster's own to their subprocesses.
for _name in (
    "SYNTHLLM_K8S_NAMESPACE",
    "SYNTHLLM_IMAGE_REGISTRY",
    "SYNTHLLM_IMAGE_TAG",
    "SYNTHLLM_IMAGE_PULL_POLICY",
    "SYNTHLLM_SPARK_RUNTIME",
    "SYNTHLLM_K8S_GPUS",
    "SYNTHLLM_K8S_SIZES",
    "SYNTHLLM_GPU_POOL",
):
    os.environ.pop(_name, None)
if str(DAGS) not in sys.path:
    sys.path.insert(0, str(DAGS))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def _airflow_home():
    """Remove the throw-away AIRFLOW_HOME at the end of the session."""
    yield os.environ["AIRFLOW_HOME"]
    shutil.rmtree(os.environ["AIRFLOW_HOME"], ignore_errors=True)


@pytest.fixture
def make_config(tmp_path):
    """Build a local-profile config rooted in a temp folder, with extra overrides."""
    from jobs.config import load_config

    def _make(*overrides: str, root: Path | None = None):
        root_uri = f"file://{root or tmp_path / 'data'}"
        return load_config("local", None, [f'storage.root_uri="{root_uri}"', *overrides])

    return _make


@pytest.fixture(scope="session")
def spark():
    """The one SparkSession of the test session (local[2], few shuffle partitions)."""
    from jobs.config import load_config
    from jobs.spark import build_session

    # One JVM runs every test's jobs. A broadcast join's hash table takes a whole memory page
    # (64 MB at a 4 GB heap) until the cleaner frees it after a GC: smaller pages and a GC
    # every minute keep the session's heap from filling between GCs.
    settings = '{"spark.buffer.pageSize" = "2m", "spark.cleaner.periodicGC.interval" = "1min"}'
    overrides = ["spark.master=local[2]", "spark.shuffle_partitions=2", f"spark.conf={settings}"]
    session = build_session(load_config("local", None, overrides), "synthllm-tests")
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def _spark_held(request):
    """A test on the session's Spark runs inside ``jobs.spark.held``, as a job does: what it
    persisted or broadcast is freed when it ends, not kept for the rest of the session."""
    if "spark" not in request.fixturenames:
        yield
        return
    from jobs.spark import held

    with held():
        yield


@pytest.fixture(scope="session")
def s3_server():
    """moto's standalone S3 server on loopback; yields its endpoint URL."""
    port = _free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("moto_server did not start")
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh bucket on the loopback S3 server; yields (endpoint, bucket)."""
    import uuid

    import boto3

    bucket = f"t-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    return s3_server, bucket
