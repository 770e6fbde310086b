"""A whole run of synthllm_generate under the local profile, with stub job modules.

The real jobs are tested in tests/jobs; here each job module is a stub that records its argv,
so the test checks what Airflow itself does with the DAG: templating, task order, shard
mapping (shard_count's XCom -> .map -> expand), try numbers, and the Asset event of publish.
The stub of ``jobs.plan`` (shard_count) returns the run's shard count through --result-file,
as the real job does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from stubs import install_stub_repo

MODULES = [
    "jobs.ingest.ingest",
    "jobs.filter.positives",
    "jobs.filter.filter",
    "jobs.filter.refine",
    "jobs.validate.validate",
    "jobs.concepts.prepare",
    "jobs.concepts.collect",
    "jobs.graph.build",
    "jobs.graph.combinations",
    "jobs.questions.prepare",
    "jobs.llm.run_shard",
    "jobs.questions.collect",
    "jobs.questions.clean",
    "jobs.answers.prepare",
    "jobs.answers.collect",
    "jobs.report.report",
    "jobs.publish.publish",
]


# The run's num_shards param; the plan stub returns it (the real job: tests/jobs/test_plan.py).
NUM_SHARDS = 3


@pytest.fixture
def stub_repo(tmp_path, monkeypatch):
    return install_stub_repo(tmp_path, monkeypatch, MODULES, results={"jobs.plan": NUM_SHARDS})


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.mark.slow
def test_a_run_calls_every_job_in_order_with_mapped_shards(
    airflow_db, generate_dag, stub_repo, monkeypatch
):
    # A failing task is a wiring bug here: fail the run at once, not after the retry backoff.
    for task in generate_dag.tasks:
        monkeypatch.setattr(task, "retries", 0)
    run = generate_dag.test(
        logical_date=datetime(2026, 11, 1, tzinfo=UTC),
        run_conf={"snapshot": "cc-2026-10", "num_shards": NUM_SHARDS},
    )
    assert str(run.state) in {"success", "DagRunState.SUCCESS"}
    calls = [json.loads(line) for line in Path(stub_repo).read_text().splitlines()]
    # shard_count has no upstream task: its place among the first jobs is the scheduler's.
    (plan,) = [c for c in calls if c["module"] == "jobs.plan"]
    assert plan["argv"][-4:-1] == ["--num-shards", str(NUM_SHARDS), "--result-file"]
    first_prepare = next(i for i, c in enumerate(calls) if c["module"].endswith(".prepare"))
    assert calls.index(plan) < first_prepare
    modules = [c["module"] for c in calls if c is not plan]
    assert modules[:6] == [
        "jobs.ingest.ingest",
        "jobs.filter.positives",
        "jobs.filter.filter",
        "jobs.filter.refine",
        "jobs.validate.validate",
        "jobs.concepts.prepare",
    ]
    after_concepts = [m for m in modules if m != "jobs.llm.run_shard"][6:12]
    assert after_concepts == [
        "jobs.concepts.collect",
        "jobs.validate.validate",
        "jobs.graph.build",
        "jobs.graph.combinations",
        "jobs.questions.prepare",
        "jobs.questions.collect",
    ]
    rest = [m for m in modules if m != "jobs.llm.run_shard"][12:16]
    assert rest == [
        "jobs.validate.validate",
        "jobs.questions.clean",
        "jobs.validate.validate",
        "jobs.answers.prepare",
    ]
    assert modules[-4:] == [
        "jobs.answers.collect",
        "jobs.validate.validate",
        "jobs.report.report",
        "jobs.publish.publish",
    ]
    # 21 single jobs (shard_count's plan among them); concepts, 3 levels, answers x 3 shards.
    assert len(calls) == 21 + 5 * NUM_SHARDS
    for call in calls:
        argv = call["argv"]
        assert flag(argv, "--snapshot") == "cc-2026-10"
        assert flag(argv, "--attempt") == "1"
        assert flag(argv, "--run-id") == run.run_id
    shards = sorted(
        (flag(c["argv"], "--task"), flag(c["argv"], "--shard"))
        for c in calls
        if c["module"] == "jobs.llm.run_shard"
    )
    tasks = ("answers", "concepts", "questions_l1", "questions_l2", "questions_l3")
    assert shards == [(t, f"{i}/{NUM_SHARDS}") for t in tasks for i in range(NUM_SHARDS)]
    # The prepare jobs write as many shards as are mapped: shard_count's XCom, the param here.
    prepares = [c for c in calls if c["module"].endswith(".prepare")]
    assert [flag(c["argv"], "--num-shards") for c in prepares] == [str(NUM_SHARDS)] * 3
    tables = [flag(c["argv"], "--table") for c in calls if c["module"] == "jobs.validate.validate"]
    assert tables == ["documents", "doc_concepts", "questions", "questions_clean", "qa"]
    assert_mapped_names_and_asset_event(run)


def assert_mapped_names_and_asset_event(run) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        names = session.scalars(
            select(TaskInstance.rendered_map_index)
            .where(TaskInstance.run_id == run.run_id)
            .where(TaskInstance.task_id == "questions_generate")
            .order_by(TaskInstance.map_index)
        ).all()
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "synthllm_dataset")
        ).all()
        assert names == [
            f"--task questions_l{level} --shard {i}/3" for level in (1, 2, 3) for i in range(3)
        ]
        assert [(e.source_task_id, e.source_run_id) for e in events] == [("publish", run.run_id)]
