"""Parsing the DAG files in a fresh interpreter loads no job code and no heavy library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ["jobs", "pyspark", "torch", "pandas", "great_expectations", "transformers", "vllm"]

# Parses the dags folder under each profile in turn, then reports which of the watched
# top-level modules got imported. `json` is watched too: the probe imports it itself, which
# proves the sys.modules check can fail.
PROBE = """
import json, os, sys
from pathlib import Path
from airflow.dag_processing.dagbag import BundleDagBag
dags, watched = Path(sys.argv[1]), set(json.loads(sys.argv[2]))
out = {}
for profile in ("local", "kubernetes"):
    os.environ["SYNTHLLM_PROFILE"] = profile
    bag = BundleDagBag(dag_folder=dags, bundle_path=dags)
    loaded = sorted({m.split(".")[0] for m in sys.modules} & watched)
    errors = list(bag.import_errors)
    out[profile] = {"dags": sorted(bag.dag_ids), "errors": errors, "loaded": loaded}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe() -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO / "dags"), json.dumps([*HEAVY, "json"])],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("profile", ["local", "kubernetes"])
def test_parsing_imports_no_heavy_module(probe, profile):
    out = probe[profile]
    assert out["errors"] == []
    assert "synthllm_generate" in out["dags"]
    assert out["loaded"] == ["json"]
