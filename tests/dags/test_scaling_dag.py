"""synthllm_scaling in the three layers (integrity, policy, structure), its small tasks, and
one whole local run with stub jobs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.definitions.mappedoperator import MappedOperator
from stubs import install_stub_repo

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "synthllm_scaling"
CHAIN = ["resolve_study", "prepare_subsets", "subset_tails", "train", "evaluate", "fit_report"]
MAPPED = {"train": "jobs.train.train", "evaluate": "jobs.evaluation.evaluate"}
SINGLE = {"prepare_subsets": "jobs.scaling.study", "fit_report": "jobs.scaling.study"}
RESOLVED = "ti.xcom_pull(task_ids='resolve_study')"


def module_file(module: str) -> Path:
    return REPO / (module.replace(".", "/") + ".py")


def argv_of(task) -> list[str]:
    return list(task.partial_kwargs["argv"] if isinstance(task, MappedOperator) else task.argv)


# -- integrity ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["local", "kubernetes"])
def test_parses_in_both_profiles(parse_dags, profile):
    bag = parse_dags(profile)
    assert bag.import_errors == {}
    assert DAG_ID in bag.dag_ids


def test_kubernetes_profile_trains_in_gpu_pods(parse_dags):
    from synthllm_tasks.sizing import GPU_POOL, SIZES

    dag = parse_dags("kubernetes").dags[DAG_ID]
    for task_id in MAPPED:
        task = dag.get_task(task_id)
        assert type(task).__name__ == "MappedOperator"
        kwargs = task.partial_kwargs
        assert kwargs["container_resources"].limits["nvidia.com/gpu"] == "1"
        gpu = SIZES["production"].gpu  # SYNTHLLM_K8S_SIZES unset
        assert kwargs["container_resources"].requests == {"cpu": "8", "memory": "64Gi"}
        assert (gpu.cpu_quantity, gpu.memory) == ("8", "64Gi")
        assert kwargs["cmds"][:3] == ["python", "-m", MAPPED[task_id]]
        assert kwargs["image"].split("/")[-1].startswith("vllm:")
        # The GPU pool the generation DAG's LLM shards share: one cap on GPU pods.
        assert kwargs["pool"] == GPU_POOL
    prepare = dag.get_task("prepare_subsets")
    assert type(prepare).__name__ == "JobPodOperator"
    assert prepare.pool == "default_pool"


# -- policy ------------------------------------------------------------------------------------


def test_dag_policy(scaling_dag):
    dag = scaling_dag
    assert dag.dag_id == Path(dag.fileloc).stem
    for section in ("**Inputs**", "**Outputs**", "**Params**", "**Backfill**", "**Tasks**"):
        assert section in dag.doc_md, section
    for param in dag.params:
        assert f"`{param}`" in dag.doc_md, param
    assert dag.catchup is False and dag.max_active_runs == 1
    assert {"synthllm", "scaling"} <= set(dag.tags)
    for task in dag.tasks:
        assert task.retries >= 1 and task.retry_delay.total_seconds() > 0, task.task_id
        assert task.execution_timeout is not None, task.task_id


def test_study_job_modules_exist():
    for module in SINGLE.values():
        assert module_file(module).is_file(), module


def test_train_and_evaluate_job_modules_exist():
    """The trainer and evaluation jobs are another engineer's work; this fails until both
    land (jobs/train/train.py, jobs/evaluation/evaluate.py)."""
    missing = [m for m in MAPPED.values() if not module_file(m).is_file()]
    assert missing == [], f"job modules without a file: {missing}"


def test_every_job_task_gets_run_flags_and_the_resolved_study(scaling_dag):
    for task_id in [*MAPPED, *SINGLE]:
        argv = argv_of(scaling_dag.get_task(task_id))
        for flag in ("--run-id", "--attempt", "--config"):
            assert flag in argv, (task_id, flag)
        # the resolved snapshot comes after the shared one (argparse keeps the last)
        last = len(argv) - 1 - argv[::-1].index("--snapshot")
        assert argv[last + 1] == "{{ " + RESOLVED + "['snapshot'] }}", task_id
        assert argv[argv.index("--study-id") + 1] == "{{ " + RESOLVED + "['study_id'] }}"


# -- structure ---------------------------------------------------------------------------------


def test_exact_task_graph(scaling_dag):
    actual = {t.task_id: set(t.upstream_task_ids) for t in scaling_dag.tasks}
    expected = {CHAIN[0]: set()}
    for before, after in zip(CHAIN, CHAIN[1:], strict=False):
        expected[after] = {before}
    expected["evaluate"].add("subset_tails")  # mapped over it
    assert actual == expected


def test_train_and_evaluate_are_mapped_over_the_subsets(scaling_dag):
    for task in scaling_dag.tasks:
        assert isinstance(task, MappedOperator) == (task.task_id in MAPPED), task.task_id
    for task_id, module in MAPPED.items():
        task = scaling_dag.get_task(task_id)
        assert [op.task_id for op in task.iter_mapped_dependencies()] == ["subset_tails"]
        assert set(task.expand_input.value) == {"extra_argv"}
        assert task.partial_kwargs["module"] == module
        assert "--subset" not in task.partial_kwargs["argv"]  # each instance names its own


def test_schedule_params_and_job_arguments(scaling_dag):
    from synthllm_tasks import SYNTHLLM_DATASET

    assert scaling_dag.schedule == [SYNTHLLM_DATASET]
    assert dict(scaling_dag.params) == {
        "snapshot": None,
        "recipe": "",
        "num_subsets": 5,
        "eval_set": "",
        "study_id": "",
        "config": "",
    }
    prepare = argv_of(scaling_dag.get_task("prepare_subsets"))
    assert "prepare" in prepare
    assert prepare[-2:] == ["--set", "scaling.num_subsets={{ params.num_subsets }}"]
    assert "report" in argv_of(scaling_dag.get_task("fit_report"))


def test_snapshot_renders_without_a_logical_date(scaling_dag):
    """Asset-triggered runs have no ``ds``: the shared flag renders empty, not an error."""
    task = scaling_dag.get_task("prepare_subsets")
    ti = SimpleNamespace(
        try_number=2, xcom_pull=lambda task_ids: {"snapshot": "s", "study_id": "i"}
    )
    params = {"snapshot": None, "recipe": "", "num_subsets": 4, "eval_set": "", "config": ""}
    ctx = {"params": params, "run_id": "asset_triggered__x", "ti": ti}
    env = scaling_dag.get_template_env()
    argv = [task.render_template(a, ctx, jinja_env=env) for a in task.argv]
    assert argv[:2] == ["--snapshot", ""]
    assert argv[argv.index("prepare") :] == [
        "prepare",
        "--snapshot",
        "s",
        "--study-id",
        "i",
        "--recipe",
        "",
        "--eval-set",
        "",
        "--set",
        "scaling.num_subsets=4",
    ]
    with_ds = [
        task.render_template(a, {**ctx, "ds": "2026-11-01"}, jinja_env=env) for a in task.argv
    ]
    assert with_ds[:2] == ["--snapshot", "2026-11-01"]


# -- the small tasks ---------------------------------------------------------------------------


def resolve(scaling_dag, **kwargs):
    args = {"snapshot": "", "recipe": "", "study_id": "", "run_id": "manual__r", **kwargs}
    return scaling_dag.get_task("resolve_study").python_callable(**args)


def event(ts, extra=None, run=None):
    return SimpleNamespace(timestamp=ts, extra=extra or {}, source_dag_run=run)


def test_resolve_study_prefers_the_param(scaling_dag):
    got = resolve(
        scaling_dag, snapshot="s1", recipe="tiny", run_id="manual__2026-11-01T00:00:00+00:00"
    )
    assert got == {"snapshot": "s1", "study_id": "s1-tiny-manual__2026-11-01T00-00-00-00-00"}
    assert resolve(scaling_dag, snapshot="s1", study_id="mine")["study_id"] == "mine"


def test_resolve_study_reads_the_newest_asset_event(scaling_dag):
    events = {"asset": [event(1, {"snapshot": "old"}), event(2, {"snapshot": "new"})]}
    assert resolve(scaling_dag, triggering_asset_events=events)["snapshot"] == "new"
    run = SimpleNamespace(conf={}, logical_date=datetime(2026, 11, 3, tzinfo=UTC))
    assert (
        resolve(scaling_dag, triggering_asset_events={"a": [event(1, run=run)]})["snapshot"]
        == "2026-11-03"
    )
    run = SimpleNamespace(conf={"snapshot": "cc-10"}, logical_date=None)
    assert (
        resolve(scaling_dag, triggering_asset_events={"a": [event(1, run=run)]})["snapshot"]
        == "cc-10"
    )


def test_resolve_study_requires_a_snapshot(scaling_dag):
    with pytest.raises(ValueError, match="snapshot is required"):
        resolve(scaling_dag, triggering_asset_events={})


def test_study_ids_are_path_safe_and_bounded():
    from synthllm_scaling import path_safe_id

    from jobs.scaling.layout import check_study_id

    long = "s" * 40 + "-recipe-asset_triggered__2026-11-30T18:19:00.123456+00:00"
    for raw in ("a:b+c", long, "2026-11-01-tiny-manual__2026-11-01T00:00:00+00:00"):
        assert check_study_id(path_safe_id(raw))
    assert len(path_safe_id(long)) == 64
    assert path_safe_id(long) != path_safe_id(long.replace("18:19", "18:20"))


def test_subset_tails(scaling_dag):
    tails = scaling_dag.get_task("subset_tails").python_callable
    assert tails("2", "", "") == [
        {"train": ["--subset", "0"], "evaluate": ["--subset", "0"]},
        {"train": ["--subset", "1"], "evaluate": ["--subset", "1"]},
    ]
    got = tails(2, "llama-1b", "s3://b/eval.jsonl")[1]
    assert got["train"] == ["--subset", "1", "--recipe", "llama-1b"]
    assert got["evaluate"] == [
        "--subset",
        "1",
        "--set",
        'evaluation.eval_set_uri="s3://b/eval.jsonl"',
    ]
    with pytest.raises(ValueError, match="num_subsets must be >= 2"):
        tails("1", "", "")


# -- one whole run with stub jobs -----------------------------------------------------------------


@pytest.fixture
def stub_repo(tmp_path, monkeypatch):
    return install_stub_repo(tmp_path, monkeypatch, {*MAPPED.values(), *SINGLE.values()})


def last_flag(argv: list[str], name: str) -> str:
    return argv[len(argv) - 1 - argv[::-1].index(name) + 1]


@pytest.mark.slow
def test_a_run_without_logical_date_maps_every_subset(airflow_db, scaling_dag, stub_repo):
    run = scaling_dag.test(
        logical_date=None,
        run_conf={"snapshot": "cc-2026-10", "num_subsets": 3, "recipe": "tiny_cpu"},
    )
    assert str(run.state) in {"success", "DagRunState.SUCCESS"}
    calls = [json.loads(line) for line in Path(stub_repo).read_text().splitlines()]
    modules = [c["module"] for c in calls]
    assert modules == [
        "jobs.scaling.study",
        *["jobs.train.train"] * 3,
        *["jobs.evaluation.evaluate"] * 3,
        "jobs.scaling.study",
    ]
    study_ids = {last_flag(c["argv"], "--study-id") for c in calls}
    assert len(study_ids) == 1 and next(iter(study_ids)).startswith("cc-2026-10-tiny_cpu-")
    assert {last_flag(c["argv"], "--snapshot") for c in calls} == {"cc-2026-10"}
    trains = sorted(c["argv"][-4:] for c in calls if c["module"] == "jobs.train.train")
    assert trains == [["--subset", str(k), "--recipe", "tiny_cpu"] for k in range(3)]
    evals = sorted(c["argv"][-2:] for c in calls if c["module"] == "jobs.evaluation.evaluate")
    assert evals == [["--subset", str(k)] for k in range(3)]
    assert calls[0]["argv"][-2:] == ["--set", "scaling.num_subsets=3"]
    assert "report" in calls[-1]["argv"]
