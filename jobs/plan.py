"""Job: resolve the run-scoped values a DAG fans out over, before any stage runs.

python -m jobs.plan --snapshot S [--num-shards N] --result-file PATH

One value today: the run's LLM shard count, the ``num_shards`` param when the run sets one,
else ``generation.num_shards`` of the profile and overlay. It is written as JSON to
``--result-file`` (the task's XCom: a temporary file locally, the XCom volume of a pod); the
prepare jobs and the shard mapping both take it from there, so they cannot disagree. It runs
where every job runs (a pod in Kubernetes), so the Airflow side never loads the config.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from jobs.cli import JobContext, base_parser, run_job
from jobs.config import ConfigError

log = logging.getLogger(__name__)


def build_parser():
    parser = base_parser("Resolve the run's LLM shard count for the DAG.")
    parser.add_argument(
        "--num-shards",
        default="",
        help="the run's num_shards param; empty: generation.num_shards of the config",
    )
    parser.add_argument("--result-file", required=True, help="where to write the JSON result")
    return parser


def shard_count(param: str, configured: int) -> int:
    """The param when given (a positive integer), else the configured count."""
    text = str(param).strip()
    if not text or text == "None":  # an unset DAG param renders empty (or None)
        return configured
    try:
        count = int(text)
    except ValueError:
        raise ConfigError(f"num_shards: expected a positive integer, got {text!r}") from None
    if count < 1:
        raise ConfigError(f"num_shards: expected a positive integer, got {count}")
    return count


def run(ctx: JobContext) -> int:
    count = shard_count(ctx.args.num_shards, ctx.cfg.generation.num_shards)
    source = "the run's param" if str(ctx.args.num_shards).strip() else "generation.num_shards"
    path = Path(ctx.args.result_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(count))
    log.info("plan: %d LLM shards per stage (%s), written to %s", count, source, path)
    return count


def main(argv: list[str] | None = None) -> int:
    return run_job("plan", argv, run, build_parser())


if __name__ == "__main__":
    raise SystemExit(main())
