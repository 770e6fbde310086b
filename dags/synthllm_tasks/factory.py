"""The one task factory: a ``JobSpec`` in, the operator of the active profile out.

``local``      -> ``LocalJobOperator`` (subprocess on the worker, for every kind of job)
``kubernetes`` -> ``JobPodOperator`` (python, python_gpu, and Spark jobs whose pod is their
                  driver) or, with ``SYNTHLLM_SPARK_RUNTIME=operator``, ``SparkJobOperator``
                  with a rendered ``SparkApplication``: the provider's operators, failing
                  without retries when the job exits with the permanent code (``pods.py``)

A job that returns a value (``JobSpec.returns_value``) gets ``--result-file``: a temporary
file locally, the pod's XCom volume in Kubernetes; the task's XCom is that value either way.
"""

from __future__ import annotations

import os
from typing import Any

from synthllm_tasks.spec import JobSpec

PROFILES = ("local", "kubernetes")
# Where KubernetesPodOperator's XCom sidecar reads a pod's return value.
XCOM_RESULT_FILE = "/airflow/xcom/return.json"


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
    if spec.kind == "spark" and expand_argv is not None:
        raise ValueError(f"{spec.task_id}: mapped Spark jobs are not supported")
    if spec.kind == "spark" and _spark_runtime() == "operator":
        return _spark_task(spec, common)
    return _pod_task(spec, common, expand_argv)


def _spark_runtime() -> str:
    from synthllm_tasks.kubernetes import SPARK_RUNTIME, SPARK_RUNTIMES

    if SPARK_RUNTIME not in SPARK_RUNTIMES:
        raise ValueError(
            f"SYNTHLLM_SPARK_RUNTIME must be one of {SPARK_RUNTIMES}, got {SPARK_RUNTIME!r}"
        )
    return SPARK_RUNTIME


def _local_task(spec: JobSpec, common: dict[str, Any], expand_argv: Any):
    from synthllm_tasks.local import LocalJobOperator

    if spec.kind == "python_gpu":
        # One model in memory at a time: local shards share one machine and one device.
        common.setdefault("max_active_tis_per_dagrun", 1)
    fields = {"module": spec.module, "argv": spec.full_argv, **common}
    if spec.returns_value:
        fields["returns_value"] = True
    if expand_argv is None:
        return LocalJobOperator(**fields)
    return LocalJobOperator.partial(
        map_index_template="{{ task.extra_argv | join(' ') }}", **fields
    ).expand(extra_argv=expand_argv)


def _pod_task(spec: JobSpec, common: dict[str, Any], expand_argv: Any):
    from synthllm_tasks.kubernetes import pod_operator_kwargs
    from synthllm_tasks.pods import JobPodOperator
    from synthllm_tasks.sizing import GPU_POOL

    fields = {**pod_operator_kwargs(spec), **common}
    if spec.kind == "python_gpu":
        # One pool for the GPU work of every synthllm DAG: it caps the GPU pods at once.
        fields.setdefault("pool", GPU_POOL)
    if spec.returns_value:
        # The job writes its value where the provider's XCom sidecar reads it.
        fields["cmds"] = [*fields["cmds"], "--result-file", XCOM_RESULT_FILE]
        fields["do_xcom_push"] = True
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
