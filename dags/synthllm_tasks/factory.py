"""The one task factory: a ``JobSpec`` in, the operator of the active profile out.

``local``      -> ``LocalJobOperator`` (subprocess on the worker, for every kind of job)
``kubernetes`` -> ``JobPodOperator`` (python, python_gpu) or ``SparkJobOperator`` with a
                  rendered ``SparkApplication`` (spark): the provider's operators, failing
                  without retries when the job exits with the permanent code (``pods.py``)
"""

from __future__ import annotations

import os
from typing import Any

from synthllm_tasks.spec import JobSpec

PROFILES = ("local", "kubernetes")


def active_profile() -> str:
    """$SYNTHLLM_PROFILE (default ``local``), read when a DAG file is parsed: env only, no I/O."""
    return os.environ.get("SYNTHLLM_PROFILE", "local")


def job_task(
    spec: JobSpec,
    # None: the active profile, so one DAG file serves a laptop and a cluster unchanged.
    profile: str | None = None,
    *,
    # None: a single task; mapping is opt-in for the sharded LLM stages only.
    expand_argv: Any = None,
    **kwargs: Any,
):
    """Build the task for ``spec`` in ``profile``.

    ``expand_argv``: when given (an XComArg or a list of argv tails such as
    ``[["--shard", "0/2"], ["--shard", "1/2"]]``), the task is mapped with one instance per
    tail, via ``.partial(...).expand(...)``. Extra ``kwargs`` go to the operator.
    """
    profile = profile or active_profile()
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    common: dict[str, Any] = {
        "task_id": spec.task_id,
        "execution_timeout": spec.timeout,
        **kwargs,
    }
    if profile == "local":
        return _local_task(spec, common, expand_argv)
    if spec.kind == "spark":
        if expand_argv is not None:
            raise ValueError(f"{spec.task_id}: mapped Spark jobs are not supported")
        return _spark_task(spec, common)
    return _pod_task(spec, common, expand_argv)


def _local_task(spec: JobSpec, common: dict[str, Any], expand_argv: Any):
    from synthllm_tasks.local import LocalJobOperator

    if spec.kind == "python_gpu":
        # One model in memory at a time: local shards share one machine and one device.
        common.setdefault("max_active_tis_per_dagrun", 1)
    fields = {"module": spec.module, "argv": spec.full_argv, **common}
    if expand_argv is None:
        return LocalJobOperator(**fields)
    return LocalJobOperator.partial(
        map_index_template="{{ task.extra_argv | join(' ') }}", **fields
    ).expand(extra_argv=expand_argv)


def _pod_task(spec: JobSpec, common: dict[str, Any], expand_argv: Any):
    from synthllm_tasks.kubernetes import pod_operator_kwargs
    from synthllm_tasks.pods import JobPodOperator

    fields = {**pod_operator_kwargs(spec), **common}
    if expand_argv is None:
        return JobPodOperator(**fields)
    fields.pop("arguments")
    return JobPodOperator.partial(
        map_index_template="{{ task.arguments | join(' ') }}", **fields
    ).expand(arguments=expand_argv)


def _spark_task(spec: JobSpec, common: dict[str, Any]):
    from synthllm_tasks.kubernetes import NAMESPACE, spark_application
    from synthllm_tasks.pods import SparkJobOperator

    app = spark_application(spec)
    return SparkJobOperator(
        name=app["metadata"]["name"],
        namespace=NAMESPACE,
        template_spec=app,
        # Driver logs stream into the task log; the application is deleted afterwards.
        get_logs=True,
        delete_on_termination=True,
        # A retry after a worker crash picks the running driver up instead of starting over.
        reattach_on_restart=True,
        **common,
    )
