"""The local profile's house operator runs real subprocesses: output, exit codes, env, kill."""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import structlog
from airflow.sdk.exceptions import AirflowFailException
from synthllm_tasks.local import JobFailedError, JobPermanentError, LocalJobOperator, repo_root

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_repo(tmp_path, monkeypatch):
    """A folder used as the repo root; returns a helper that writes a module into it."""
    monkeypatch.setenv("SYNTHLLM_REPO", str(tmp_path))

    def write(name: str, body: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
        return name

    return write


@pytest.fixture
def task_log():
    """Captures the operator's task log (structlog in Airflow 3) with arrival times."""

    def stamp(_logger, _name, event):
        event["at"] = time.monotonic()
        return event

    with structlog.testing.capture_logs(processors=[stamp]) as events:
        yield events


def lines(events) -> list[str]:
    return [e["event"] for e in events]


def test_runs_a_real_module_and_streams_its_output(tmp_path, task_log):
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps({"answer": 42, "question": "6*7"}))
    op = LocalJobOperator(task_id="pretty", module="json.tool", argv=["--sort-keys", str(doc)])
    op.execute({})
    assert '    "answer": 42,' in lines(task_log)
    assert '    "question": "6*7"' in lines(task_log)
    assert op.command() == [sys.executable, "-m", "json.tool", "--sort-keys", str(doc)]


def test_failure_carries_exit_code_and_last_stderr_lines(fake_repo):
    module = fake_repo(
        "failing_job",
        """
        import sys
        print("working", flush=True)
        for i in range(40):
            print(f"err {i}", file=sys.stderr)
        sys.exit(3)
        """,
    )
    op = LocalJobOperator(task_id="fail", module=module)
    with pytest.raises(JobFailedError) as info:
        op.execute({})
    err = info.value
    assert err.returncode == 3
    assert err.tail == [f"err {i}" for i in range(15, 40)]
    assert "failing_job exited with code 3" in str(err) and "err 39" in str(err)
    assert not isinstance(err, AirflowFailException)


def test_permanent_exit_fails_without_retry(fake_repo):
    module = fake_repo("bad_config", "import sys\nprint('bad key', file=sys.stderr)\nsys.exit(2)\n")
    with pytest.raises(JobPermanentError) as info:
        LocalJobOperator(task_id="cfg", module=module).execute({})
    assert isinstance(info.value, AirflowFailException)
    assert info.value.returncode == 2 and info.value.tail == ["bad key"]


@pytest.mark.parametrize("code", [75, 1, 137])
def test_transient_and_unexpected_exits_stay_retryable(fake_repo, code):
    module = fake_repo(f"exit_{code}", f"raise SystemExit({code})\n")
    with pytest.raises(JobFailedError) as info:
        LocalJobOperator(task_id="t", module=module).execute({})
    assert info.value.returncode == code
    assert not isinstance(info.value, AirflowFailException)


def test_a_real_job_failing_permanently_is_not_retried(tmp_path, monkeypatch):
    """End to end: jobs.ingest.ingest on a missing snapshot exits 2, the operator won't retry."""
    monkeypatch.setenv("SYNTHLLM_ROOT_URI", f"file://{tmp_path}")
    op = LocalJobOperator(
        task_id="ingest", module="jobs.ingest.ingest", argv=["--snapshot", "2026-11-01"]
    )
    with pytest.raises(JobPermanentError) as info:
        op.execute({})
    assert info.value.returncode == 2
    assert any("no input files" in line for line in info.value.tail)


def test_runs_in_repo_root_with_worker_env_and_mapped_tail(fake_repo, monkeypatch, task_log):
    monkeypatch.setenv("SYNTHLLM_ROOT_URI", "file:///data/root")
    module = fake_repo(
        "echo_job",
        """
        import json, os, sys
        print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(),
                          "root": os.environ.get("SYNTHLLM_ROOT_URI")}))
        """,
    )
    op = LocalJobOperator(
        task_id="echo", module=module, argv=["--snapshot", "s1"], extra_argv=["--shard", "1/2"]
    )
    op.execute({})
    payload = json.loads(next(line for line in lines(task_log) if line.startswith("{")))
    assert payload == {
        "argv": ["--snapshot", "s1", "--shard", "1/2"],
        "cwd": str(repo_root()),
        "root": "file:///data/root",
    }


def test_lines_reach_the_log_while_the_job_runs(fake_repo, task_log):
    module = fake_repo(
        "slow_job",
        """
        import sys, time
        print("first")
        print("err first", file=sys.stderr)
        time.sleep(1.5)
        print("second")
        """,
    )
    op = LocalJobOperator(task_id="slow", module=module)
    op.execute({})
    when = {e["event"]: e["at"] for e in task_log}
    assert {"first", "err first", "second"} <= set(when)
    assert when["second"] - when["first"] > 0.7


def test_on_kill_terminates_the_subprocess(fake_repo):
    module = fake_repo("sleeper", "import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    op = LocalJobOperator(task_id="sleep", module=module)
    errors: list[BaseException] = []

    def run():
        try:
            op.execute({})
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    start = time.monotonic()
    thread.start()
    while op._proc is None and time.monotonic() - start < 10:
        time.sleep(0.05)
    op.on_kill()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert time.monotonic() - start < 30
    assert len(errors) == 1 and isinstance(errors[0], JobFailedError)
    assert errors[0].returncode == -15


def test_repo_root_defaults_to_parent_of_dags(monkeypatch):
    monkeypatch.delenv("SYNTHLLM_REPO", raising=False)
    assert repo_root() == REPO
    monkeypatch.setenv("SYNTHLLM_REPO", "/srv/synthllm")
    assert repo_root() == Path("/srv/synthllm")


def test_a_returning_job_writes_its_value_to_the_result_file(fake_repo):
    module = fake_repo(
        "plan_job",
        """
        import json, os, sys
        path = sys.argv[sys.argv.index("--result-file") + 1]
        with open(path, "w") as fh:
            json.dump({"argv": sys.argv[1:-2], "shards": 4, "dir": os.path.dirname(path)}, fh)
        """,
    )
    op = LocalJobOperator(
        task_id="plan", module=module, argv=["--snapshot", "s1"], returns_value=True
    )
    value = op.execute({})
    assert value["shards"] == 4 and value["argv"] == ["--snapshot", "s1"]
    # A fresh temporary folder per run, removed once the value is read.
    assert Path(value["dir"]).name.startswith("synthllm-result-")
    assert not Path(value["dir"]).exists()
    # Without returns_value the job gets no --result-file and the task returns nothing.
    plain = LocalJobOperator(task_id="echo", module="json.tool", argv=["--help"])
    assert plain.execute({}) is None
    assert "--result-file" not in plain.command()


def test_a_returning_job_that_writes_nothing_fails(fake_repo):
    module = fake_repo("silent_job", "print('done')\n")
    with pytest.raises(JobFailedError, match="wrote no --result-file") as info:
        LocalJobOperator(task_id="plan", module=module, returns_value=True).execute({})
    assert not isinstance(info.value, AirflowFailException)


def test_a_returning_job_that_exits_permanently_is_not_retried(fake_repo):
    module = fake_repo("bad_plan", "raise SystemExit(2)\n")
    with pytest.raises(JobPermanentError):
        LocalJobOperator(task_id="plan", module=module, returns_value=True).execute({})
