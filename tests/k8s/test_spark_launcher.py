"""images/spark/launch.py: the SparkApplication's main file runs a job module like `python -m`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "images/spark/launch.py"


def launch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LAUNCHER), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
    )


def test_runs_a_module_as_main_with_its_arguments(tmp_path):
    (tmp_path / "probe.py").write_text(
        "import json, sys\n"
        "if __name__ == '__main__':\n"
        "    print(json.dumps({'argv': sys.argv, 'name': __name__}))\n"
    )
    result = launch("probe", "--snapshot", "2026-11-01", "--shard", "0/2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["name"] == "__main__"
    assert payload["argv"][1:] == ["--snapshot", "2026-11-01", "--shard", "0/2"]


def test_exit_code_of_the_job_is_the_drivers(tmp_path):
    (tmp_path / "failing.py").write_text("raise SystemExit(3)\n")
    assert launch("failing", cwd=tmp_path).returncode == 3


def test_real_stdlib_module_and_usage_errors(tmp_path):
    doc = tmp_path / "d.json"
    doc.write_text('{"b": 1, "a": 2}')
    result = launch("json.tool", "--sort-keys", str(doc), cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines() == ["{", '    "a": 2,', '    "b": 1', "}"]
    for bad in ([], ["--snapshot", "x"]):
        result = launch(*bad, cwd=tmp_path)
        assert result.returncode == 2
        assert "usage: launch.py <module>" in result.stderr
    missing = launch("no_such_module_xyz", cwd=tmp_path)
    assert missing.returncode == 1 and "No module named no_such_module_xyz" in missing.stderr
