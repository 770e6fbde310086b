"""The SparkSession builder with the real jars: s3a against a loopback S3 API, GraphFrames."""

import pytest

from jobs.config import load_config
from jobs.spark import (
    broadcast,
    has_graphframes_jar,
    held,
    jar_paths,
    persisted,
    require_graphframes,
)


def test_builder_adds_jars(spark):
    cfg = load_config("local")
    jars = spark.sparkContext.getConf().get("spark.jars", "")
    for path in jar_paths(cfg.spark.jars_dir):
        assert path in jars
    assert any("hadoop-aws" in p for p in jar_paths(cfg.spark.jars_dir))


def test_builder_applies_the_configured_spark_properties(spark):
    conf = spark.sparkContext.getConf()  # the test session sets these (tests/conftest.py)
    assert conf.get("spark.buffer.pageSize") == "2m"
    assert conf.get("spark.cleaner.periodicGC.interval") == "1min"


def test_s3a_write_and_read(spark, s3_bucket):
    endpoint, bucket = s3_bucket
    hconf = spark.sparkContext._jsc.hadoopConfiguration()
    # Point the session-wide s3a client at this test's loopback server.
    for key, value in {
        "fs.s3a.endpoint": endpoint,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.access.key": "testing",
        "fs.s3a.secret.key": "testing",
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    }.items():
        hconf.set(key, value)
    uri = f"s3a://{bucket}/t/parquet"
    spark.range(100).withColumnRenamed("id", "n").write.mode("overwrite").parquet(uri)
    back = spark.read.parquet(uri)
    assert back.count() == 100
    assert back.agg({"n": "sum"}).collect()[0][0] == sum(range(100))

    import boto3

    keys = [
        o["Key"]
        for o in boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        .list_objects_v2(Bucket=bucket, Prefix="t/parquet/")
        .get("Contents", [])
    ]
    assert any(k.endswith(".parquet") for k in keys)


def test_setup_put_the_graphframes_jars_on_the_classpath(spark):
    # A missing jar is a set-up error (scripts/setup.sh), never a skipped test.
    assert has_graphframes_jar(load_config("local").spark.jars_dir)
    jars = spark.sparkContext.getConf().get("spark.jars", "")
    assert "graphframes-spark4_2.13-0.11.0.jar" in jars
    assert "graphframes-graphx-spark4_2.13-0.11.0.jar" in jars
    require_graphframes(spark)  # raises MissingJarError when the class is not loadable


def test_graphframes_connected_components(spark):
    from graphframes import GraphFrame

    v = spark.createDataFrame([(x,) for x in "abcdef"], ["id"])
    e = spark.createDataFrame([("a", "b"), ("b", "c"), ("d", "e")], ["src", "dst"])
    comps = {r["id"]: r["component"] for r in GraphFrame(v, e).connectedComponents().collect()}
    assert comps["a"] == comps["b"] == comps["c"]
    assert comps["d"] == comps["e"]
    assert len({comps["a"], comps["d"], comps["f"]}) == 3


def _persistent(spark) -> set[int]:
    return set(spark.sparkContext._jsc.getPersistentRDDs().keys())


def test_held_frees_its_own_frames_and_broadcasts_newest_first(spark):
    start = _persistent(spark)
    with held():
        outer = persisted(spark.range(10))
        assert outer.count() == 10
        with held():
            inner = persisted(spark.range(5))
            shared = broadcast(spark, list(range(1000)))
            assert inner.count() == 5 and shared._jbroadcast.isValid()
            both = _persistent(spark)
        assert len(both - start) == 2
        assert len(_persistent(spark) - start) == 1  # the outer frame is still held
        assert not shared._jbroadcast.isValid()
        assert outer.count() == 10
    assert _persistent(spark) == start


def test_held_frees_on_an_error_too(spark):
    start = _persistent(spark)
    with pytest.raises(RuntimeError, match="mid-job"), held():
        persisted(spark.range(3)).count()
        raise RuntimeError("mid-job")
    assert _persistent(spark) == start


def test_persisting_outside_held_is_refused(spark):
    from jobs import spark as spark_module

    token = spark_module._HELD.set(None)  # this test's own scope (conftest) set aside
    try:
        with pytest.raises(RuntimeError, match="outside jobs.spark.held"):
            persisted(spark.range(3))
        with pytest.raises(RuntimeError, match="outside jobs.spark.held"):
            broadcast(spark, 1)
    finally:
        spark_module._HELD.reset(token)


def test_no_job_takes_a_local_checkpoint():
    # A local checkpoint's blocks live on one executor: lose it and the job fails on a cluster.
    from pathlib import Path

    jobs = Path(__file__).resolve().parents[2] / "jobs"
    calls = [
        f"{path.relative_to(jobs)}:{n}"
        for path in sorted(jobs.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if ".localCheckpoint(" in line
    ]
    assert calls == []
