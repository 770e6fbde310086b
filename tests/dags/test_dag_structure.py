"""Layer 3: the expected task graph of synthllm_generate, mapping and the Asset."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
from airflow.sdk.definitions.mappedoperator import MappedOperator

CHAIN = [
    "ingest",
    "write_positives",
    "filter",
    "refine",
    "validate_documents",
    "concepts_prepare",
    "concepts_generate",
    "concepts_collect",
    "validate_doc_concepts",
    "build_graph",
    "sample_combinations",
    "questions_prepare",
    "questions_generate",
    "questions_collect",
    "validate_questions",
    "clean_questions",
    "validate_questions_clean",
    "answers_prepare",
    "answers_generate",
    "answers_collect",
    "validate_qa",
    "report",
    "publish",
]
# Mapped task -> the task whose XCom it is mapped over.
MAPPED = {
    "concepts_generate": "shards",
    "questions_generate": "level_shards",
    "answers_generate": "shards",
}
HELPERS = {"shard_count", "shards", "level_shards"}
# Tasks that take the run's resolved shard count (shard_count's XCom).
COUNTED = {"shards", "level_shards", "concepts_prepare", "questions_prepare", "answers_prepare"}
NUM_SHARDS = "{{ ti.xcom_pull(task_ids='shard_count') }}"


def expected_upstream() -> dict[str, set[str]]:
    upstream = {**{h: set() for h in HELPERS}, CHAIN[0]: set()}
    for before, after in zip(CHAIN, CHAIN[1:], strict=False):
        upstream[after] = {before}
    for task_id, source in MAPPED.items():
        upstream[task_id].add(source)
    for task_id in COUNTED:
        upstream[task_id].add("shard_count")
    return upstream


def test_exact_task_ids_and_edges(generate_dag):
    actual = {t.task_id: set(t.upstream_task_ids) for t in generate_dag.tasks}
    assert actual == expected_upstream()


def test_topological_order_follows_the_pipeline(generate_dag):
    order = [t.task_id for t in generate_dag.topological_sort() if t.task_id not in HELPERS]
    assert order == CHAIN


def test_llm_stages_are_mapped_over_the_shard_ids(generate_dag):
    for task in generate_dag.tasks:
        assert isinstance(task, MappedOperator) == (task.task_id in MAPPED), task.task_id
    for task_id, source in MAPPED.items():
        task = generate_dag.get_task(task_id)
        assert [op.task_id for op in task.iter_mapped_dependencies()] == [source]
        assert set(task.expand_input.value) == {"extra_argv"}
        assert task.partial_kwargs["module"] == "jobs.llm.run_shard"


@pytest.mark.parametrize(
    ("task_id", "extra"),
    [
        ("concepts_generate", ["--task", "concepts"]),
        ("answers_generate", ["--task", "answers"]),
        ("validate_doc_concepts", ["--table", "doc_concepts"]),
        ("concepts_prepare", ["--num-shards", NUM_SHARDS]),
        ("validate_documents", ["--table", "documents"]),
        ("validate_questions", ["--table", "questions"]),
        ("validate_questions_clean", ["--table", "questions_clean"]),
        ("validate_qa", ["--table", "qa"]),
        ("questions_prepare", ["--num-shards", NUM_SHARDS]),
        ("answers_prepare", ["--num-shards", NUM_SHARDS]),
    ],
)
def test_stage_specific_arguments(generate_dag, task_id, extra):
    task = generate_dag.get_task(task_id)
    argv = task.partial_kwargs["argv"] if task_id in MAPPED else task.argv
    assert argv[-len(extra) :] == extra


def test_shard_ids_come_from_num_shards(generate_dag):
    shards = generate_dag.get_task("shards").python_callable
    assert shards("3") == ["0/3", "1/3", "2/3"]
    assert shards(1) == ["0/1"]
    with pytest.raises(ValueError, match="num_shards must be >= 1"):
        shards("0")


def test_question_instances_cover_every_level_and_shard(generate_dag):
    level_shards = generate_dag.get_task("level_shards").python_callable
    assert level_shards("2") == [
        ["--task", f"questions_l{level}", "--shard", f"{i}/2"]
        for level in (1, 2, 3)
        for i in (0, 1)
    ]
    with pytest.raises(ValueError, match="num_shards must be >= 1"):
        level_shards(0)
    task = generate_dag.get_task("questions_generate")
    assert "--task" not in task.partial_kwargs["argv"]  # each instance names its level


def test_publish_updates_the_dataset_asset(generate_dag):
    from synthllm_tasks import SYNTHLLM_DATASET

    assert generate_dag.get_task("publish").outlets == [SYNTHLLM_DATASET]
    assert SYNTHLLM_DATASET.name == "synthllm_dataset"
    assert SYNTHLLM_DATASET.uri.startswith("s3://")
    others = [t.task_id for t in generate_dag.tasks if t.outlets and t.task_id != "publish"]
    assert others == []


def test_params_and_schedule(generate_dag):
    params = generate_dag.params
    assert params["snapshot"] is None
    assert params["num_shards"] is None  # the config's generation.num_shards
    assert params["config"] == ""
    assert generate_dag.schedule == "@daily"


def test_shard_count_is_the_plan_job_returning_its_value(generate_dag):
    from synthllm_tasks.local import LocalJobOperator

    task = generate_dag.get_task("shard_count")
    assert isinstance(task, LocalJobOperator)
    assert task.module == "jobs.plan"
    assert task.returns_value is True
    assert task.argv[-2:] == ["--num-shards", "{{ params.num_shards or '' }}"]
    # Every other job's exit code is its only answer.
    others = [t for t in generate_dag.tasks if isinstance(t, LocalJobOperator) and t is not task]
    assert others and not any(t.returns_value for t in others)


def run_shard_count(task, num_shards=None, config=""):
    """Render ``task`` for a run with these params and run it: its XCom (the job's value)."""
    from airflow.sdk import Context

    ctx = Context(
        params={"snapshot": None, "num_shards": num_shards, "config": config},
        ds="2026-11-01",
        run_id="manual__2026-11-01T00:00:00+00:00",
        ti=SimpleNamespace(try_number=1),
    )
    op = copy.copy(task)
    op.argv = list(task.argv)
    op.render_template_fields(ctx)
    return op.execute(ctx)


def test_num_shards_param_wins_only_when_set(generate_dag, tmp_path, monkeypatch):
    """Param set: it wins; empty (the default): the config's generation.num_shards.

    shard_count runs the real jobs.plan in a subprocess, as on a local worker.
    """
    from synthllm_tasks.local import JobPermanentError

    monkeypatch.delenv("SYNTHLLM_REPO", raising=False)  # the real jobs, not a stub repo
    monkeypatch.delenv("SYNTHLLM_PROFILE", raising=False)  # the local worker's profile
    param = generate_dag.params.get_param("num_shards")
    assert param.value is None and "wins over the config" in param.description
    assert "the param wins over the config" in generate_dag.doc_md
    task = generate_dag.get_task("shard_count")
    assert run_shard_count(task) == 2  # the code default; local.toml sets none
    assert run_shard_count(task, num_shards=5) == 5
    overlay = tmp_path / "overlay.toml"
    overlay.write_text("[generation]\nnum_shards = 7\n")
    assert run_shard_count(task, config=str(overlay)) == 7
    assert run_shard_count(task, num_shards=3, config=str(overlay)) == 3
    overlay.write_text("[generation]\nnum_shards = 0\n")
    with pytest.raises(JobPermanentError) as info:
        run_shard_count(task, config=str(overlay))
    assert info.value.returncode == 2 and "num_shards" in "\n".join(info.value.tail)


def test_no_local_task_takes_the_gpu_pool(generate_dag, scaling_dag):
    """The GPU pool caps GPU pods in Kubernetes; locally one machine runs one model at a time."""
    from synthllm_tasks.sizing import GPU_POOL

    for dag in (generate_dag, scaling_dag):
        pools = {t.task_id: t.pool for t in dag.tasks}
        assert GPU_POOL not in pools.values(), pools
    assert (
        generate_dag.get_task("answers_generate").partial_kwargs["max_active_tis_per_dagrun"] == 1
    )
