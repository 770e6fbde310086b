# The pipeline deployed on the local cluster (sourced by the scripts here, from anywhere).
# shellcheck shell=bash disable=SC2034 # the variables are used by the scripts that source this
#
# What a platform team sets for its own cluster, set here for the project's single-node
# cluster (scripts/cluster/): the namespace and RBAC of k8s/, the pipeline ConfigMap pointing
# at an S3 API on this machine (moto) with credentials from a Secret, the executor template,
# the LLM server of k8s/overlays/cluster-local, and the Airflow side's environment.

SYNTHLLM_K8S_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SYNTHLLM_K8S_DIR/../.." && pwd)"
# shellcheck source=../cluster/env.sh
source "$REPO/scripts/cluster/env.sh"

NAMESPACE=synthllm
S3_PORT="${SYNTHLLM_S3_PORT:-9090}"
S3_BUCKET=synthllm-local
S3_ENDPOINT="http://$SYNTHLLM_CLUSTER_HOST_IP:$S3_PORT"
ROOT_URI="s3://$S3_BUCKET/pipeline"
S3_DIR="$SYNTHLLM_CLUSTER_STATE/s3"
AIRFLOW_KUBECONFIG="$SYNTHLLM_CLUSTER_STATE/kubeconfig/synthllm-airflow.kubeconfig"
# podman stores images without a registry under localhost/, the names the node knows.
IMAGE_REGISTRY=localhost/synthllm
OVERLAY_CONFIG=configs/cluster-local.toml

k8s_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
k8s_die() {
  printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
  exit 1
}

# The tag scripts/build_images.sh gives the images of this checkout.
image_tag() {
  local tag
  tag=$(git -C "$REPO" rev-parse --short=12 HEAD)
  [[ -z $(git -C "$REPO" status --porcelain --untracked-files=no) ]] || tag="$tag-dirty"
  printf '%s\n' "$tag"
}

cluster_is_up() { kubectl get --raw /readyz >/dev/null 2>&1; }
