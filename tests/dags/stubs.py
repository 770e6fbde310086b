"""Test helper: a throw-away repository whose job modules only record how they were called.

The DAG-run tests point ``SYNTHLLM_REPO`` at it, so Airflow runs every task for real while
each job appends ``{"module", "argv"}`` to ``SYNTHLLM_STUB_LOG``. A job that returns a value
(``JobSpec.returns_value``: ``jobs.plan``) writes the one it is given to ``--result-file``,
as the real job does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

STUB = """
import json, os, sys
with open(os.environ["SYNTHLLM_STUB_LOG"], "a") as fh:
    fh.write(json.dumps({"module": __spec__.name, "argv": sys.argv[1:]}) + "\\n")
RESULT = __RESULT__
if RESULT is not None:
    with open(sys.argv[sys.argv.index("--result-file") + 1], "w") as fh:
        fh.write(RESULT)
print(f"{__spec__.name} ok")
"""


def install_stub_repo(
    tmp_path: Path,
    monkeypatch,
    modules: Iterable[str],
    results: Mapping[str, Any] | None = None,
) -> Path:
    """Write a stub for each module under ``tmp_path/repo``; returns the call log's path.

    ``results``: module -> the JSON value its stub writes to ``--result-file``.
    """
    results = dict(results or {})
    root = tmp_path / "repo"
    for module in {*modules, *results}:
        path = root / (module.replace(".", "/") + ".py")
        for parent in [path.parent, *path.parent.parents]:
            if parent == root:
                break
            parent.mkdir(parents=True, exist_ok=True)
            (parent / "__init__.py").touch()
        result = repr(json.dumps(results[module])) if module in results else "None"
        path.write_text(STUB.replace("__RESULT__", result))
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("SYNTHLLM_REPO", str(root))
    monkeypatch.setenv("SYNTHLLM_STUB_LOG", str(log))
    return log
