"""Evaluate one trained model: error rate on a math set and held-out answer loss.

``python -m jobs.evaluation.evaluate --snapshot S --study-id ID --subset K``

Loads the model committed at ``{root}/scaling/{ID}/runs/{K}/train/model/``, answers the
evaluation set (``evaluation.eval_set_uri``, else the built-in set) greedily, checks every
answer against the gold one, and commits ``{root}/scaling/{ID}/runs/{K}/eval/``:

- ``predictions.jsonl``: one line per item (id, topic, question, gold, response, predicted,
  correct, verdict, detail, finish_reason, completion_tokens);
- ``metrics.json``: ``error_rate`` (%), ``heldout_loss``, ``num_examples``, ``num_correct``,
  ``eval_set``, ``train_tokens`` (tokens the model trained on, from the train metrics),
  ``dataset_tokens`` (tokens of the subset, one pass), per-topic and per-verdict counts;
- ``_manifest.json``, ``_stats.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import StageOutput, StageStats, require_committed
from jobs.evaluation.evalset import eval_set_name, load_eval_set
from jobs.storage import Storage, join
from jobs.train.paths import RunPaths, path_segment

log = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"
METRICS_FILE = "metrics.json"


def build_parser():
    parser = base_parser("Evaluate a trained model of one scaling subset")
    parser.add_argument("--study-id", required=True, type=path_segment, help="scaling study id")
    parser.add_argument("--subset", required=True, type=path_segment, help="subset name K")
    return parser


def run(ctx: JobContext) -> dict[str, Any]:
    """Load model and set → generate, judge, score the loss → commit predictions and metrics."""
    from jobs.evaluation.scoring import heldout_loss, judge, requests_for, summarize
    from jobs.evaluation.verify import Verifier
    from jobs.llm.transformers_engine import TransformersEngine
    from jobs.train.modeling import MODEL_DIR, fetched_model_dir

    cfg, ev = ctx.cfg, ctx.cfg.evaluation
    paths = RunPaths(cfg.storage.root_uri, ctx.args.study_id, ctx.args.subset)
    storage = Storage(cfg.storage)
    require_committed(storage, paths.train)
    items = load_eval_set(storage, cfg)
    train_metrics = storage.read_json(join(paths.train, METRICS_FILE))
    name = eval_set_name(cfg)
    log.info("evaluating %s on %s (%d items)", paths.train, name, len(items))
    with Verifier(ev.verify_timeout_s) as verifier:  # its imports overlap model loading
        with fetched_model_dir(storage, join(paths.train, MODEL_DIR)) as model_dir:
            engine = TransformersEngine(
                model=model_dir,
                device=cfg.train.device,
                max_batch_size=ev.batch_size,
                num_threads=cfg.train.num_threads,
            )
            responses = engine.generate(requests_for(items, ev.max_new_tokens))
            loss, loss_tokens = heldout_loss(engine.model, engine.tokenizer, items, ev.batch_size)
        rows = judge(items, responses, verifier)
    metrics = summarize(rows, loss, loss_tokens, name)
    metrics.update(
        train_tokens=train_metrics.get("train_tokens"),
        dataset_tokens=train_metrics.get("dataset_tokens"),
        recipe=train_metrics.get("recipe"),
        max_new_tokens=ev.max_new_tokens,
        decoding="greedy",
    )
    log.info(
        "%s: error rate %.2f%% (%d/%d correct), held-out loss %.4f",
        name, metrics["error_rate"], metrics["num_correct"], len(rows), loss,
    )  # fmt: skip
    out = StageOutput(storage, paths.eval, ctx.attempt)
    tmp = out.begin()
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    storage.write_text(join(tmp, PREDICTIONS_FILE), body, "application/jsonl")
    storage.write_json(join(tmp, METRICS_FILE), metrics)
    inputs = [paths.train, ev.eval_set_uri or f"builtin:{name}"]
    out.commit(
        ctx.manifest("evaluation.evaluate", inputs, eval_set=name),
        StageStats(rows_in=len(items), rows_out=len(rows)),
    )
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    return run_job(
        "evaluation.evaluate", list(argv) if argv is not None else None, run, build_parser()
    )


if __name__ == "__main__":
    raise SystemExit(main())
