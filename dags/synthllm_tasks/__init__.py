"""Task building blocks shared by the DAG files (not a DAG file: see ../.airflowignore).

Import-light on purpose: no ``jobs.*``, pyspark, torch, pandas or great_expectations, so
the DAG processor parses the DAG files in milliseconds.
"""

from synthllm_tasks.assets import SYNTHLLM_DATASET
from synthllm_tasks.factory import PROFILES, active_profile, job_task
from synthllm_tasks.spec import (
    DEFAULT_ARGS,
    RUN_ARGV,
    SNAPSHOT,
    JobSpec,
    Resources,
    shard_argv,
)

__all__ = [
    "DEFAULT_ARGS",
    "PROFILES",
    "RUN_ARGV",
    "SNAPSHOT",
    "SYNTHLLM_DATASET",
    "JobSpec",
    "Resources",
    "active_profile",
    "job_task",
    "shard_argv",
]
