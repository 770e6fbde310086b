r"""Is a predicted final answer equal to the gold one? math_verify, with a hard time limit.

Equivalence is math_verify's (``parse`` then ``verify``, both answers wrapped in
``\boxed{}``): ``1/2``, ``0.5`` and ``\frac{1}{2}`` are equal; sets ignore order
(``\{1,2\}`` = ``\{2,1\}``, and so do comma lists: ``-7, -6`` = ``-6, -7``); intervals
compare as intervals (``(1,2]`` differs from ``[1,2]``); ``x = 3`` equals ``3``. Percentages
follow math_verify's MATH convention: ``50\%`` equals ``0.5`` (and ``50`` when the gold
answer is ``50\%``), since graders accept both readings. Answers math_verify cannot parse
are compared as normalised strings (:func:`jobs.answers.parse.normalise_answer`).

Time limits, two layers: math_verify's own (``signal.alarm``, whole seconds, a third of
the budget for each of the two parses and the comparison) stops slow sympy work written in
Python; and every comparison runs in a worker process that the parent kills when the budget
is spent, since a comparison stuck in C (a power tower like ``10^{10^{10}}``) ignores
signals. A killed comparison counts as wrong (status ``timeout``); the next one starts a
fresh worker. math_verify's alarms work only in a main thread: they run in the worker's, so a
:class:`Verifier` may be used from any thread of the parent (one comparison at a time per
verifier, under a lock).

The worker parses model output with sympy, so it gets no secrets: it is started as a fresh
interpreter (``subprocess``, not ``multiprocessing``, whose spawn copies the parent's whole
environment) with :func:`worker_environment`, the parent's environment less every cloud
credential and secret-looking variable; parent and worker talk over a socket pair.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.metadata
import logging
import math
import multiprocessing.connection
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobs.answers.parse import normalise_answer

log = logging.getLogger(__name__)

CORRECT, WRONG, TIMEOUT, ERROR, NO_ANSWER = "correct", "wrong", "timeout", "error", "no_answer"
_STARTUP_TIMEOUT_S = 120.0  # importing sympy + math_verify on a busy 2-core machine
# Variables the worker never sees: cloud and registry credentials, and any name that says it
# holds a secret.
_SECRET_PREFIXES = (
    "AWS_", "AZURE_", "GOOGLE_", "GCP_", "GCLOUD_", "CLOUDSDK_", "OPENAI_", "ANTHROPIC_",
    "HF_", "HUGGING_FACE_", "MINIO_", "SYNTHLLM_S3_", "AIRFLOW_CONN_", "AIRFLOW_VAR_",
)  # fmt: skip
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
# The worker's first lines: connect, take the parent's import path, then serve.
_BOOT = (
    "import sys\n"
    "from multiprocessing.connection import Connection\n"
    "conn = Connection(int(sys.argv[1]))\n"
    "sys.path[:0] = conn.recv()\n"
    "from jobs.evaluation.verify import _worker\n"
    "_worker(conn)\n"
)


def worker_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without credentials: what the verification worker starts with."""
    return {
        name: value
        for name, value in environ.items()
        if not name.upper().startswith(_SECRET_PREFIXES)
        and not any(word in name.upper() for word in _SECRET_WORDS)
    }


def verifier_name() -> str:
    """The equivalence checker with its version, as recorded in stats and the dataset card."""
    try:
        return f"math-verify {importlib.metadata.version('math-verify')}"
    except importlib.metadata.PackageNotFoundError:
        return "math-verify"


@dataclass(frozen=True)
class Verdict:
    """``status``: correct, wrong, timeout, error (the comparison raised) or no_answer."""

    status: str
    detail: str | None = None

    @property
    def correct(self) -> bool:
        return self.status == CORRECT


def compare_latex(pred: str, gold: str, timeout_s: float) -> bool:
    """math_verify equivalence of two final answers (runs inside the worker process)."""
    from math_verify import parse, verify

    inner = max(1, math.floor(timeout_s / 3))
    gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=inner)
    pred_parsed = parse(f"\\boxed{{{pred}}}", parsing_timeout=inner)
    if not gold_parsed or not pred_parsed:
        return normalise_answer(pred) == normalise_answer(gold)
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=inner))


def _serve(conn: Any, compare: Callable[[str, str, float], bool], preload: Sequence[str]) -> None:
    """The worker: import once, say ready, then answer (pred, gold, timeout) until closed."""
    for module in preload:
        importlib.import_module(module)
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        pred, gold, timeout_s = msg
        try:
            conn.send(("ok", bool(compare(pred, gold, timeout_s))))
        except Exception as exc:  # report, keep serving
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _worker(conn: Any) -> None:
    """The worker process's entry point (after ``_BOOT``): the task, then :func:`_serve`."""
    compare, preload = conn.recv()
    _serve(conn, compare, preload)


class Verifier:
    """Compares answers in a worker process that is replaced whenever a comparison overruns."""

    def __init__(
        self,
        timeout_s: float = 5.0,
        compare: Callable[[str, str, float], bool] = compare_latex,
        preload: Sequence[str] = ("math_verify",),
    ) -> None:
        self.timeout_s = timeout_s
        self.compare = compare
        self.preload = tuple(preload)
        self._proc: Any = None
        self._conn: Any = None
        self._ready = False
        self._lock = threading.Lock()  # one request/reply on the pipe at a time
        self.num_timeouts = 0

    def start(self) -> Verifier:
        """Start the worker without waiting for it (its imports overlap other work)."""
        if self._proc is None or self._proc.poll() is not None:
            self._kill()  # the pipe of a worker that died
            # A fresh interpreter (never a fork of a process with torch threads), credentials
            # left out; it exits when its end of the socket pair closes.
            parent, child = multiprocessing.connection.Pipe()
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(child.fileno())],
                pass_fds=(child.fileno(),),
                env=worker_environment(os.environ),
                stdin=subprocess.DEVNULL,
            )
            child.close()
            parent.send(list(sys.path))
            parent.send((self.compare, self.preload))
            self._conn, self._ready = parent, False
        return self

    def _wait_ready(self) -> None:
        self.start()
        if self._ready:
            return
        if not self._conn.poll(_STARTUP_TIMEOUT_S):
            self.close()
            raise RuntimeError("answer-verification worker did not start")
        self._conn.recv()
        self._ready = True

    def check(self, pred: str | None, gold: str, timeout_s: float | None = None) -> Verdict:
        """The verdict on one predicted final answer (None or empty: no answer)."""
        if pred is None or not pred.strip():
            return Verdict(NO_ANSWER)
        budget = self.timeout_s if timeout_s is None else timeout_s
        with self._lock:
            return self._check(pred, gold, budget)

    def _check(self, pred: str, gold: str, budget: float) -> Verdict:
        self._wait_ready()
        self._conn.send((pred, gold, budget))
        if not self._conn.poll(budget):
            self.num_timeouts += 1
            log.warning("answer comparison over %.1fs: %r vs %r", budget, pred[:80], gold[:80])
            self._kill()
            return Verdict(TIMEOUT, f"no verdict within {budget:g}s")
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):  # the worker died (e.g. out of memory): next one is fresh
            self._kill()
            return Verdict(ERROR, "verification worker died")
        if kind == "error":
            return Verdict(ERROR, value)
        return Verdict(CORRECT if value else WRONG)

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:  # stuck in the kernel; the OS reaps it later
                log.warning("verification worker %d did not exit", self._proc.pid)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None
        self._ready = False

    def close(self) -> None:
        """Stop the worker (politely, then by force)."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._conn.send(None)
                self._proc.wait(2)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                pass
        self._kill()

    def __enter__(self) -> Verifier:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: Verifier | None = None
_shared_lock = threading.Lock()


def answers_equivalent(pred: str, gold: str, timeout_s: float = 5.0) -> bool:
    """True when ``pred`` and ``gold`` are the same answer; a comparison over time is False.

    Uses one shared worker process per Python process (stopped at exit).
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Verifier(timeout_s)
            atexit.register(_shared.close)
    return _shared.check(pred, gold, timeout_s).correct
