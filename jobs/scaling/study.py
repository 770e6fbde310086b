"""The scaling study job: cut nested subsets, then fit the laws to the evaluated runs.

``python -m jobs.scaling.study prepare --snapshot S --study-id ID [--recipe R] [--eval-set U]``
    reads the published dataset ``{root}/datasets/synthllm/{S}/``, commits the nested
    subsets to ``{root}/scaling/{ID}/subsets/{K}/`` (K = 0 smallest) and writes
    ``{root}/scaling/{ID}/study.json`` last; the last stdout line is the JSON list of
    subset ids. ``--set scaling.num_subsets=5`` etc. shape the subsets.
``python -m jobs.scaling.study report --snapshot S --study-id ID``
    reads ``runs/{K}/eval/metrics.json`` (and ``runs/{K}/train/metrics.json`` where
    committed) of every subset, fits both laws to (subset tokens, ``scaling.metric``) and
    commits ``{root}/scaling/{ID}/report/``; prints ``report: <uri>``.

Exit code 2 for bad arguments, a dataset too small for the subsets, or points that
cannot support a fit (the reason is printed).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import sys
from typing import Any

from jobs.cli import EXIT_CONFIG, JobContext, base_parser, code_version, run_job
from jobs.commit import SUCCESS, StageOutput, StageStats, UncommittedInputError, require_committed
from jobs.errors import PermanentError
from jobs.publish.dataset import MANIFEST_FILE, PARQUET_FILE, encode_parquet
from jobs.scaling.fit import FitError, Point, ScalingFit, fit_scaling
from jobs.scaling.layout import METRICS_FILE, StudyLayout, check_study_id
from jobs.scaling.report import commit_report
from jobs.scaling.subsets import (
    RowTokens,
    Subset,
    SubsetError,
    hash_order,
    nested_subsets,
    row_tokens,
    subset_ids,
)
from jobs.storage import Storage, basename, join
from jobs.tables import PART_FILE

log = logging.getLogger(__name__)

JOB = "scaling.study"


class StudyError(PermanentError, ValueError):
    """The study's inputs are inconsistent (a metric missing from an evaluation, ...)."""


def _study_id(value: str) -> str:
    try:
        return check_study_id(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = base_parser("Scaling study: nested subsets, then the scaling-law report.")
    parser.add_argument("action", choices=["prepare", "report"])
    parser.add_argument("--study-id", required=True, type=_study_id, help="names the study")
    parser.add_argument("--recipe", default="", help="training recipe; empty: train.recipe")
    parser.add_argument(
        "--eval-set", default="", help="evaluation set URI; empty: evaluation.eval_set_uri"
    )
    return parser


def prepare(ctx: JobContext) -> list[str]:
    """Commit the nested subsets, then ``study.json``; returns the subset ids."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    cfg, storage = ctx.cfg.scaling, Storage(ctx.cfg.storage)
    study = StudyLayout(ctx.cfg.storage.root_uri, ctx.args.study_id)
    dataset = ctx.layout.dataset
    require_committed(storage, dataset)
    manifest_bytes = storage.read_bytes(join(dataset, MANIFEST_FILE))
    manifest = json.loads(manifest_bytes)
    parquet_uri = join(dataset, PARQUET_FILE)
    table = pq.read_table(io.BytesIO(storage.read_bytes(parquet_uri)))
    tokens = row_tokens(
        pc.utf8_length(table["question"]).to_numpy(zero_copy_only=False),
        pc.utf8_length(table["answer"]).to_numpy(zero_copy_only=False),
        pc.fill_null(table["num_tokens"], 0).to_numpy(zero_copy_only=False),
    )
    order = hash_order(table["question_id"].to_pylist(), cfg.seed)
    subsets = nested_subsets(tokens.total[order], cfg.num_subsets, cfg.growth, cfg.min_tokens)
    ids = subset_ids(len(subsets))
    storage.delete(study.study_file)  # withdrawn first: present means every subset committed
    for stale in storage.list(join(study.base, "subsets")):
        if basename(stale) not in ids:
            storage.delete(stale)
    ordered = table.append_column("tokens", pa.array(tokens.total, pa.int64())).take(order)
    for s in subsets:
        rows = order[: s.rows]
        out = StageOutput(storage, study.subset(s.k), ctx.attempt)
        tmp = out.begin()
        storage.write_bytes(join(tmp, PART_FILE), encode_parquet(ordered.slice(0, s.rows)))
        stats = StageStats(
            rows_in=s.rows,
            rows_out=s.rows,
            tokens={
                "total": s.tokens,
                "question": int(tokens.question[rows].sum()),
                "answer": int(tokens.answer[rows].sum()),
            },
            extra={"subset": s.k, "target_tokens": s.target_tokens, "dataset_rows": len(order)},
        )
        out.commit(
            ctx.manifest(f"{JOB}.prepare", [parquet_uri], study_id=study.study_id, subset=s.k),
            stats,
        )
    created_from = {
        "dataset_uri": dataset,
        "manifest_uri": join(dataset, MANIFEST_FILE),
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "parquet_sha256": manifest.get("files", {}).get(PARQUET_FILE, {}).get("sha256"),
        "dataset_run_id": manifest.get("created_from", {}).get("run_id"),
        "dataset_code_version": manifest.get("code_version"),
    }
    storage.write_json(study.study_file, _study_doc(ctx, study, created_from, subsets, tokens))
    log.info("study %s: %d subsets, %s tokens", study.study_id, len(ids), subsets[-1].tokens)
    print(f"study: {study.study_file}")
    print(json.dumps(ids))
    return ids


def _study_doc(
    ctx: JobContext,
    study: StudyLayout,
    created_from: dict[str, Any],
    subsets: list[Subset],
    tokens: RowTokens,
) -> dict[str, Any]:
    return {
        "study_id": study.study_id,
        "snapshot": ctx.snapshot,
        "recipe": ctx.args.recipe or ctx.cfg.train.recipe,
        "eval_set": ctx.args.eval_set or ctx.cfg.evaluation.eval_set_uri,
        "metric": ctx.cfg.scaling.metric,
        "created_from": created_from,
        "dataset": {"rows": len(tokens.total), "tokens": int(tokens.total.sum())},
        "token_count": {
            "method": "answer: qa.num_tokens; question: ceil(chars / chars_per_token)",
            "chars_per_token": tokens.chars_per_token,
        },
        "subsets": [
            {
                "subset": str(s.k),
                "rows": s.rows,
                "tokens": s.tokens,
                "target_tokens": s.target_tokens,
                "uri": study.subset(s.k),
            }
            for s in subsets
        ],
        "run_id": ctx.run_id,
        "attempt": ctx.attempt,
        "code_version": code_version(),
        "config": ctx.cfg.scaling.model_dump(mode="json"),
    }


def study_points(
    storage: Storage, study: StudyLayout, doc: dict[str, Any], metric: str
) -> tuple[list[Point], list[str]]:
    """One point per subset: (its tokens, the metric of its evaluation); and the inputs read."""
    points, inputs = [], [study.study_file]
    for s in doc["subsets"]:
        k = s["subset"]
        eval_uri = study.eval(k)
        require_committed(storage, eval_uri)
        metrics = storage.read_json(join(eval_uri, METRICS_FILE))
        if metric not in metrics:
            raise StudyError(
                f"{eval_uri}/{METRICS_FILE} has no {metric!r} (keys: {sorted(metrics)})"
            )
        inputs.append(eval_uri)
        train: dict[str, Any] = {}
        if storage.exists(join(study.train(k), SUCCESS)):
            train = storage.read_json(join(study.train(k), METRICS_FILE))
            inputs.append(study.train(k))
        info = {
            "subset": k,
            "rows": s["rows"],
            "eval_set": metrics.get("eval_set"),
            "num_examples": metrics.get("num_examples"),
            "train_tokens_seen": train.get("tokens_seen", metrics.get("train_tokens")),
        }
        points.append(Point(float(s["tokens"]), float(metrics[metric]), info))
    eval_sets = {p.info["eval_set"] for p in points if p.info["eval_set"] is not None}
    if len(eval_sets) > 1:
        raise StudyError(f"the subsets were evaluated on different sets: {sorted(eval_sets)}")
    return points, inputs


def report(ctx: JobContext) -> str:
    """Fit the laws to the study's evaluated runs and commit the report; returns its URI."""
    storage = Storage(ctx.cfg.storage)
    study = StudyLayout(ctx.cfg.storage.root_uri, ctx.args.study_id)
    if not storage.exists(study.study_file):
        raise UncommittedInputError(f"no {study.study_file}: run `study prepare` first")
    doc = storage.read_json(study.study_file)
    metric = ctx.cfg.scaling.metric
    points, inputs = study_points(storage, study, doc, metric)
    for p in points:
        log.info("subset %s: %.4g tokens, %s = %.4g", p.info["subset"], p.tokens, metric, p.value)
    result = fit_scaling(points, ctx.cfg.scaling, metric)
    context = {k: doc.get(k) for k in ("study_id", "snapshot", "recipe", "eval_set")}
    result = ScalingFit({**result.report, "study": context}, result.curves)
    manifest = ctx.manifest(f"{JOB}.report", inputs, study_id=study.study_id)
    html_uri = commit_report(storage, study.report, result, manifest, ctx.attempt)
    print(result.report["summary"])
    print(f"report: {html_uri}")
    return html_uri


def run(ctx: JobContext) -> Any:
    return prepare(ctx) if ctx.args.action == "prepare" else report(ctx)


def main(argv: list[str] | None = None) -> int:
    try:
        return run_job(JOB, argv, run, _parser())
    except (FitError, SubsetError, StudyError) as exc:
        # Deterministic refusals: a retry would fail the same way (exit 2: no retries).
        print(f"{JOB}: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
