"""What a failed job tells its runner: permanent (do not retry), transient (retry) or unexpected.

A job process exits with

- ``EXIT_PERMANENT`` (2): retrying cannot help — a bad config or argument, corrupt input under
  the ``fail`` policy, a critical expectation failure, a publish refusal, a missing input.
  The task runners (``dags/synthllm_tasks``) fail the task without retries.
- ``EXIT_TRANSIENT`` (75, ``EX_TEMPFAIL`` of sysexits.h): the world was in the way — S3 or
  network errors, out of memory, a lost Spark executor. Retried with backoff.
- ``EXIT_UNEXPECTED`` (1): anything else (a bug). Retried like a transient failure, since the
  runner cannot tell; the log holds the traceback.

Errors declare their kind by subclassing ``PermanentError`` or ``TransientError``; third-party
errors (botocore, OSError, py4j/Spark) are recognised by ``classify``.
"""

from __future__ import annotations

import errno
import re
import socket
import sys
from collections.abc import Iterator

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_PERMANENT = 2
EXIT_TRANSIENT = 75


class PermanentError(Exception):
    """A failure that the same job, rerun on the same input and config, would repeat."""


class TransientError(Exception):
    """A failure of the environment (network, storage, capacity) that a later try may not meet."""


# errno values of network failures (a reset connection, an unreachable or slow host).
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
        errno.EPIPE,
    }
)
# botocore exception classes of a failed connection or a throttled / unavailable service.
_BOTOCORE_TRANSIENT = (
    "HTTPClientError",  # base of EndpointConnectionError, ConnectionClosedError, timeouts
    "ConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "IncompleteReadError",  # a GetObject body cut short: the connection dropped mid-read
)
_AWS_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "503",
        "500",
    }
)
# S3 answers that a rerun cannot change: the bucket or the credentials are configured wrong.
_AWS_PERMANENT_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NoSuchBucket",
        "InvalidBucketName",
    }
)
# What a failed Spark action (a py4j ``Py4JJavaError`` or a pyspark ``*Exception``) says when
# an executor died, ran out of memory or lost its connection to S3.
_SPARK_TRANSIENT = re.compile(
    r"java\.lang\.OutOfMemoryError|SparkOutOfMemoryError|ExecutorLostFailure|"
    r"FetchFailedException|Container killed|exited caused by one of the running tasks|"
    r"java\.net\.(SocketTimeoutException|SocketException|ConnectException|"
    r"UnknownHostException|NoRouteToHostException)|ConnectTimeoutException|"
    r"SdkClientException|AWSClientIOException|Unable to execute HTTP request|"
    r"Connection reset|Connection refused|Broken pipe|Status Code: 50[0234]|SlowDown|"
    # S3A's names for an S3 500/503 (InternalError): a failed read, never a corrupt file.
    r"AWSStatus500Exception|AWSServiceThrottledException|Error Code: InternalError"
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes/contexts, outermost first (each once)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _botocore_transient(exc: BaseException) -> bool:
    # botocore is only looked at when an error of it was raised, i.e. when it is imported.
    bc = sys.modules.get("botocore.exceptions")
    if bc is None:
        return False
    classes = tuple(getattr(bc, name) for name in _BOTOCORE_TRANSIENT if hasattr(bc, name))
    if isinstance(exc, classes):
        return True
    if isinstance(exc, bc.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in _AWS_TRANSIENT_CODES or status in (500, 502, 503, 504)
    return False


def _botocore_permanent(exc: BaseException) -> bool:
    bc = sys.modules.get("botocore.exceptions")
    if bc is None or not isinstance(exc, bc.ClientError):
        return False
    return exc.response.get("Error", {}).get("Code") in _AWS_PERMANENT_CODES


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` itself (not its causes) is a known transient failure."""
    # socket.gaierror: DNS, which a cluster's resolver fails now and then under load.
    if isinstance(
        exc, TransientError | MemoryError | ConnectionError | TimeoutError | socket.gaierror
    ):
        return True
    if _botocore_transient(exc):
        return True
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return True
    module = type(exc).__module__ or ""
    if module.startswith(("py4j", "pyspark")):
        # Py4JNetworkError: the JVM went away under the driver (killed, out of memory).
        return type(exc).__name__ == "Py4JNetworkError" or bool(_SPARK_TRANSIENT.search(str(exc)))
    return False


def classify(exc: BaseException) -> int:
    """The exit code for ``exc``: the first permanent or transient error in its chain wins."""
    for link in _chain(exc):
        if isinstance(link, PermanentError) or _botocore_permanent(link):
            return EXIT_PERMANENT
        if is_transient(link):
            return EXIT_TRANSIENT
    return EXIT_UNEXPECTED


def kind(code: int) -> str:
    """A word for an exit code, for logs: ``permanent``, ``transient`` or ``unexpected``."""
    return {EXIT_PERMANENT: "permanent", EXIT_TRANSIENT: "transient"}.get(code, "unexpected")
