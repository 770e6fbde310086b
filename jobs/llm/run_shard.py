"""Job: generate the responses of one LLM request shard (resumable; skips a finished shard).

python -m jobs.llm.run_shard --snapshot S --task questions_l1 --shard 3/16 [--run-id R]
"""

from __future__ import annotations

import argparse
import logging

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import StageStats
from jobs.llm.batchfile import ShardSpec

log = logging.getLogger(__name__)


def _shard_arg(text: str) -> ShardSpec:
    try:
        return ShardSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser("Generate the responses of one LLM request shard.")
    parser.add_argument("--task", required=True, help="LLM task name, e.g. questions_l1")
    parser.add_argument(
        "--shard", required=True, type=_shard_arg, help="INDEX/COUNT, e.g. 3/16 (0-based)"
    )
    return parser


def run(ctx: JobContext) -> StageStats:
    """Run the shard with the task's engine; the model loads only if work is left.

    The engine is built from :func:`jobs.llm.tasks.generation_for`, the same settings the
    runner fingerprints the shard with.
    """
    from jobs.llm.engine import make_engine
    from jobs.llm.runner import ShardFiles, run_shard
    from jobs.llm.tasks import generation_for, get_task
    from jobs.storage import Storage

    task = get_task(ctx.args.task)
    gen = generation_for(ctx.cfg, task.name)
    shard: ShardSpec = ctx.args.shard
    storage = Storage(ctx.cfg.storage)
    files = ShardFiles.of(ctx.layout, task.name, shard)
    manifest = ctx.manifest("llm.run_shard", [files.requests], task=task.name, shard=shard.stem)
    marker = run_shard(
        storage,
        ctx.layout,
        task,
        shard,
        lambda: make_engine(gen),
        ctx.cfg,
        manifest,
    )
    return StageStats(
        rows_in=marker["requests"],
        rows_out=marker["responses"] - marker["errors"],
        quarantined={"engine_error": marker["errors"]} if marker["errors"] else {},
        tokens=marker["tokens"],
    )


def main(argv: list[str] | None = None) -> int:
    return run_job("llm.run_shard", argv, run, build_parser())


if __name__ == "__main__":
    raise SystemExit(main())
