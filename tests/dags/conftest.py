"""DAG test set-up: a throw-away AIRFLOW_HOME, the dags folder importable, one parsed DagBag.

The environment is set when this file is imported, before any test module imports airflow:
importing airflow without AIRFLOW_HOME creates ~/airflow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"

# Shared by tests/dags and tests/k8s (whichever conftest loads first creates it).
if "SYNTHLLM_TEST_AIRFLOW_HOME" not in os.environ:
    os.environ["SYNTHLLM_TEST_AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="synthllm-airflow-")
_AIRFLOW_HOME = os.environ["SYNTHLLM_TEST_AIRFLOW_HOME"]
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ.pop("SYNTHLLM_PROFILE", None)
if str(DAGS) not in sys.path:
    sys.path.insert(0, str(DAGS))


@pytest.fixture(scope="session", autouse=True)
def _airflow_home():
    yield _AIRFLOW_HOME
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


def _parse_dags(profile: str = "local"):
    """Parse the dags folder as the DAG processor does (bundle path on sys.path)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    old = os.environ.get("SYNTHLLM_PROFILE")
    os.environ["SYNTHLLM_PROFILE"] = profile
    try:
        return BundleDagBag(dag_folder=DAGS, bundle_path=DAGS)
    finally:
        if old is None:
            os.environ.pop("SYNTHLLM_PROFILE", None)
        else:
            os.environ["SYNTHLLM_PROFILE"] = old


@pytest.fixture(scope="session")
def parse_dags():
    """``parse_dags(profile)`` -> a freshly parsed DagBag under that profile."""
    return _parse_dags


@pytest.fixture(scope="session")
def dagbag():
    """The dags folder parsed once under the local profile."""
    return _parse_dags("local")


@pytest.fixture(scope="session")
def generate_dag(dagbag):
    return dagbag.dags["synthllm_generate"]


@pytest.fixture(scope="session")
def airflow_db(_airflow_home):
    """A migrated SQLite metadata DB in the temp AIRFLOW_HOME (only for dag.test())."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
        timeout=300,
    )
    return _airflow_home
