#!/usr/bin/env bash
# The local scaling demo: one run of synthllm_scaling with the tiny_cpu recipe over 5 nested
# subsets of a published sample snapshot, then print where the report is. Expects
# scripts/env.sh to be sourced and the snapshot published (`make run`).
set -euo pipefail
snapshot="${1:-2026-11-01}"
recipe="${RECIPE:-tiny_cpu}"
root="${SYNTHLLM_ROOT_URI:-file://$SYNTHLLM_REPO/var/data}"
export SYNTHLLM_ROOT_URI="$root"
study="demo-$snapshot-$recipe"
conf=$(printf '{"snapshot": "%s", "recipe": "%s", "num_subsets": 5, "study_id": "%s"}' \
  "$snapshot" "$recipe" "$study")
echo "== scaling: airflow dags test synthllm_scaling (snapshot $snapshot, recipe $recipe)"
start=$(date +%s)
airflow dags test synthllm_scaling "$snapshot" --conf "$conf"
echo "report: $root/scaling/$study/report/report.html"
echo "== scaling finished in $(( $(date +%s) - start )) s"
