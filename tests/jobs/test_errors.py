"""Failures say what they are: each error kind maps to its exit code, in-process and as a job."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import errors
from jobs.cli import run_job
from jobs.commit import UncommittedInputError
from jobs.config import ConfigError
from jobs.errors import EXIT_PERMANENT, EXIT_TRANSIENT, EXIT_UNEXPECTED, classify
from jobs.ingest.rules import CorruptFileError, IngestInputError
from jobs.publish.publish import PublishRefusedError
from jobs.validate.results import ValidationFailedError

REPO = Path(__file__).resolve().parents[2]


def _botocore():
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

    endpoint = EndpointConnectionError(endpoint_url="http://127.0.0.1:9/synthllm")
    timeout = ReadTimeoutError(endpoint_url="http://127.0.0.1:9/synthllm")
    slow = ClientError({"Error": {"Code": "SlowDown", "Message": "reduce"}}, "PutObject")
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject")
    return endpoint, timeout, slow, denied


@pytest.mark.parametrize(
    "exc",
    [
        ConfigError("generation.engine: unknown"),
        ValidationFailedError("qa: expect_column_values_to_not_be_null(answer)"),
        PublishRefusedError("snapshot not validated"),
        UncommittedInputError("documents_raw has no _SUCCESS"),
        IngestInputError("no input files"),
        CorruptFileError("file:///c/a.jsonl.gz", "Unexpected end of input stream"),
    ],
)
def test_permanent_errors(exc):
    assert isinstance(exc, errors.PermanentError)
    assert classify(exc) == EXIT_PERMANENT == 2


def test_transient_errors():
    endpoint, timeout, slow, _ = _botocore()
    transient = [
        endpoint,
        timeout,
        slow,
        MemoryError(),
        ConnectionResetError(errno.ECONNRESET, "reset by peer"),
        TimeoutError("read timed out"),
        OSError(errno.ENETUNREACH, "Network is unreachable"),
        socket.gaierror(-3, "Temporary failure in name resolution"),
        errors.TransientError("shard lease lost"),
    ]
    assert [classify(e) for e in transient] == [EXIT_TRANSIENT] * len(transient)
    assert EXIT_TRANSIENT == 75  # sysexits.h EX_TEMPFAIL


def test_unexpected_errors_are_neither():
    for exc in (KeyError("x"), ValueError("bad"), FileNotFoundError(2, "gone")):
        assert classify(exc) == EXIT_UNEXPECTED == 1, exc


def test_s3_permission_and_bucket_errors_are_permanent():
    from botocore.exceptions import ClientError

    _, _, _, denied = _botocore()
    missing = ClientError({"Error": {"Code": "NoSuchBucket", "Message": "gone"}}, "PutObject")
    assert classify(denied) == classify(missing) == EXIT_PERMANENT
    wrapped = RuntimeError("commit failed")
    wrapped.__cause__ = denied
    assert classify(wrapped) == EXIT_PERMANENT


def test_spark_failures_are_classified_by_their_java_cause():
    # The shape of a failed Spark action: a pyspark/py4j exception whose text holds the cause.
    spark_error = type("Py4JJavaError", (Exception,), {"__module__": "py4j.protocol"})
    oom = spark_error("Job aborted.\nCaused by: java.lang.OutOfMemoryError: Java heap space")
    s3 = spark_error("Caused by: software.amazon.awssdk.core.exception.SdkClientException: x")
    lost = spark_error("ExecutorLostFailure (executor 3 exited caused by one of the running tasks)")
    bug = spark_error("Caused by: org.apache.spark.SparkArithmeticException: divide by zero")
    assert [classify(e) for e in (oom, s3, lost)] == [EXIT_TRANSIENT] * 3
    assert classify(bug) == EXIT_UNEXPECTED


def test_the_outermost_declared_kind_wins_in_a_chain():
    try:
        try:
            raise ConnectionResetError(errno.ECONNRESET, "reset")
        except OSError as net:
            raise RuntimeError("upload failed") from net
    except RuntimeError as wrapped:
        assert classify(wrapped) == EXIT_TRANSIENT
    try:
        try:
            raise KeyError("missing column")
        except KeyError as bug:
            raise ConfigError("schema") from bug
    except ConfigError as wrapped:
        assert classify(wrapped) == EXIT_PERMANENT


def _job(exc: BaseException | None):
    def run(ctx):
        if exc is not None:
            raise exc

    return run


ARGV = ["--snapshot", "2026-11-01"]


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (None, 0),
        (ValidationFailedError("critical"), 2),
        (PublishRefusedError("not validated"), 2),
        (MemoryError(), 75),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), 75),
        (ZeroDivisionError("bug"), 1),
    ],
)
def test_run_job_returns_the_exit_code_of_the_failure(exc, code, caplog):
    assert run_job("probe", ARGV, _job(exc), raise_errors=False) == code
    if exc is not None:
        assert any(r.exc_info and r.exc_info[1] is exc for r in caplog.records)


def test_run_job_with_explicit_argv_raises_and_bad_config_is_permanent():
    with pytest.raises(ValidationFailedError):
        run_job("probe", ARGV, _job(ValidationFailedError("critical")))
    assert run_job("probe", [*ARGV, "--set", "nope.key=1"], _job(None)) == EXIT_PERMANENT
    assert run_job("probe", ["--snapshot", "../etc"], _job(None)) == EXIT_PERMANENT


def test_a_job_process_exits_with_the_code_of_its_failure(tmp_path):
    """As the task runner sees it: ``python -m`` a job module, read the exit status."""
    job = tmp_path / "probe_job.py"
    job.write_text(
        "import sys\n"
        "from jobs.cli import base_parser, run_job\n"
        "from jobs.ingest.rules import CorruptFileError\n"
        "def run(ctx):\n"
        "    if ctx.args.what == 'corrupt':\n"
        "        raise CorruptFileError('file:///c/a.jsonl.gz', 'not in gzip format')\n"
        "    raise MemoryError()\n"
        "if __name__ == '__main__':\n"
        "    parser = base_parser('probe')\n"
        "    parser.add_argument('what')\n"
        "    raise SystemExit(run_job('probe', None, run, parser))\n"
    )
    stderr = {}
    for what, code in (("corrupt", EXIT_PERMANENT), ("oom", EXIT_TRANSIENT)):
        result = subprocess.run(
            [sys.executable, "-m", "probe_job", "--snapshot", "2026-11-01", what],
            cwd=tmp_path,
            env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == code, result.stderr
        stderr[what] = result.stderr
    assert "probe: failed, permanent (exit code 2)" in stderr["corrupt"]
    assert "corrupt input file file:///c/a.jsonl.gz: not in gzip format" in stderr["corrupt"]
    assert "probe: failed, transient (exit code 75)" in stderr["oom"]
