"""The SparkSession builder with the real jars: s3a against a loopback S3 API, GraphFrames."""

from pathlib import Path

import pytest

from jobs.config import load_config
from jobs.spark import (
    arrow_chunks,
    broadcast,
    dense_ranks,
    has_graphframes_jar,
    held,
    jar_paths,
    persisted,
    require_graphframes,
    scratch_folder,
    ship_files,
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


def test_dense_ranks_number_rows_in_order_across_partitions(spark):
    import random

    rng = random.Random(3)
    rows = [(f"d{i:04d}", rng.randint(1, 9)) for i in rng.sample(range(3000), 3000)]
    df = spark.createDataFrame(rows, "doc_id string, d_size long").repartition(7)
    with held():
        ranked = dense_ranks(df, ["d_size", "doc_id"]).collect()
    assert sorted(r["rank"] for r in ranked) == list(range(3000))  # 0..n-1, each once
    by_rank = [(r["d_size"], r["doc_id"]) for r in sorted(ranked, key=lambda r: r["rank"])]
    assert by_rank == sorted((s, d) for d, s in rows)
    with held():
        empty = dense_ranks(df.limit(0), ["d_size", "doc_id"])
        assert empty.count() == 0 and empty.columns == ["doc_id", "d_size", "rank"]


def test_arrow_chunks_bring_every_row_a_chunk_at_a_time(spark):
    df = spark.range(0, 10_000, numPartitions=3).selectExpr("id", "id * 2 AS twice")
    chunks = list(arrow_chunks(df, 1_000))
    assert sorted(i for c in chunks for i in c["id"].to_pylist()) == list(range(10_000))
    assert all(c["twice"].to_pylist() == [2 * i for i in c["id"].to_pylist()] for c in chunks)
    # No chunk spans two partitions; each holds 1,000 rows or more (a partition's rest aside).
    assert len(chunks) >= 3 and all(len(c) >= 1_000 for c in chunks)
    whole = list(arrow_chunks(df, 20_000))
    assert len(whole) == 3 and sorted(len(c) for c in whole) == [3333, 3333, 3334]


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


def test_a_scratch_folder_lives_as_long_as_its_scope(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARK_LOCAL_DIRS", f"{tmp_path},/elsewhere")
    with held():
        folder = scratch_folder("walks-")
        (Path(folder) / "a.npy").write_bytes(b"x")
        assert Path(folder).parent == tmp_path and Path(folder).name.startswith("walks-")
    assert not Path(folder).exists()


def test_shipped_files_are_the_driver_s_own_locally_and_fetched_by_spark_on_a_cluster(tmp_path):
    class Context:  # records what a cluster's SparkContext would be asked to fetch
        def __init__(self, master):
            self.master, self.added = master, []

        def addFile(self, path):  # noqa: N802 (Spark's name)
            self.added.append(path)

    class Session:
        def __init__(self, master):
            self.sparkContext = Context(master)  # noqa: N815 (Spark's name)

    local = Session("local[2]")
    assert ship_files(local, str(tmp_path), ["a.npy"]).path("a.npy") == str(tmp_path / "a.npy")
    assert local.sparkContext.added == []
    cluster = Session("k8s://https://10.0.0.1:6443")
    shipped = ship_files(cluster, str(tmp_path), ["a.npy", "b.npy"])
    assert shipped.folder is None
    assert cluster.sparkContext.added == [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]


def test_files_spark_fetches_are_mapped_by_its_python_workers(spark):
    """The cluster path through a real session: addFile, then SparkFiles in the workers."""
    import uuid

    import numpy as np

    with held():
        folder = scratch_folder("ship-")
        name = f"{uuid.uuid4().hex}.npy"  # addFile names are unique per session
        np.save(Path(folder) / name, np.arange(10, dtype=np.int32))
        shipped = ship_files(spark, folder, [name], fetch=True)
        assert shipped.folder is None

        def read(rows):
            values = np.load(shipped.path(name), mmap_mode="r")
            return [(int(values[r.id]), shipped.path(name)) for r in rows]

        got = spark.range(10).repartition(2).rdd.mapPartitions(read).collect()
    assert sorted(v for v, _ in got) == list(range(10))
    assert all(not path.startswith(folder) for _, path in got)  # Spark's copy, not the driver's


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
