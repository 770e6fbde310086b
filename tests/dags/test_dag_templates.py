"""The templated argv renders to the values a job receives (snapshot override, run id, try)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


def context(snapshot=None, num_shards=2, config="", try_number=1):
    """A task context; ``shard_count``'s XCom is the resolved ``num_shards``."""
    xcom = {"shard_count": num_shards}
    return {
        "params": {"snapshot": snapshot, "num_shards": num_shards, "config": config},
        "ds": "2026-11-01",
        "run_id": "scheduled__2026-11-01T00:00:00+00:00",
        "ti": SimpleNamespace(try_number=try_number, xcom_pull=lambda task_ids: xcom[task_ids]),
    }


def render(task, ctx):
    return [task.render_template(arg, ctx) for arg in task.argv]


@pytest.mark.parametrize(
    ("snapshot", "expected"), [(None, "2026-11-01"), ("", "2026-11-01"), ("cc-2024", "cc-2024")]
)
def test_snapshot_is_the_param_or_the_logical_date(generate_dag, snapshot, expected):
    argv = render(generate_dag.get_task("ingest"), context(snapshot=snapshot))
    assert argv[:6] == [
        "--snapshot",
        expected,
        "--run-id",
        "scheduled__2026-11-01T00:00:00+00:00",
        "--attempt",
        "1",
    ]


def test_attempt_and_shard_count_render(generate_dag):
    argv = render(generate_dag.get_task("questions_prepare"), context(num_shards=5, try_number=3))
    assert argv[argv.index("--attempt") + 1] == "3"
    assert argv[-2:] == ["--num-shards", "5"]


def test_config_overlay_is_passed_through(generate_dag):
    argv = render(generate_dag.get_task("report"), context(config="configs/small.toml"))
    assert argv[argv.index("--config") + 1] == "configs/small.toml"


def test_empty_config_param_means_no_overlay(generate_dag):
    """Contract with jobs/config.py: the DAG always passes ``--config``; empty = no overlay."""
    from jobs.config import load_config

    argv = render(generate_dag.get_task("report"), context(config=""))
    config_arg = argv[argv.index("--config") + 1]
    assert config_arg == ""
    assert load_config("local", config_arg, []).profile == "local"
