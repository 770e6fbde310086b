#!/usr/bin/env bash
# The main job: one full run of synthllm_generate on a sample snapshot with the local model,
# then print where the dataset and the report are. Expects scripts/env.sh to be sourced.
set -euo pipefail
snapshot="${1:-2026-11-01}"
root="${SYNTHLLM_ROOT_URI:-file://$SYNTHLLM_REPO/var/data}"
export SYNTHLLM_ROOT_URI="$root"
echo "== run: airflow dags test synthllm_generate $snapshot (root $root)"
start=$(date +%s)
airflow dags test synthllm_generate "$snapshot"
python -m jobs.publish.where --snapshot "$snapshot"
echo "== run finished in $(( $(date +%s) - start )) s"
