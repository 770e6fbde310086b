"""The house operator of the ``local`` profile: run a job module as a subprocess.

The same argv as in a pod (``python -m jobs.<stage>.<job> --snapshot ...``), started from
the repository root with the worker's interpreter and environment, so storage settings
(SYNTHLLM_ROOT_URI, SYNTHLLM_S3_ENDPOINT_URL, credentials) pass through unchanged.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from synthllm_tasks.exitcodes import is_permanent

# Enough stderr to show a Python traceback in the failure message, short enough to read.
TAIL_LINES = 25


def repo_root() -> Path:
    """Where ``python -m jobs...`` runs: $SYNTHLLM_REPO, else the parent of the dags folder."""
    env = os.environ.get("SYNTHLLM_REPO")
    return Path(env) if env else Path(__file__).resolve().parents[2]


class JobFailedError(AirflowException):
    """A job subprocess exited non-zero; carries the exit code and the last stderr lines."""

    def __init__(self, module: str, returncode: int, tail: Sequence[str]):
        self.module = module
        self.returncode = returncode
        self.tail = list(tail)
        shown = "\n".join(self.tail) or "(no stderr)"
        super().__init__(f"{module} exited with code {returncode}; last stderr lines:\n{shown}")


class JobPermanentError(JobFailedError, AirflowFailException):
    """The permanent exit code (bad config, corrupt input, failed validation): no retries."""


class LocalJobOperator(BaseOperator):
    """Run ``[sys.executable, "-m", module, *argv, *extra_argv]`` in the repository root.

    ``argv`` is templated; ``extra_argv`` is the mappable tail (e.g. ``["--shard", "0/2"]``),
    kept apart because values expanded from XCom are not templated by Airflow.
    Output lines are forwarded to the task log as they arrive. A permanent exit code fails
    the task without retries (``JobPermanentError``); any other failure is retried. With
    ``returns_value`` the job gets ``--result-file PATH`` and the task returns the JSON value
    the job wrote there (its XCom), as a pod's job writes it to the XCom volume.
    """

    template_fields: Sequence[str] = ("argv", "extra_argv")
    ui_color = "#d8e8f8"

    def __init__(
        self,
        *,
        module: str,
        # Empty: a module may need no arguments (the factory always passes RUN_ARGV).
        argv: Sequence[str] = (),
        # Empty: only mapped tasks get a per-instance tail.
        extra_argv: Sequence[str] = (),
        # False: the exit code is the job's only answer (see the class docstring).
        returns_value: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.module = module
        self.argv = list(argv)
        self.extra_argv = list(extra_argv)
        self.returns_value = returns_value
        self._proc: subprocess.Popen[str] | None = None

    def command(self, result_file: str | None = None) -> list[str]:
        """The full command line (after template rendering)."""
        tail = ["--result-file", result_file] if result_file else []
        argv = [*map(str, self.argv), *map(str, self.extra_argv), *tail]
        return [sys.executable, "-m", self.module, *argv]

    def execute(self, context: Any) -> Any:
        if not self.returns_value:
            self._run(self.command())
            return None
        with tempfile.TemporaryDirectory(prefix="synthllm-result-") as folder:
            result = Path(folder) / "result.json"
            self._run(self.command(str(result)))
            if not result.is_file():
                raise JobFailedError(self.module, 0, ["the job wrote no --result-file"])
            return json.loads(result.read_text())

    def _run(self, cmd: list[str]) -> None:
        cwd = repo_root()
        # Unbuffered, so that lines reach the task log while the job runs, not at its end.
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.log.info("running in %s: %s", cwd, " ".join(cmd))
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            bufsize=1,
        )
        readers = [
            threading.Thread(target=self._forward, args=(self._proc.stdout, None), daemon=True),
            threading.Thread(target=self._forward, args=(self._proc.stderr, tail), daemon=True),
        ]
        for reader in readers:
            reader.start()
        returncode = self._proc.wait()
        for reader in readers:
            reader.join()
        self._proc = None
        if is_permanent(returncode):
            raise JobPermanentError(self.module, returncode, tail)
        if returncode != 0:
            raise JobFailedError(self.module, returncode, tail)
        self.log.info("%s finished", self.module)

    def _forward(self, stream: IO[str] | None, tail: collections.deque[str] | None) -> None:
        if stream is None:
            return
        with stream:
            for raw in stream:
                line = raw.rstrip("\n")
                self.log.info("%s", line)
                if tail is not None:
                    tail.append(line)

    def on_kill(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self.log.info("terminating %s (pid %d)", self.module, proc.pid)
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
