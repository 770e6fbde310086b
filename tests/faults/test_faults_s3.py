"""S3 faults under answers.collect on the loopback S3 server (moto), injected with botocore's
``before-send`` event: transient 503s and dropped connections, a permanent AccessDenied, batch
deletes that answer 200 but list per-key errors (or delete nothing), and 500s on reads."""

from __future__ import annotations

import logging
import re

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError
from faultkit import ERRORED, NO_BOX, QIDS, SNAP, answered, committed_rows, comparable, ctx

from jobs.answers import collect
from jobs.cli import base_parser, run_job
from jobs.commit import SUCCESS
from jobs.config import load_config
from jobs.errors import EXIT_PERMANENT, EXIT_TRANSIENT, kind
from jobs.layout import Layout
from jobs.storage import Storage, join

KEPT = sorted(set(QIDS) - NO_BOX - ERRORED)


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_):
        yield self.data


def _error(status: int, code: str) -> AWSResponse:
    body = f"<Error><Code>{code}</Code><Message>injected by tests/faults</Message></Error>"
    return AWSResponse("http://fault", status, {}, _Body(body.encode()))


def _delete_result(request, fail_keys: bool) -> AWSResponse:
    """A 200 DeleteObjects answer that deletes nothing: every key in Errors, or none listed."""
    keys = re.findall(r"<Key>(.*?)</Key>", request.body.decode() if request.body else "")
    errors = "".join(
        f"<Error><Key>{k}</Key><Code>InternalError</Code><Message>injected</Message></Error>"
        for k in keys
    )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"{errors if fail_keys else ''}</DeleteResult>"
    )
    return AWSResponse("http://fault", 200, {}, _Body(body.encode()))


class S3Faults:
    """Fail chosen S3 operations: ``plan[op]`` = (how many calls, fault[, URL substring]).

    A fault is 'reset', (status, code), or for DeleteObjects 'key_errors' (200 listing every
    key as not deleted) or 'kept' (200, nothing deleted, nothing said). With a substring,
    only calls whose URL holds it count.
    """

    def __init__(self) -> None:
        self.plan: dict[str, tuple] = {}
        self.injected: dict[str, int] = {}

    def __call__(self, request, event_name: str, **_):
        op = event_name.rsplit(".", 1)[-1]
        left, fault, *only = self.plan.get(op, (0, None))
        if left <= 0 or (only and only[0] not in request.url):
            return None
        self.plan[op] = (left - 1, fault, *only)
        self.injected[op] = self.injected.get(op, 0) + 1
        if fault == "reset":
            raise ConnectionClosedError(endpoint_url=request.url)
        if fault in ("key_errors", "kept"):
            return _delete_result(request, fault == "key_errors")
        return _error(*fault)


@pytest.fixture
def s3_faults():
    """An injector on boto3's default session (Storage's clients are made from it)."""
    faults = S3Faults()
    events = boto3._get_default_session().events
    events.register("before-send.s3", faults)
    yield faults
    events.unregister("before-send.s3", faults)


@pytest.fixture
def s3_cfg(s3_bucket):
    endpoint, bucket = s3_bucket
    overrides = [f'storage.root_uri="s3://{bucket}/data"', f'storage.s3_endpoint_url="{endpoint}"']
    cfg = load_config("local", None, overrides)
    answered(cfg)
    return cfg, overrides


def _collect(overrides, attempt: str) -> int:
    argv = ["--snapshot", SNAP, "--attempt", attempt]
    for item in overrides:
        argv += ["--set", item]
    return run_job(
        "answers.collect", argv, collect.run, base_parser("answers.collect"), raise_errors=False
    )


def _check_balanced(cfg) -> str:
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    qa = committed_rows(storage, layout.table("qa"), "question_id")
    quarantine = committed_rows(storage, layout.quarantine("answers"), "raw")
    assert [r["question_id"] for r in qa] == KEPT
    assert len(quarantine) == len(NO_BOX | ERRORED)
    return f"{len(QIDS)} = {len(qa)} + {len(quarantine)} quarantined, no dup ids"


def test_transient_s3_errors_are_retried_by_botocore(s3_cfg, s3_faults, record):
    cfg, overrides = s3_cfg
    s3_faults.plan = {
        "PutObject": (2, (503, "ServiceUnavailable")),
        "CopyObject": (2, (503, "SlowDown")),
        "DeleteObjects": (1, "reset"),
        "ListObjectsV2": (1, "reset"),
    }
    assert _collect(overrides, "1") == 0
    assert s3_faults.injected == {"PutObject": 2, "CopyObject": 2, "DeleteObjects": 1,
                                  "ListObjectsV2": 1}  # fmt: skip
    record(
        "S3 503 x4 + connection reset x2",
        "answers.collect (s3)",
        f"botocore retried; committed, {_check_balanced(cfg)}",
    )


def test_s3_errors_past_the_retries_exit_transient_and_the_rerun_commits(
    s3_cfg, s3_faults, monkeypatch, caplog, record
):
    cfg, overrides = s3_cfg
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # keep the backoff short
    s3_faults.plan = {"CopyObject": (100, (503, "SlowDown"))}
    with caplog.at_level(logging.ERROR, logger="jobs"):
        code = _collect(overrides, "1")
    assert code == EXIT_TRANSIENT
    assert "SlowDown" in caplog.text
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    assert not storage.exists(join(layout.table("qa"), SUCCESS))
    s3_faults.plan = {}
    assert _collect(overrides, "2") == 0
    record(
        "S3 503 on every CopyObject",
        "answers.collect (s3)",
        f"exit {code} ({kind(code)}), qa uncommitted; rerun committed, {_check_balanced(cfg)}",
    )


def test_permanent_s3_error_fails_clearly_without_committing(s3_cfg, s3_faults, caplog, record):
    cfg, overrides = s3_cfg
    s3_faults.plan = {"PutObject": (100, (403, "AccessDenied"))}
    with caplog.at_level(logging.ERROR, logger="jobs"):
        code = _collect(overrides, "1")
    # AccessDenied is not retried by botocore and is permanent for the task runner: a rerun
    # cannot fix credentials or a bucket policy.
    assert code == EXIT_PERMANENT
    assert s3_faults.injected["PutObject"] == 1
    assert "AccessDenied" in caplog.text
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    for uri in (layout.table("qa"), layout.quarantine("answers")):
        assert not storage.exists(join(uri, SUCCESS))
    record(
        "S3 AccessDenied on PutObject",
        "answers.collect (s3)",
        f"not retried, exit {code} ({kind(code)}), log names AccessDenied, nothing committed",
    )


def test_missing_bucket_fails_clearly(s3_server, caplog, record):
    overrides = ['storage.root_uri="s3://no-such-bucket-faults/data"',
                 f'storage.s3_endpoint_url="{s3_server}"']  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="jobs"):
        code = _collect(overrides, "1")
    assert code == EXIT_PERMANENT  # a missing bucket is a configuration error
    assert "NoSuchBucket" in caplog.text
    record(
        "S3 bucket missing (NoSuchBucket)",
        "answers.collect (s3)",
        f"exit {code} ({kind(code)}), log names NoSuchBucket, nothing written",
    )


def _commits(cfg) -> list[tuple[str, str]]:
    """(attempt, rows) of qa and quarantine/answers; the staging of a failed try aside."""
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    return [
        (
            storage.read_json(join(uri, SUCCESS))["attempt"],
            comparable(committed_rows(storage, uri, id_column, tmp_ok=True)),
        )
        for uri, id_column in ((layout.table("qa"), "question_id"),
                               (layout.quarantine("answers"), "raw"))
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("fault", "says"),
    [("key_errors", "keys not deleted"), ("kept", "still there after its delete")],
)
def test_batch_delete_that_deletes_nothing_stops_the_commit(
    s3_cfg, s3_faults, caplog, record, fault, says
):
    cfg, overrides = s3_cfg
    collect.run(ctx(cfg))  # run "faults", try 1: the commit the next attempt replaces
    before = _commits(cfg)
    # The first batch delete of the rerun withdraws quarantine/answers/_SUCCESS.
    s3_faults.plan = {"DeleteObjects": (1, fault)}
    with caplog.at_level(logging.ERROR, logger="jobs"):
        code = _collect(overrides, "2")
    assert s3_faults.injected == {"DeleteObjects": 1}
    assert code == EXIT_TRANSIENT and says in caplog.text
    assert _commits(cfg) == before  # nothing was deleted behind a marker readers trust
    s3_faults.plan = {}
    assert _collect(overrides, "3") == 0
    record(
        f"S3 DeleteObjects 200, {fault.replace('_', ' ')}",
        "answers.collect (s3)",
        f"exit {code} ({kind(code)}), old commit intact, same rows; rerun committed, "
        f"{_check_balanced(cfg)}",
    )


def test_s3_500_on_reads_is_transient_not_a_corrupt_file(
    s3_cfg, s3_faults, monkeypatch, caplog, record
):
    cfg, overrides = s3_cfg
    s3_faults.plan = {"GetObject": (2, (500, "InternalError"), ".parquet")}
    assert _collect(overrides, "1") == 0  # botocore retried both
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # keep the backoff short
    s3_faults.plan = {"GetObject": (100, (500, "InternalError"), ".parquet")}
    with caplog.at_level(logging.ERROR, logger="jobs"):
        code = _collect(overrides, "2")
    assert code == EXIT_TRANSIENT
    assert "InternalError" in caplog.text
    assert "cannot read Parquet" not in caplog.text and "corrupt" not in caplog.text
    s3_faults.plan = {}
    assert _collect(overrides, "3") == 0
    record(
        "S3 500 InternalError on Parquet reads",
        "answers.collect (s3)",
        f"x2: retried, committed; every read: exit {code} ({kind(code)}), not 'corrupt'; "
        f"rerun committed, {_check_balanced(cfg)}",
    )
