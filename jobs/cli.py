"""The shared job entry point: argv → typed config → ``run`` with logging and exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobs.config import REPO_ROOT, ConfigError, PipelineConfig, load_config
from jobs.errors import EXIT_PERMANENT, EXIT_UNEXPECTED, classify, kind
from jobs.layout import Layout, check_snapshot

log = logging.getLogger("jobs")

# Exit codes (jobs/errors.py): a bad config or argument is permanent, like argparse's own 2.
EXIT_CONFIG = EXIT_PERMANENT
EXIT_FAILED = EXIT_UNEXPECTED
# Set in the images at build time (images/*/Dockerfile), where there is no .git to ask.
CODE_VERSION_ENV = "SYNTHLLM_CODE_VERSION"


@dataclass(frozen=True)
class JobContext:
    """Run-scoped values every job receives from its caller."""

    cfg: PipelineConfig
    snapshot: str
    run_id: str
    attempt: str
    layout: Layout
    args: argparse.Namespace

    def manifest(self, job: str, inputs: list[str], **extra: Any) -> dict[str, Any]:
        """The ``_manifest.json`` body for an output of this job."""
        return {
            "job": job,
            "snapshot": self.snapshot,
            "run_id": self.run_id,
            "attempt": self.attempt,
            "code_version": code_version(),
            "inputs": inputs,
            "config": self.cfg.public_dict(),
            **extra,
        }


def code_version() -> str:
    """The commit of the code that ran: $SYNTHLLM_CODE_VERSION (baked into the images), else
    git's HEAD (``-dirty`` with local changes), else ``unknown``."""
    baked = os.environ.get(CODE_VERSION_ENV, "").strip()
    if baked:
        return baked
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--snapshot", required=True, help="corpus snapshot name, e.g. 2026-11-25")
    parser.add_argument("--run-id", default="manual", help="orchestrator run id (for manifests)")
    parser.add_argument("--attempt", default="1", help="try number; names the _tmp prefix")
    parser.add_argument("--profile", default=None, help="config profile: local or kubernetes")
    parser.add_argument("--config", default=None, help="TOML file overlaid on the profile")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="section.key=value"
    )
    return parser


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # py4j logs every gateway connection it opens and closes at INFO: noise in a job's log.
    logging.getLogger("py4j").setLevel(logging.WARNING)


def run_job(
    name: str,
    argv: list[str] | None,
    run: Callable[[JobContext], Any],
    parser: argparse.ArgumentParser | None = None,
    *,
    raise_errors: bool | None = None,
) -> int:
    """Parse ``argv``, build the context, call ``run`` and map failures to exit codes.

    A config or argument error returns ``EXIT_CONFIG``. A failure of ``run`` is logged with
    its traceback and returned as the exit code of its kind (``jobs.errors.classify``) when the
    job is the process's entry point (``argv`` None, i.e. ``sys.argv``); called in-process with
    an explicit ``argv`` (tests, other code) the exception propagates. ``raise_errors``
    overrides that choice.
    """
    if raise_errors is None:
        raise_errors = argv is not None
    parser = parser or base_parser(name)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        cfg = load_config(args.profile, args.config, args.overrides)
        snapshot = check_snapshot(args.snapshot)
    except (ConfigError, ValueError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    safe_run_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in args.run_id)
    attempt = "".join(c for c in str(args.attempt) if c.isalnum()) or "1"
    ctx = JobContext(
        cfg, snapshot, safe_run_id, attempt, Layout(cfg.storage.root_uri, snapshot), args
    )
    log.info("%s: snapshot=%s run_id=%s profile=%s", name, snapshot, args.run_id, cfg.profile)
    try:
        run(ctx)
    except Exception as exc:
        if raise_errors:
            raise
        code = classify(exc)
        log.error("%s: failed, %s (exit code %d)", name, kind(code), code, exc_info=True)
        return code
    log.info("%s: done", name)
    return 0
