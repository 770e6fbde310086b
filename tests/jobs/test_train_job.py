"""The training job end to end with ``tiny_cpu``: learning, committed outputs, exact resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from committed import commit_table

from jobs.config import load_config
from jobs.storage import Storage
from jobs.train.train import KILL_AFTER_STEP_ENV, main

REPO = Path(__file__).resolve().parents[2]
ROWS = [
    {"question": f"What is {a} + {b}?", "answer": f"{a} + {b} = {a + b}. \\boxed{{{a + b}}}"}
    for a in range(4)
    for b in range(4)
]


def _root(tmp_path: Path) -> Path:
    return tmp_path / "data"


def _commit_subset(root: Path, study: str, rows=ROWS) -> None:
    storage = Storage(load_config("local", None, [f'storage.root_uri="file://{root}"']).storage)
    commit_table(storage, f"file://{root}/scaling/{study}/subsets/s0", rows=rows)


def _argv(root: Path, study: str, *extra: str) -> list[str]:
    sets = [
        f'storage.root_uri="file://{root}"',
        "train.num_threads=1",  # one thread: fast on a busy CPU, and the same in every process
        "train.batch_size=4",
        "train.num_epochs=2",
        "train.checkpoint_every=3",
        "train.log_every=1",
        *extra,
    ]
    argv = ["--snapshot", "s1", "--study-id", study, "--subset", "s0", "--run-id", "t"]
    for item in sets:
        argv += ["--set", item]
    return argv


def _metrics(root: Path, study: str) -> dict:
    return json.loads((root / f"scaling/{study}/runs/s0/train/metrics.json").read_text())


def test_tiny_cpu_learns_a_repeated_set_and_commits_model_and_metrics(tmp_path):
    root = _root(tmp_path)
    _commit_subset(root, "learn", ROWS[:4] * 4)
    extra = ("train.num_epochs=4", "train.learning_rate=0.01", "train.checkpoint_every=1000")
    assert main(_argv(root, "learn", *extra)) == 0
    out = root / "scaling/learn/runs/s0/train"
    assert (out / "_SUCCESS").is_file()
    assert {p.name for p in (out / "model").iterdir()} >= {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    metrics = _metrics(root, "learn")
    losses = [p["loss"] for p in metrics["loss_curve"]]
    assert len(losses) == metrics["num_steps"] == 16
    assert sum(losses[-3:]) / 3 < 0.5 * losses[0]
    assert metrics["train_tokens"] == metrics["tokens_seen"] == 4 * metrics["dataset_tokens"]
    assert metrics["tokens_per_s"] > 0 and metrics["peak_memory_bytes"] > 0
    assert metrics["mfu"] is None  # CPU
    assert metrics["recipe"] == "tiny_cpu" and metrics["tokenizer"] == "smollm2-135m-instruct"
    stats = json.loads((out / "_stats.json").read_text())
    assert stats["rows_in"] == stats["rows_out"] == 16
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["job"] == "train.train" and manifest["inputs"][0].endswith("subsets/s0")
    # Checkpoints are removed once the output is committed.
    assert not (root / "scaling/learn/runs/s0/checkpoints").exists()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert model.config.hidden_size == 64
    assert AutoTokenizer.from_pretrained(out / "model").chat_template


def test_missing_subset_fails_and_unknown_recipe_is_a_usage_error(tmp_path):
    root = _root(tmp_path)
    with pytest.raises(RuntimeError, match="not committed"):
        main(_argv(root, "absent"))
    with pytest.raises(SystemExit) as exc:
        main([*_argv(root, "absent"), "--recipe", "nope"])
    assert exc.value.code == 2


def test_sigkilled_run_resumes_to_the_same_loss_curve(tmp_path):
    root = _root(tmp_path)
    for study in ("straight", "killed"):
        _commit_subset(root, study)
    # Uninterrupted: 16 rows, batch 4, 2 epochs = 8 steps, checkpoints after steps 3 and 6.
    assert main(_argv(root, "straight")) == 0
    reference = [p["loss"] for p in _metrics(root, "straight")["loss_curve"]]
    assert len(reference) == 8

    # The same run, SIGKILLed after step 5: the checkpoint of step 3 is the newest.
    env = {**os.environ, KILL_AFTER_STEP_ENV: "5", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.train.train", *_argv(root, "killed")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    ckpt_dir = root / "scaling/killed/runs/s0/checkpoints"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["step-00000003.pt"]
    assert not (root / "scaling/killed/runs/s0/train/_SUCCESS").exists()

    # The retry resumes from step 3 and recomputes steps 4-8.
    assert main([*_argv(root, "killed"), "--attempt", "2"]) == 0
    resumed = _metrics(root, "killed")
    assert resumed["resumed_from_step"] == 3
    losses = [p["loss"] for p in resumed["loss_curve"]]
    assert losses[:3] == reference[:3]  # carried over from the checkpoint
    assert losses == pytest.approx(reference, abs=1e-6, rel=0)
    assert [p["lr"] for p in resumed["loss_curve"]] == [
        p["lr"] for p in _metrics(root, "straight")["loss_curve"]
    ]


@pytest.mark.gpu
def test_gpu_recipe_trains_in_bf16_with_compile_and_reports_mfu(tmp_path):
    root = _root(tmp_path)
    _commit_subset(root, "gpu")
    argv = _argv(root, "gpu", "train.max_steps=4", "train.micro_batch_size=2")
    assert main([*argv, "--recipe", "gpu_135m"]) == 0
    metrics = _metrics(root, "gpu")
    assert metrics["device"].startswith("cuda")
    assert metrics["precision"] == "bf16-autocast"
    assert 0 < metrics["mfu"] < 1
    assert metrics["peak_memory_kind"] == "cuda_max_allocated"
    losses = [p["loss"] for p in metrics["loss_curve"]]
    assert len(losses) == 4 and all(0 < loss < 20 for loss in losses)
