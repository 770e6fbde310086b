"""The one SparkSession builder: jars, s3a settings, checkpoint dir, local IP; and the scope
that releases what a job persisted or broadcast (:func:`held`).

This is the only module that imports pyspark at module level; jobs import it lazily.

Where Spark runs is the caller's business. ``spark.master`` names a local master
(``local[*]``), or is empty: then the runtime set it, and the driver's address, the executor
pods and their image with it. That is the task's pod (the client-mode driver on Spark's own
Kubernetes scheduler, configured through ``PYSPARK_SUBMIT_ARGS`` by the DAG's pod,
``dags/synthllm_tasks/kubernetes.py``) or spark-operator's spark-submit. Only a local master
gets this machine's loopback address as the driver host and the jars through ``spark.jars``;
elsewhere the jars go on the driver's and executors' class path, since ``spark.jars`` makes
every executor copy them into its working directory, which is read-only in a pod.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.broadcast import Broadcast
from pyspark.sql import DataFrame, SparkSession

from jobs.config import REPO_ROOT, PipelineConfig
from jobs.errors import PermanentError

log = logging.getLogger(__name__)

# The releases of the innermost open held() scope, newest last; None outside any.
_HELD: ContextVar[list[Callable[[], Any]] | None] = ContextVar("synthllm_held", default=None)


def jar_paths(jars_dir: str) -> list[str]:
    """All jars resolved by ``make setup`` (hadoop-aws, the AWS SDK bundle, GraphFrames)."""
    folder = Path(jars_dir)
    if not folder.is_absolute():
        folder = REPO_ROOT / folder
    return sorted(str(p) for p in folder.glob("*.jar"))


def has_graphframes_jar(jars_dir: str) -> bool:
    return any("graphframes" in Path(p).name for p in jar_paths(jars_dir))


class MissingJarError(PermanentError, RuntimeError):
    """A JVM library a job needs is not on the Spark classpath (a set-up error)."""


def require_graphframes(spark: SparkSession) -> None:
    """Fail with a set-up hint when the GraphFrames jar is not loaded in ``spark``."""
    from py4j.java_gateway import JavaClass

    # py4j resolves a name it cannot load as a JavaPackage instead of failing.
    api = getattr(spark.sparkContext._jvm.org.graphframes, "GraphFramePythonAPI", None)
    if not isinstance(api, JavaClass):
        raise MissingJarError(
            "GraphFrames is not on the Spark classpath (org.graphframes.GraphFramePythonAPI "
            f"not found; spark.jars={spark.conf.get('spark.jars', '')!r}, "
            f"extraClassPath={spark.conf.get('spark.driver.extraClassPath', '')!r}). Run "
            "`make setup`: it puts graphframes-spark4_2.13-0.11.0.jar into jars/lib (the Spark "
            "image bakes that folder)."
        )


def is_local_master(master: str) -> bool:
    """True for ``local``, ``local[N]`` and ``local[*]``: the driver and its tasks in-process."""
    return master == "local" or master.startswith("local[")


def placement_settings(master: str, jars: list[str]) -> dict[str, str]:
    """The settings that depend on where the driver runs (see the module docstring)."""
    if is_local_master(master):
        return {"spark.driver.host": os.environ["SPARK_LOCAL_IP"], "spark.jars": ",".join(jars)}
    if not jars:
        return {}
    classpath = str(Path(jars[0]).parent / "*")
    return {"spark.driver.extraClassPath": classpath, "spark.executor.extraClassPath": classpath}


def checkpoint_root(cfg: PipelineConfig) -> str:
    """``spark.checkpoint_uri``, else one fixed local folder, so sessions do not pile up."""
    return cfg.spark.checkpoint_uri or os.path.join(
        tempfile.gettempdir(), f"synthllm-checkpoints-{os.getuid()}"
    )


@contextmanager
def held() -> Iterator[None]:
    """Frames :func:`persisted` and values :func:`broadcast` inside are released on the way out.

    The graph functions return lazy frames that lean on a persisted table or a broadcast; the
    caller materialises them inside this scope (a checkpoint, a write), and the scope then
    unpersists and destroys what they held, newest first, failed or not. Without it a
    long-lived session (the tests', a notebook's, a harness running stage after stage) keeps
    every one of them in the driver's heap until a broadcast join runs out of memory.
    :func:`job_checkpoints` opens one for each job.
    """
    token = _HELD.set([])
    try:
        yield
    finally:
        releases = _HELD.get() or []
        _HELD.reset(token)
        for release in reversed(releases):
            try:
                release()
            except Exception as exc:  # a stopped context: nothing is left to free
                log.warning("spark: could not release %s: %s", release, exc)


def _hold(what: str) -> list[Callable[[], Any]]:
    releases = _HELD.get()
    if releases is None:
        raise RuntimeError(f"{what} outside jobs.spark.held(): nothing would ever release it")
    return releases


def scratch_folder(prefix: str) -> str:
    """A new folder on the driver's local disk, removed when the enclosing :func:`held` ends.

    Under Spark's first local dir (``SPARK_LOCAL_DIRS``) where one is set, else the temp dir.
    """
    releases = _hold("a scratch folder")
    local_dirs = os.environ.get("SPARK_LOCAL_DIRS", "").split(",")[0] or None
    folder = tempfile.mkdtemp(prefix=prefix, dir=local_dirs)
    releases.append(lambda: shutil.rmtree(folder, ignore_errors=True))
    return folder


@dataclass(frozen=True)
class ShippedFiles:
    """Where a Python worker finds the files :func:`ship_files` shipped (picklable)."""

    folder: str | None  # the driver's folder (local master), or None: Spark fetched them

    def path(self, name: str) -> str:
        if self.folder is not None:
            return os.path.join(self.folder, name)
        from pyspark import SparkFiles

        return SparkFiles.get(name)


def ship_files(
    spark: SparkSession, folder: str, names: list[str], fetch: bool | None = None
) -> ShippedFiles:
    """Make ``folder``'s files ``names`` readable by every Python worker, without copying them
    into each: a local master's workers share the driver's disk; on a cluster (or with
    ``fetch``) Spark fetches each file once per executor (``SparkContext.addFile``; names
    must be unique in the session). Read them while the scope that made ``folder``
    (:func:`scratch_folder`) is open.
    """
    if fetch is None:
        fetch = not is_local_master(spark.sparkContext.master)
    if not fetch:
        return ShippedFiles(folder)
    for name in names:
        spark.sparkContext.addFile(os.path.join(folder, name))
    return ShippedFiles(None)


def persisted(df: DataFrame) -> DataFrame:
    """``df`` persisted in memory and on disk until the enclosing :func:`held` scope ends."""
    releases = _hold("a persisted frame")
    out = df.persist(StorageLevel.MEMORY_AND_DISK)
    releases.append(out.unpersist)
    return out


def arrow_chunks(df: DataFrame, rows: int) -> Iterator[Any]:
    """``df``'s rows brought to the driver as ``pyarrow.Table`` chunks of about ``rows`` rows.

    One partition at a time (``toLocalIterator``), each as Arrow IPC streams of ``rows`` rows
    or more (or the partition's rest): the driver holds one partition in the JVM and one
    chunk in Python, where ``toArrow`` holds the whole table in both.
    """
    from functools import partial

    import pyarrow as pa

    for row in df.mapInArrow(partial(_ipc_chunks, rows), "chunk binary").toLocalIterator():
        yield pa.ipc.open_stream(row["chunk"]).read_all()


def _ipc_chunks(size: int, batches: Iterator[Any]) -> Iterator[Any]:
    """One row per ``size`` rows or more (or the partition's rest): an IPC stream."""
    pending: list = []
    rows = 0
    for batch in batches:
        pending.append(batch)
        rows += batch.num_rows
        if rows >= size:
            yield _ipc_row(pending)
            pending, rows = [], 0
    if pending:
        yield _ipc_row(pending)


def _ipc_row(batches: list) -> Any:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batches[0].schema) as out:
        for batch in batches:
            out.write_batch(batch)
    return pa.RecordBatch.from_arrays(
        [pa.array([sink.getvalue().to_pybytes()], pa.binary())], names=["chunk"]
    )


def dense_ranks(df: DataFrame, order: list[str], name: str = "rank") -> DataFrame:
    """``df`` with ``name``: 0, 1, 2... in ``order``, which must be a total order of its rows.

    Without a window over one partition: the rows are range-partitioned and sorted by
    ``order`` (persisted until the enclosing :func:`held` scope ends, so every pass sees the
    same partitions), numbered within each partition, and each partition's count offsets
    its numbers.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    spark = df.sparkSession
    parts = max(1, spark.sparkContext.defaultParallelism)
    ordered = persisted(df.repartitionByRange(parts, *order).sortWithinPartitions(*order))
    schema = T.StructType(
        [
            *ordered.schema.fields,
            T.StructField("_part", T.IntegerType()),
            T.StructField("_i", T.LongType()),
        ]
    )
    numbered = ordered.mapInArrow(_number_rows, schema)
    counts = dict(numbered.groupBy("_part").count().collect())
    offsets, total = [], 0
    for part in sorted(counts):
        offsets.append((part, total))
        total += counts[part]
    starts = spark.createDataFrame(offsets or [(0, 0)], "_part int, _start long")
    return numbered.join(F.broadcast(starts), "_part").select(
        *df.columns, (F.col("_start") + F.col("_i")).alias(name)
    )


def _number_rows(batches: Iterator[Any]) -> Iterator[Any]:
    import pyarrow as pa
    from pyspark import TaskContext

    part, done = TaskContext.get().partitionId(), 0
    for batch in batches:
        n = batch.num_rows
        numbers = [pa.array([part] * n, pa.int32()), pa.array(range(done, done + n), pa.int64())]
        yield pa.RecordBatch.from_arrays(
            [*batch.columns, *numbers], names=[*batch.schema.names, "_part", "_i"]
        )
        done += n


def broadcast(spark: SparkSession, value: Any) -> Broadcast:
    """``value`` broadcast until the enclosing :func:`held` scope ends, then destroyed."""
    releases = _hold("a broadcast")
    shared = spark.sparkContext.broadcast(value)
    releases.append(lambda: shared.destroy(blocking=True))
    return shared


@contextmanager
def job_checkpoints(spark: SparkSession, cfg: PipelineConfig, name: str) -> Iterator[str]:
    """Reliable checkpoints of one job go to ``{checkpoint_root}/{name}``, removed after.

    ``DataFrame.checkpoint()`` (not ``localCheckpoint()``, whose blocks die with their
    executor and fail the job) writes under the session's checkpoint dir, so that dir must be
    one the driver and every executor share: ``spark.checkpoint_uri`` on a cluster (the
    kubernetes profile's ``s3a://`` prefix). Each job gets a folder of its own, named by the
    caller (``{stage}-{snapshot}-{attempt}``), deleted on the way out, failed or not; only a
    killed driver leaves one behind, which nothing reads again. The session's dir is set back
    to the root afterwards, as :func:`build_session` left it. The job runs inside
    :func:`held`: what it persisted or broadcast is released as it ends.
    """
    root = checkpoint_root(cfg)
    folder = f"{root.rstrip('/')}/{re.sub(r'[^A-Za-z0-9._-]', '_', name)}"
    sc = spark.sparkContext
    sc.setCheckpointDir(folder)
    try:
        with held():
            yield folder
    finally:
        path = sc._jvm.org.apache.hadoop.fs.Path(folder)
        path.getFileSystem(sc._jsc.hadoopConfiguration()).delete(path, True)
        sc.setCheckpointDir(root)


def build_session(cfg: PipelineConfig, app_name: str) -> SparkSession:
    """Create (or reuse) the process's SparkSession for ``cfg``."""
    master = cfg.spark.master
    if is_local_master(master):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers need this interpreter's packages (pyarrow, torch); setdefault keeps
    # whatever spark-submit or the image already set.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    jars = jar_paths(cfg.spark.jars_dir)
    checkpoint = checkpoint_root(cfg)
    builder = (
        SparkSession.builder.appName(app_name)
        .config("spark.driver.memory", cfg.spark.driver_memory)
        .config("spark.sql.shuffle.partitions", str(cfg.spark.shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        # Hadoop's own _SUCCESS would be confused with the stage commit marker.
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if master:  # empty: the runtime (the task's pod, spark-operator) already set the master
        builder = builder.master(master)
    for key, value in {**placement_settings(master, jars), **cfg.spark.conf}.items():
        builder = builder.config(key, value)
    storage = cfg.storage
    builder = (
        builder.config("spark.hadoop.fs.s3a.impl", "org.apache.hadoop.fs.s3a.S3AFileSystem")
        .config("spark.hadoop.fs.s3a.endpoint.region", storage.s3_region)
        .config(
            "spark.hadoop.fs.s3a.aws.credentials.provider",
            "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider",
        )
    )
    if storage.s3_endpoint_url:
        builder = (
            builder.config("spark.hadoop.fs.s3a.endpoint", storage.s3_endpoint_url)
            .config("spark.hadoop.fs.s3a.path.style.access", "true")
            .config(
                "spark.hadoop.fs.s3a.connection.ssl.enabled",
                str(storage.s3_endpoint_url.startswith("https")).lower(),
            )
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    spark.sparkContext.setCheckpointDir(checkpoint)
    log.info("spark %s master=%s jars=%d", spark.version, spark.sparkContext.master, len(jars))
    return spark
