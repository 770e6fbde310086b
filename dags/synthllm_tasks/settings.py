"""Config values a DAG needs at run time, read by the jobs' own config loader.

DAG code never imports ``jobs`` (parsing stays light, STYLE.md rule 6), and it must not keep a
second copy of the profiles' values either: a task that needs one (the shard count to map
over) runs ``python -m jobs.show_config`` in the repository, with the worker's interpreter and
working directory, as the local profile runs every job. So the value is the one the jobs load
for the same profile and overlay; the task passes it on to them, so they cannot disagree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

# jobs/cli.py's exit code for an invalid config or key: retrying cannot help.
EXIT_CONFIG = 2


def config_value(key: str, profile: str, config: str = "") -> Any:
    """The value of ``key`` (e.g. ``generation.num_shards``) for ``profile`` plus overlay."""
    from airflow.sdk.exceptions import AirflowFailException

    from synthllm_tasks.local import repo_root

    cmd = [sys.executable, "-m", "jobs.show_config", "--profile", profile, "--config", config]
    done = subprocess.run(
        [*cmd, key], cwd=repo_root(), capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode == EXIT_CONFIG:
        raise AirflowFailException(f"config {profile}+{config!r}: {done.stderr.strip()}")
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} {key} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)
