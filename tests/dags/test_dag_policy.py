"""Layer 2: house rules every DAG and task follows (STYLE.md rules 6-8)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
RUN_FLAGS = ("--snapshot", "--run-id", "--attempt")


def job_module(task) -> str | None:
    """The job module a local-profile task runs (None for plain Python tasks)."""
    partial = getattr(task, "partial_kwargs", None)
    if partial is not None:
        return partial.get("module")
    return getattr(task, "module", None)


def job_argv(task) -> list[str]:
    partial = getattr(task, "partial_kwargs", None)
    return list(partial["argv"] if partial is not None else task.argv)


def test_dag_level_policy(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag_id == Path(dag.fileloc).stem
        assert dag.doc_md and "backfill" in dag.doc_md.lower(), dag_id
        assert dag.tags, dag_id
        assert dag.catchup is False, dag_id
        assert dag.max_active_runs == 1, dag_id
        assert dag.schedule is not None, f"{dag_id}: backfill needs a time schedule"


def test_every_task_retries_and_has_a_timeout(dagbag):
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            assert task.retries >= 1, task.task_id
            assert task.retry_delay.total_seconds() > 0, task.task_id


def test_every_job_task_names_an_existing_module_file(generate_dag):
    modules = {}
    for task in generate_dag.tasks:
        module = job_module(task)
        if module is not None:
            modules[task.task_id] = module
    assert len(modules) == 24  # 23 pipeline jobs and shard_count's jobs.plan
    assert modules["shard_count"] == "jobs.plan"
    missing = {
        tid: mod
        for tid, mod in modules.items()
        if not (REPO / (mod.replace(".", "/") + ".py")).is_file()
    }
    assert missing == {}, f"job modules without a file under jobs/: {missing}"


def test_every_job_task_gets_the_run_scoped_flags(generate_dag):
    for task in generate_dag.tasks:
        if job_module(task) is None:
            continue
        argv = job_argv(task)
        for flag in RUN_FLAGS:
            assert flag in argv, (task.task_id, flag)
        assert argv[argv.index("--snapshot") + 1] == "{{ params.snapshot or ds }}"
        assert argv[argv.index("--run-id") + 1] == "{{ run_id }}"
        assert argv[argv.index("--attempt") + 1] == "{{ ti.try_number }}"
        assert task.execution_timeout is not None, task.task_id


FORBIDDEN_IMPORTS = {"jobs", "pyspark", "torch", "pandas", "great_expectations", "vllm"}
FORBIDDEN_CALLS = {"Variable.get", "open", "read_text", "read_bytes", "listdir", "glob"}
# Operator methods Airflow calls on the worker when the task runs, never while parsing: the
# local operator reads its job's --result-file there.
RUN_TIME_METHODS = {"execute"}


def _python_files():
    return sorted(DAGS.rglob("*.py"))


def _parse_time_nodes(tree: ast.AST):
    """Every node but the bodies of the methods in RUN_TIME_METHODS."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            run_time = (
                isinstance(node, ast.ClassDef)
                and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                and child.name in RUN_TIME_METHODS
            )
            if not run_time:
                todo.append(child)


@pytest.mark.parametrize("path", _python_files(), ids=lambda p: str(p.relative_to(DAGS)))
def test_dag_code_imports_nothing_heavy_and_does_no_io(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    imported, calls = set(), set()
    # Imports are checked everywhere: the DAG code never needs the jobs' libraries.
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    for node in _parse_time_nodes(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                base = func.value.id if isinstance(func.value, ast.Name) else ""
                calls |= {func.attr, f"{base}.{func.attr}"}
            elif isinstance(func, ast.Name):
                calls.add(func.id)
    assert imported & FORBIDDEN_IMPORTS == set()
    assert calls & FORBIDDEN_CALLS == set()


@pytest.mark.parametrize(
    "source",
    [
        "import pandas\n",
        "from jobs.ingest import ingest\n",
        "x = Variable.get('k')\n",
        # I/O anywhere but in an operator's execute: a helper, another method, a function.
        "def rows(p):\n    return p.read_text()\n",
        "class Op:\n    def __init__(self, p):\n        self.text = p.read_text()\n",
        "class Op:\n    def execute(self, ctx):\n        return helper()\n"
        "def helper():\n    return open('x')\n",
        # Heavy imports stay forbidden in execute too.
        "class Op:\n    def execute(self, ctx):\n        import torch\n",
    ],
)
def test_the_import_check_can_fail(tmp_path, source):
    bad = tmp_path / "bad_dag.py"
    bad.write_text(source)
    with pytest.raises(AssertionError):
        test_dag_code_imports_nothing_heavy_and_does_no_io(bad)


def test_the_import_check_lets_an_operator_read_its_result_when_it_runs(tmp_path):
    ok = tmp_path / "operator.py"
    ok.write_text("class Op:\n    def execute(self, ctx):\n        return self.path.read_text()\n")
    test_dag_code_imports_nothing_heavy_and_does_no_io(ok)
