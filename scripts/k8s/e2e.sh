#!/usr/bin/env bash
# make e2e: the whole pipeline on the local cluster, every task a pod.
#   1. the cluster (make cluster-up, if it is not up), the images of this checkout built and
#      loaded into the node, the S3 API (s3.sh), the objects of k8s/ (deploy.sh);
#   2. the sample snapshot uploaded to the S3 API, the Airflow pool of the GPU tasks;
#   3. synthllm_generate on the snapshot with the kubernetes profile and the overlay
#      configs/cluster-local.toml (Spark stages: a driver pod and executor pods; LLM stages:
#      llama.cpp in pods, answers through the LLM server Deployment), then a check of every
#      stage's row accounting and of the published dataset (check_run.py, against the local
#      profile's run of the same snapshot when var/data holds one);
#   4. synthllm_scaling's tiny_cpu study on the published snapshot.
# It prints where the outputs are and the wall time. The cluster stays up (make cluster-down).
#   SNAPSHOT (default 2026-11-01)
set -euo pipefail
cd "$(dirname "$0")/../.."
snapshot="${SNAPSHOT:-2026-11-01}"
start=$SECONDS
elapsed() { printf '%dm%02ds' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)); }

./scripts/cluster/up.sh
# shellcheck source=../env.sh
source scripts/env.sh
# shellcheck source=airflow-env.sh
source scripts/k8s/airflow-env.sh

dirty=()
[[ $SYNTHLLM_IMAGE_TAG == *-dirty ]] && dirty=(--allow-dirty)
k8s_log "e2e: images $IMAGE_REGISTRY/{python,spark}:$SYNTHLLM_IMAGE_TAG ($(elapsed))"
SYNTHLLM_IMAGE_REGISTRY=synthllm scripts/build_images.sh --load "${dirty[@]}" python spark >&2

scripts/k8s/s3.sh start
eval "$(scripts/k8s/s3.sh env)"
scripts/k8s/deploy.sh "$SYNTHLLM_IMAGE_TAG"

corpus="var/data/corpus/$snapshot"
[[ -d $corpus ]] || k8s_die "no sample corpus at $corpus (run make setup)"
k8s_log "e2e: uploading $corpus to $SYNTHLLM_ROOT_URI/corpus/$snapshot"
python - "$corpus" "$SYNTHLLM_ROOT_URI/corpus/$snapshot" <<'PY'
import pathlib, sys
from jobs.config import load_config
from jobs.storage import Storage, join
storage = Storage(load_config("kubernetes").storage)
for path in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    storage.upload_file(path, join(sys.argv[2], path.name))
PY

# A fresh metadata DB: `airflow dags test` resumes a run of the same logical date that an
# interrupted e2e left behind instead of starting over.
rm -rf "$AIRFLOW_HOME" && mkdir -p "$AIRFLOW_HOME"
airflow db migrate >/dev/null
read -r pool slots < <(PYTHONPATH=dags python -m synthllm_tasks.sizing)
airflow pools set "$pool" "$slots" "GPU pods of the synthllm DAGs" >/dev/null

k8s_log "e2e: synthllm_generate $snapshot, every task a pod ($(elapsed))"
conf=$(printf '{"config": "%s"}' "$OVERLAY_CONFIG")
airflow dags test synthllm_generate "$snapshot" --conf "$conf"
like=()
[[ -f var/data/datasets/synthllm/$snapshot/_SUCCESS ]] && like=(--like "file://$PWD/var/data")
python scripts/k8s/check_run.py --snapshot "$snapshot" "${like[@]}"
generate_time=$(elapsed)

# Three subsets (scaling.growth 1.5 in the overlay): the sample publishes a handful of QA rows.
k8s_log "e2e: synthllm_scaling tiny_cpu on $snapshot ($(elapsed))"
study="e2e-$snapshot-tiny_cpu"
conf=$(printf '{"snapshot": "%s", "recipe": "tiny_cpu", "num_subsets": 3, "study_id": "%s", "config": "%s"}' \
  "$snapshot" "$study" "$OVERLAY_CONFIG")
airflow dags test synthllm_scaling "$snapshot" --conf "$conf"
python - "$SYNTHLLM_ROOT_URI/scaling/$study/report/report.json" <<'PY'
import sys
from jobs.config import load_config
from jobs.storage import Storage
report = Storage(load_config("kubernetes").storage).read_json(sys.argv[1])
print(f"scaling report: {sys.argv[1]} (best law: {report.get('best_law')})")
PY
k8s_log "e2e: done: synthllm_generate in $generate_time, all in $(elapsed)"
echo "outputs: $SYNTHLLM_ROOT_URI (S3 API $SYNTHLLM_S3_ENDPOINT_URL; scripts/k8s/s3.sh env)"
