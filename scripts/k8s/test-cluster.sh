#!/usr/bin/env bash
# make test-cluster: the tests that need real pods (tests/cluster, marked `cluster`).
# Brings up what they need, each step idempotent: the local cluster (make cluster-up), this
# checkout's images built and loaded into the node, the S3 API, the objects of k8s/ and
# Airflow's metadata DB for the kubernetes profile; then runs them. The cluster stays up
# (make cluster-down stops it; CI does so whatever happened).
set -euo pipefail
cd "$(dirname "$0")/../.."
./scripts/cluster/up.sh
# shellcheck source=../env.sh
source scripts/env.sh
# shellcheck source=airflow-env.sh
source scripts/k8s/airflow-env.sh
dirty=()
[[ $SYNTHLLM_IMAGE_TAG == *-dirty ]] && dirty=(--allow-dirty)
SYNTHLLM_IMAGE_REGISTRY=synthllm scripts/build_images.sh --load "${dirty[@]}" python spark >&2
scripts/k8s/s3.sh start
eval "$(scripts/k8s/s3.sh env)"
scripts/k8s/deploy.sh "$SYNTHLLM_IMAGE_TAG"
mkdir -p "$AIRFLOW_HOME"
airflow db migrate >/dev/null
python -m pytest -q -m cluster tests/cluster "$@"
