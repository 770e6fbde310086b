"""Train a causal LM on one scaling subset (supervised fine-tuning, answer-only loss).

``python -m jobs.train.train --snapshot S --study-id ID --subset K [--recipe R]``
``torchrun --nproc_per_node G -m jobs.train.train ...`` (DDP over G GPUs)

Reads ``{root}/scaling/{ID}/subsets/{K}/`` (committed Parquet with ``question`` and
``answer``) and commits ``{root}/scaling/{ID}/runs/{K}/train/``:

- ``model/``: ``model.safetensors``, ``config.json``, ``generation_config.json`` and the
  tokenizer files (``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``),
  loadable with ``AutoModelForCausalLM.from_pretrained``; ``metrics.json`` names the source
  the tokenizer came from (``tokenizer``);
- ``metrics.json``: the loss per step, tokens seen, tokens/s, peak memory, MFU (GPU), the
  recipe and the data counts;
- ``_manifest.json``, ``_stats.json`` (rows in/out; rows without a question or answer are
  dropped and counted).

Checkpoints go to ``runs/{K}/checkpoints/`` every ``train.checkpoint_every`` steps and are
kept across attempts, so a retried task resumes where the last one stopped; they are deleted
once the output is committed (the final weights are in ``train/``), so a rerun after success
trains again from the start.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
from collections.abc import Callable, Sequence
from typing import Any

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import StageOutput, StageStats, require_committed
from jobs.storage import Storage, join
from jobs.tables import read_table
from jobs.train.paths import RunPaths, path_segment
from jobs.train.recipes import RECIPES, recipe_dict, resolve_recipe

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
# Test-only fault injection: SIGKILL the job right after this optimizer step (and its
# checkpoint, if one is due). Read in main(), the job's edge, never inside run().
KILL_AFTER_STEP_ENV = "SYNTHLLM_TRAIN_KILL_AFTER_STEP"


def build_parser():
    parser = base_parser("Supervised fine-tuning on one scaling subset")
    parser.add_argument("--study-id", required=True, type=path_segment, help="scaling study id")
    parser.add_argument("--subset", required=True, type=path_segment, help="subset name K")
    parser.add_argument(
        "--recipe", default=None, choices=sorted(RECIPES), help="default: cfg.train.recipe"
    )
    return parser


def with_recipe(ctx: JobContext) -> JobContext:
    """The context whose config carries the ``--recipe`` choice (so manifests record it)."""
    if not getattr(ctx.args, "recipe", None):
        return ctx
    train = ctx.cfg.train.model_copy(update={"recipe": ctx.args.recipe})
    return dataclasses.replace(ctx, cfg=ctx.cfg.model_copy(update={"train": train}))


def read_rows(storage: Storage, uri: str) -> tuple[list[str], list[str], int]:
    """Questions and answers of the subset; rows missing either are dropped (and counted)."""
    frame = read_table(storage, uri, columns=["question", "answer"])
    keep = frame["question"].notna() & frame["answer"].notna()
    keep &= frame["question"].astype(str).str.strip().ne("")
    keep &= frame["answer"].astype(str).str.strip().ne("")
    kept = frame[keep]
    return kept["question"].astype(str).tolist(), kept["answer"].astype(str).tolist(), len(frame)


def run(
    ctx: JobContext,
    after_step: Callable[[int], None] | None = None,
    environ: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Read the subset → train (resuming from a checkpoint) → commit model and metrics."""
    from jobs.train import distributed
    from jobs.train.checkpoint import CheckpointStore
    from jobs.train.data import tokenize_examples
    from jobs.train.modeling import build_model, load_tokenizer
    from jobs.train.modeling import tokenizer_source as tokenizer_of
    from jobs.train.trainer import RunSettings, Trainer

    ctx = with_recipe(ctx)
    cfg = ctx.cfg.train
    recipe = resolve_recipe(cfg)
    paths = RunPaths(ctx.cfg.storage.root_uri, ctx.args.study_id, ctx.args.subset)
    storage = Storage(ctx.cfg.storage)
    require_committed(storage, paths.subset_data)
    dist = distributed.dist_from_env(environ or {})
    if cfg.num_threads:
        import torch

        torch.set_num_threads(cfg.num_threads)
    device = distributed.device_for(dist, cfg.device)
    distributed.init(dist, device)
    try:
        questions, answers, rows_in = read_rows(storage, paths.subset_data)
        tokenizer = load_tokenizer(tokenizer_of(recipe), cfg.cache_dir)
        data = tokenize_examples(tokenizer, questions, answers, recipe.max_seq_len)
        log.info(
            "recipe %s: %d examples, %d tokens (%d cut at %d), device %s, world %d",
            recipe.name, len(data), int(data.lengths.sum()), data.num_truncated,
            recipe.max_seq_len, device, dist.world_size,
        )  # fmt: skip
        model = build_model(recipe, tokenizer, cfg.cache_dir, cfg.seed)
        settings = RunSettings(cfg.seed, cfg.checkpoint_every, cfg.log_every, cfg.max_steps)
        trainer = Trainer(model, data, recipe, settings, device, tokenizer.pad_token_id, dist)
        store = CheckpointStore(storage, paths.checkpoints, cfg.keep_checkpoints)
        result = trainer.train(store, after_step)
        metrics = {
            "recipe": recipe.name,
            "recipe_config": recipe_dict(recipe),
            "tokenizer": tokenizer_of(recipe),
            "seed": cfg.seed,
            "world_size": dist.world_size,
            "num_examples": len(data),
            "num_truncated": data.num_truncated,
            "num_without_answer_tokens": data.num_without_answer,
            "dataset_tokens": int(data.lengths.sum()),
            "dataset_answer_tokens": int(data.answer_lens.sum()),
            **result.metrics(),
        }
        if dist.is_main:
            stats = StageStats(rows_in=rows_in, rows_out=len(data))
            if rows_in > len(data):
                stats.quarantined["missing_question_or_answer"] = rows_in - len(data)
            stats.tokens = {"dataset": metrics["dataset_tokens"], "seen": result.tokens_seen}
            commit_run(ctx, storage, paths, (trainer.raw_model, tokenizer), metrics, stats)
            store.clear()
        distributed.barrier(dist)
        return metrics
    finally:
        distributed.shutdown(dist)


def commit_run(
    ctx: JobContext,
    storage: Storage,
    paths: RunPaths,
    model_and_tokenizer: tuple[Any, Any],
    metrics: dict[str, Any],
    stats: StageStats,
) -> None:
    """Write weights, tokenizer and metrics under ``train/`` and commit them."""
    from jobs.train.modeling import MODEL_DIR, save_model

    stats.check_balance()
    out = StageOutput(storage, paths.train, ctx.attempt)
    tmp = out.begin()
    save_model(*model_and_tokenizer, storage, join(tmp, MODEL_DIR))
    storage.write_json(join(tmp, METRICS_FILE), metrics)
    manifest = ctx.manifest(
        "train.train", [paths.subset_data], recipe=metrics["recipe"], tokenizer=metrics["tokenizer"]
    )
    out.commit(manifest, stats)


def kill_hook(environ: dict[str, str]) -> Callable[[int], None] | None:
    """The SIGKILL fault injection of :data:`KILL_AFTER_STEP_ENV` (tests only)."""
    raw = environ.get(KILL_AFTER_STEP_ENV)
    if not raw:
        return None
    target = int(raw)

    def hook(step: int) -> None:
        if step == target:
            log.warning("%s=%d: killing the job", KILL_AFTER_STEP_ENV, target)
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def main(argv: Sequence[str] | None = None) -> int:
    environ = dict(os.environ)
    hook = kill_hook(environ)
    return run_job(
        "train.train",
        list(argv) if argv is not None else None,
        lambda ctx: run(ctx, hook, environ),
        build_parser(),
    )


if __name__ == "__main__":
    raise SystemExit(main())
