"""DAG test set-up: a throw-away AIRFLOW_HOME, the dags folder importable, one parsed DagBag.

The environment is set when this file is imported, before any test module imports airflow:
importing airflow without AIRFLOW_HOME creates ~/airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"

# The Airflow environment (a throw-away AIRFLOW_HOME) is set by tests/conftest.py.


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


@pytest.fixture(scope="session")
def scaling_dag(dagbag):
    return dagbag.dags["synthllm_scaling"]
