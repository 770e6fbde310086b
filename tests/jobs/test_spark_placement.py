"""jobs/spark.py: which settings depend on where the driver runs (no SparkSession here)."""

from __future__ import annotations

import pytest

from jobs.spark import is_local_master, placement_settings

JARS = ["/opt/synthllm/jars/hadoop-aws-3.4.2.jar", "/opt/synthllm/jars/graphframes.jar"]


@pytest.mark.parametrize("master", ["local", "local[2]", "local[*]"])
def test_local_masters(master):
    assert is_local_master(master)


@pytest.mark.parametrize(
    "master",
    ["", "k8s://https://10.0.0.1:443", "spark://host:7077", "localhost", "local-cluster[2,1,1024]"],
)
def test_other_masters_are_not_local(master):
    assert not is_local_master(master)


def test_a_local_driver_gets_the_loopback_host_and_the_jars(monkeypatch):
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.7")
    assert placement_settings("local[2]", JARS) == {
        "spark.driver.host": "127.0.0.7",
        "spark.jars": ",".join(JARS),
    }


@pytest.mark.parametrize("master", ["k8s://https://$(KUBERNETES_SERVICE_HOST):443", ""])
def test_elsewhere_the_jars_go_on_both_class_paths(monkeypatch, master):
    """An empty master: the runtime set it (the driver pod's PYSPARK_SUBMIT_ARGS, or
    spark-operator), with the driver's address; spark.jars would make every executor copy
    the jars into its read-only working directory."""
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.7")
    settings = placement_settings(master, JARS)
    assert settings == {
        "spark.driver.extraClassPath": "/opt/synthllm/jars/*",
        "spark.executor.extraClassPath": "/opt/synthllm/jars/*",
    }
    assert "spark.driver.host" not in settings and "spark.jars" not in settings
    assert placement_settings(master, []) == {}
