"""A DAG of real job tasks from the project's factory, for the cluster tests.

Parsed and run by ``airflow dags test synthllm_cluster_check`` with this folder as the DAG
folder, ``dags/`` on PYTHONPATH and the cluster's Airflow environment
(scripts/k8s/airflow-env.sh: the kubernetes profile, this checkout's images, the
synthllm-airflow identity), so the factory builds pods exactly as the real DAGs do:
- ``shard_count`` (jobs.plan, Python image): its result travels through the XCom sidecar;
- ``ingest`` (Spark image): the task's pod is the driver, executors are pods it creates;
- ``validate_documents`` (Python image): Great Expectations on a table in the S3 API;
- ``keep``: runs last, after all three succeeded, and writes shard_count's XCom to
  $SYNTHLLM_CHECK_RESULT.
The snapshot is $SYNTHLLM_CHECK_SNAPSHOT (tests/cluster/test_job_pods.py sets both).
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, task
from synthllm_tasks import JobSpec, job_task
from synthllm_tasks.sizing import active_sizes

OVERLAY = "configs/cluster-local.toml"
SIZES = active_sizes()

with DAG(
    dag_id="synthllm_cluster_check",
    schedule=None,
    params={
        "snapshot": os.environ.get("SYNTHLLM_CHECK_SNAPSHOT", ""),
        "num_shards": None,
        "config": OVERLAY,
    },
    dagrun_timeout=timedelta(minutes=30),
    tags=["synthllm", "test"],
) as dag:
    count = job_task(
        JobSpec(
            "shard_count",
            "jobs.plan",
            ("--num-shards", "{{ params.num_shards or '' }}"),
            resources=SIZES.cpu,
            timeout=timedelta(minutes=5),
            returns_value=True,
        )
    )
    ingest = job_task(
        JobSpec(
            "ingest",
            "jobs.ingest.ingest",
            kind="spark",
            resources=SIZES.spark,
            timeout=timedelta(minutes=15),
        )
    )
    validate = job_task(
        JobSpec(
            "validate_documents",
            "jobs.validate.validate",
            ("--table", "documents"),
            resources=SIZES.table,
            timeout=timedelta(minutes=10),
        )
    )

    @task
    def keep(value):
        Path(os.environ["SYNTHLLM_CHECK_RESULT"]).write_text(json.dumps({"shard_count": value}))

    count >> ingest >> validate >> keep(count.output)
