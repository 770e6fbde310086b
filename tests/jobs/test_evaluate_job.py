"""The evaluation job end to end: a tiny_cpu model trained here, ten built-in problems.

Run on local files and on S3 (moto), so checkpoints, the committed model and its download
for evaluation all go through the storage layer.
"""

from __future__ import annotations

import json
import math

import pytest
from committed import commit_table

from jobs.config import load_config
from jobs.evaluation import builtin_eval_set
from jobs.evaluation.evaluate import main as evaluate
from jobs.storage import Storage, join
from jobs.train.train import main as train

SEED = 2026  # builtin-0000 of this seed is "Compute $(5 + 12) \times 3 - 33$." = 18


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path, monkeypatch):
    """``(storage settings for --set, root URI)`` on local files or the loopback S3."""
    if request.param == "file":
        return [f'storage.root_uri="file://{tmp_path}/data"'], f"file://{tmp_path}/data"
    # moto 5.2 gives a server-side copy of a multipart upload (the commit moves the >8 MB
    # weights) a wrong CRC32, which botocore's download check then rejects; real S3 does not.
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    endpoint, bucket = request.getfixturevalue("s3_bucket")
    root = f"s3://{bucket}/root"
    return [f'storage.root_uri="{root}"', f'storage.s3_endpoint_url="{endpoint}"'], root


def _argv(store_sets: list[str], *extra: str) -> list[str]:
    argv = ["--snapshot", "s1", "--study-id", "ev", "--subset", "k0"]
    for item in (
        *store_sets,
        "train.num_threads=1",
        f"evaluation.builtin_seed={SEED}",
        "evaluation.num_builtin=10",
        *extra,
    ):
        argv += ["--set", item]
    return argv


def test_evaluate_writes_predictions_with_verdicts_and_metrics(store):
    sets, root = store
    storage = Storage(load_config("local", None, sets).storage)
    assert builtin_eval_set(10, SEED)[0]["answer"] == "18"
    # Every answer is the same line, so a few steps teach the tiny model to say it.
    rows = [
        {"question": f"What is {a} times {b}?", "answer": "\\boxed{18}"}
        for a in range(4)
        for b in range(4)
    ]
    commit_table(storage, join(root, "scaling/ev/subsets/k0"), rows=rows)
    train_sets = (
        "train.batch_size=4",
        "train.num_epochs=8",
        "train.learning_rate=0.01",
        "train.checkpoint_every=10",
    )
    assert train(_argv(sets, *train_sets)) == 0
    run = join(root, "scaling/ev/runs/k0")
    assert not storage.exists(join(run, "checkpoints"))  # written, pruned, then removed

    assert evaluate(_argv(sets, "evaluation.max_new_tokens=24")) == 0
    out = join(run, "eval")
    assert storage.exists(join(out, "_SUCCESS"))
    lines = storage.read_text(join(out, "predictions.jsonl")).splitlines()
    preds = [json.loads(line) for line in lines]
    assert [p["id"] for p in preds] == [f"builtin-{i:04d}" for i in range(10)]
    assert all(p["verdict"] in {"correct", "wrong", "no_answer"} for p in preds)
    assert all(p["correct"] == (p["verdict"] == "correct") for p in preds)
    assert preds[0]["predicted"] == "18" and preds[0]["correct"]
    assert {p["predicted"] for p in preds} == {"18"}  # it learned the one answer it saw
    num_correct = sum(p["gold"] == "18" for p in preds)

    metrics = storage.read_json(join(out, "metrics.json"))
    train_metrics = storage.read_json(join(run, "train/metrics.json"))
    assert metrics["num_examples"] == 10
    assert metrics["num_correct"] == num_correct
    assert metrics["error_rate"] == 100.0 * (10 - num_correct) / 10
    assert metrics["eval_set"] == f"builtin-{SEED}-10"
    assert metrics["train_tokens"] == train_metrics["train_tokens"] > 0
    assert math.isfinite(metrics["heldout_loss"]) and metrics["heldout_loss"] > 0
    assert metrics["heldout_tokens"] > 0
    stats = storage.read_json(join(out, "_stats.json"))
    assert stats["rows_in"] == stats["rows_out"] == 10
