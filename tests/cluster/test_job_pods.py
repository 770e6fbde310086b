"""A job of each image kind and a Spark job whose executors are pods, on the real cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from clusterkit import REPO, events_of

HERE = Path(__file__).resolve().parent
FIXTURES = REPO / "tests/fixtures"


def _commit_documents(storage, layout) -> None:
    from committed import commit_table

    from jobs.commit import StageStats

    rows = [json.loads(line) for line in (FIXTURES / "expectations/documents.jsonl").open()]
    commit_table(storage, layout.table("documents"), StageStats(len(rows), len(rows)), rows)


def test_jobs_run_in_pods_and_spark_executors_are_pods(cluster_env, kubectl, storage, tmp_path):
    sys.path.insert(0, str(REPO / "tests/jobs"))  # the commit_table helper
    from jobs.commit import SUCCESS
    from jobs.layout import Layout
    from jobs.storage import join

    snapshot = f"cluster-check-{uuid.uuid4().hex[:8]}"
    layout = Layout(cluster_env["SYNTHLLM_ROOT_URI"], snapshot)
    storage.upload_file(FIXTURES / "ingest/good.jsonl", join(layout.corpus, "part-0.jsonl"))
    _commit_documents(storage, layout)

    result = tmp_path / "result.json"
    env = {
        **cluster_env,
        "PYTHONPATH": str(REPO / "dags"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(HERE / "check_dags"),
        "SYNTHLLM_CHECK_SNAPSHOT": snapshot,
        "SYNTHLLM_CHECK_RESULT": str(result),
    }
    done = subprocess.run(
        ["airflow", "dags", "test", "synthllm_cluster_check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    log = (done.stdout + done.stderr)[-8000:]
    # keep runs last, only after every job task succeeded.
    assert result.is_file(), log
    outcome = json.loads(result.read_text())
    # The Python image's job answered through the XCom sidecar: the overlay's shard count.
    assert outcome["shard_count"] == 2

    # The Spark image's job: 3 documents in, all kept, committed in the S3 API.
    stats = storage.read_json(join(layout.table("documents_raw"), "_stats.json"))
    assert (stats["rows_in"], stats["rows_out"], stats["rows_quarantined"]) == (3, 3, 0)
    assert storage.exists(join(layout.table("documents_raw"), SUCCESS))
    # Its executors were pods of the Spark image, owned by the driver pod, now gone.
    executors = {
        e["involvedObject"]["name"]
        for e in events_of(kubectl)
        if e["reason"] == "Scheduled" and "-exec-" in e["involvedObject"]["name"]
    }
    assert len(executors) >= 2, log
    running = kubectl("-n", "synthllm", "get", "pods", "-l", "spark-role=executor", "-o", "name")
    assert running.stdout.strip() == ""

    # The Python image's validation job read the table and committed a passing verdict.
    verdict_uri = join(layout.run, "validation", "documents")
    assert storage.exists(join(verdict_uri, SUCCESS)), log
