"""jobs/plan.py: the run's LLM shard count, param first, else the config's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import plan
from jobs.config import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("param", "expected"), [("5", 5), (" 12 ", 12), (3, 3), ("1", 1)])
def test_a_set_param_wins_over_the_config(param, expected):
    assert plan.shard_count(param, 16) == expected


@pytest.mark.parametrize("param", ["", "  ", "None", None])
def test_an_unset_param_means_the_configured_count(param):
    """An unset DAG param renders empty (``params.num_shards or ''``), or as None."""
    assert plan.shard_count(param, 16) == 16


@pytest.mark.parametrize("param", ["0", "-3", "abc", "2.5", "3/16"])
def test_anything_else_is_a_config_error(param):
    with pytest.raises(ConfigError, match="num_shards: expected a positive integer"):
        plan.shard_count(param, 16)


def run_plan(tmp_path, *args: str) -> tuple[int, object]:
    result = tmp_path / "xcom" / "return.json"  # the folder need not exist yet
    code = plan.main(["--snapshot", "2026-11-01", *args, "--result-file", str(result)])
    return code, json.loads(result.read_text())


def test_main_writes_the_count_where_it_is_told(tmp_path):
    assert run_plan(tmp_path, "--profile", "local") == (0, 2)  # the code default
    assert run_plan(tmp_path, "--profile", "kubernetes") == (0, 256)  # configs/kubernetes.toml
    assert run_plan(tmp_path, "--profile", "kubernetes", "--num-shards", "4") == (0, 4)
    overlay = tmp_path / "overlay.toml"
    overlay.write_text("[generation]\nnum_shards = 7\n")
    assert run_plan(tmp_path, "--config", str(overlay), "--num-shards", "") == (0, 7)
    assert run_plan(tmp_path, "--set", "generation.num_shards=9") == (0, 9)


def plan_process(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``python -m jobs.plan`` as the operators start it: the exit code is the contract."""
    result = tmp_path / "return.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SYNTHLLM_PROFILE", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jobs.plan",
            "--snapshot",
            "2026-11-01",
            *args,
            "--result-file",
            str(result),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, result


@pytest.mark.parametrize("param", ["0", "abc"])
def test_a_bad_param_exits_permanently_and_writes_nothing(tmp_path, param):
    done, result = plan_process(tmp_path, "--num-shards", param)
    assert done.returncode == 2, done.stderr
    assert "num_shards: expected a positive integer" in done.stderr
    assert not result.exists()


def test_a_bad_configured_count_exits_permanently(tmp_path):
    overlay = tmp_path / "overlay.toml"
    overlay.write_text("[generation]\nnum_shards = 0\n")
    done, result = plan_process(tmp_path, "--config", str(overlay))
    assert done.returncode == 2 and "num_shards" in done.stderr
    assert not result.exists()


def test_the_process_writes_json_and_exits_zero(tmp_path):
    done, result = plan_process(tmp_path, "--num-shards", "")
    assert done.returncode == 0, done.stderr
    assert result.read_text() == "2"
    done, result = plan_process(tmp_path)  # no --num-shards at all: the config's
    assert done.returncode == 0 and json.loads(result.read_text()) == 2


def test_the_result_file_is_required(tmp_path):
    with pytest.raises(SystemExit) as info:
        plan.main(["--snapshot", "2026-11-01"])
    assert info.value.code == 2
