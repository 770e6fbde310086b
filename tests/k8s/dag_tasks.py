"""Test helper: the tasks of synthllm_generate that the Kubernetes tests check by kind."""

from __future__ import annotations

# Spark jobs and their modules: each task's pod is a Spark driver (the default runtime).
SPARK_TASKS = {
    "ingest": "jobs.ingest.ingest",
    "filter": "jobs.filter.filter",
    "build_graph": "jobs.graph.build",
    "sample_combinations": "jobs.graph.combinations",
    "clean_questions": "jobs.questions.clean",
}
