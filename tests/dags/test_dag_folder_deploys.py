"""The DAG folder deploys alone: a copy of dags/ and nothing else of the repository parses in
the kubernetes profile, and every pod template a task names ships inside that copy.

Airflow's side of a cluster (scheduler, DAG processor, workers) gets the DAG folder only; the
jobs, configs and k8s/ live in the images and the cluster. The probe runs in a fresh
interpreter whose working directory holds the copy and whose path holds no repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"

PROBE = """
import json, sys
from pathlib import Path
try:
    import jobs  # noqa: F401
    jobs_importable = True
except ImportError:
    jobs_importable = False
from airflow.dag_processing.dagbag import BundleDagBag
dags = Path(sys.argv[1])
bag = BundleDagBag(dag_folder=dags, bundle_path=dags)
templates, pod_tasks = {}, []
for dag in bag.dags.values():
    for task in dag.tasks:
        partial = getattr(task, "partial_kwargs", None)
        kwargs = partial if partial is not None else vars(task)
        name = f"{dag.dag_id}.{task.task_id}"
        if "pod_template_file" in kwargs:
            templates[name] = kwargs["pod_template_file"]
        cls = task.operator_class if partial is not None else type(task)
        if cls.__name__ == "JobPodOperator":
            pod_tasks.append(name)
print(json.dumps({
    "jobs_importable": jobs_importable,
    "dags": sorted(bag.dag_ids),
    "errors": {str(k): v for k, v in bag.import_errors.items()},
    "templates": templates,
    "pod_tasks": sorted(pod_tasks),
    "jobs_loaded": sorted(m for m in sys.modules if m == "jobs" or m.startswith("jobs.")),
}))
"""


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("deploy")
    copy = root / "dags"
    shutil.copytree(DAGS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONPATH" and not k.startswith(("SYNTHLLM_", "AIRFLOW"))
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(copy),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="True",
        SYNTHLLM_PROFILE="kubernetes",
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(copy)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {"copy": copy, **json.loads(done.stdout.strip().splitlines()[-1])}


def test_the_repository_is_not_importable_there(deployed):
    assert deployed["jobs_importable"] is False
    assert sorted(p.name for p in deployed["copy"].parent.iterdir()) == ["dags"]


def test_the_copy_parses_without_errors_and_holds_both_dags(deployed):
    assert deployed["errors"] == {}
    assert deployed["dags"] == ["synthllm_generate", "synthllm_scaling"]
    assert deployed["jobs_loaded"] == []


def test_every_pod_template_ships_inside_the_copy(deployed):
    copy = deployed["copy"].resolve()
    templates = deployed["templates"]
    # Every pod task names a template (Spark jobs too: their pod is the driver).
    assert sorted(templates) == deployed["pod_tasks"]
    assert len(templates) == 24 + 4  # the generation DAG's jobs, the scaling DAG's jobs
    for task, path in templates.items():
        resolved = Path(path).resolve()
        assert resolved.is_relative_to(copy), (task, path)
        assert resolved.is_file(), (task, path)
    used = {Path(p).name for p in templates.values()}
    assert used == {"python.yaml", "gpu.yaml", "spark-driver.yaml"}
