"""Airflow Assets shared between DAGs (producer and consumers must use the same object)."""

from __future__ import annotations

from airflow.sdk import Asset

# Updated by `synthllm_generate.publish`; `synthllm_scaling` is scheduled on it. The URI names
# the published dataset under the production root (configs/kubernetes.toml); local runs
# update the same logical asset.
SYNTHLLM_DATASET = Asset(
    name="synthllm_dataset",
    uri="s3://synthllm-data/pipeline/datasets/synthllm",
)
