"""Which failed Spark reads name a corrupt file: an S3 500 while reading one never does."""

from __future__ import annotations

import pytest

from jobs.errors import EXIT_PERMANENT, EXIT_TRANSIENT, classify
from jobs.ingest.reader import explain_read_failure
from jobs.ingest.rules import CorruptFileError

# The shape of a failed Spark action: a py4j exception whose text holds the Java causes.
Py4JJavaError = type("Py4JJavaError", (Exception,), {"__module__": "py4j.protocol"})
FAILED = (
    "Job aborted.\norg.apache.spark.SparkException: [FAILED_READ_FILE.NO_HINT] Encountered "
    "error while reading file s3a://b/corpus/s/a.parquet.  SQLSTATE: KD001"
)


@pytest.mark.parametrize(
    "cause",
    [
        "org.apache.hadoop.fs.s3a.AWSStatus500Exception: read on s3a://b/corpus/s/a.parquet: "
        "software.amazon.awssdk.services.s3.model.S3Exception: We encountered an internal "
        "error. Please try again. (Service: S3, Status Code: 500, Request ID: x)",
        "com.amazonaws.services.s3.model.AmazonS3Exception: We encountered an internal error. "
        "(Service: Amazon S3; Status Code: 500; Error Code: InternalError; Request ID: x)",
        "org.apache.hadoop.fs.s3a.AWSServiceThrottledException: read: SlowDown",
    ],
)
def test_an_s3_500_while_reading_is_transient_not_a_corrupt_file(cause):
    exc = Py4JJavaError(f"{FAILED}\nCaused by: {cause}")
    assert explain_read_failure(exc) is None  # the caller re-raises the Spark error itself
    assert classify(exc) == EXIT_TRANSIENT


def test_a_broken_file_is_still_named_as_corrupt():
    exc = Py4JJavaError(f"{FAILED}\nCaused by: java.io.EOFException: Unexpected end of input")
    corrupt = explain_read_failure(exc)
    assert isinstance(corrupt, CorruptFileError)
    assert corrupt.uri == "s3://b/corpus/s/a.parquet"
    assert classify(corrupt) == EXIT_PERMANENT
