"""Test helper: a throw-away repository whose job modules only record how they were called.

The DAG-run tests point ``SYNTHLLM_REPO`` at it, so Airflow runs every task for real while
each job appends ``{"module", "argv"}`` to ``SYNTHLLM_STUB_LOG``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

STUB = """
import json, os, sys
with open(os.environ["SYNTHLLM_STUB_LOG"], "a") as fh:
    fh.write(json.dumps({"module": __spec__.name, "argv": sys.argv[1:]}) + "\\n")
print(f"{__spec__.name} ok")
"""


def install_stub_repo(tmp_path: Path, monkeypatch, modules: Iterable[str]) -> Path:
    """Write a stub for each module under ``tmp_path/repo``; returns the call log's path."""
    root = tmp_path / "repo"
    for module in modules:
        path = root / (module.replace(".", "/") + ".py")
        for parent in [path.parent, *path.parent.parents]:
            if parent == root:
                break
            parent.mkdir(parents=True, exist_ok=True)
            (parent / "__init__.py").touch()
        path.write_text(STUB)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("SYNTHLLM_REPO", str(root))
    monkeypatch.setenv("SYNTHLLM_STUB_LOG", str(log))
    return log
