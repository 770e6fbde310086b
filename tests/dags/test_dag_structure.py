"""Layer 3: the expected task graph of synthllm_generate, mapping and the Asset."""

from __future__ import annotations

import pytest
from airflow.sdk.definitions.mappedoperator import MappedOperator

CHAIN = [
    "ingest",
    "filter",
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
HELPERS = {"shards", "level_shards"}


def expected_upstream() -> dict[str, set[str]]:
    upstream = {**{h: set() for h in HELPERS}, CHAIN[0]: set()}
    for before, after in zip(CHAIN, CHAIN[1:], strict=False):
        upstream[after] = {before}
    for task_id, source in MAPPED.items():
        upstream[task_id].add(source)
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
        ("concepts_prepare", ["--num-shards", "{{ params.num_shards }}"]),
        ("validate_documents", ["--table", "documents"]),
        ("validate_questions", ["--table", "questions"]),
        ("validate_qa", ["--table", "qa"]),
        ("questions_prepare", ["--num-shards", "{{ params.num_shards }}"]),
        ("answers_prepare", ["--num-shards", "{{ params.num_shards }}"]),
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
    assert params["num_shards"] == 2
    assert params["config"] == ""
    assert generate_dag.schedule == "@daily"
