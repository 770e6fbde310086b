#!/usr/bin/env bash
# Deploy the pipeline's objects onto the local cluster the way a platform team deploys them
# onto its own (README, "Kubernetes"), then write the kubeconfig Airflow uses.
#   deploy.sh TAG    TAG: the images' tag (scripts/build_images.sh prints it)
# 1. k8s/*.yaml: the namespace (Pod Security restricted enforced), service accounts and RBAC,
#    the pipeline ConfigMap, the Spark executors' pod template, the model claim (no GPU pod
#    mounts it here, so it may stay Pending).
# 2. This cluster's storage in the pipeline ConfigMap: the S3 API on this machine (s3.sh);
#    its credentials in the Secret synthllm-s3-credentials (moto accepts any).
# 3. The LLM server of k8s/overlays/cluster-local (llama.cpp in the Python image), ready.
# 4. A kubeconfig with the synthllm-airflow service account's token: Airflow runs with
#    exactly the Role k8s/serviceaccounts.yaml gives it, not as a cluster admin.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
tag="${1:?usage: $0 TAG}"
cluster_is_up || k8s_die "the local cluster is not up (make cluster-up)"
cd "$REPO"

k8s_log "deploy: kubectl apply -f k8s/ (the namespace first: files apply in name order)"
kubectl apply -f k8s/namespace.yaml >&2
kubectl apply -f k8s/ >&2

k8s_log "deploy: storage $ROOT_URI at $S3_ENDPOINT"
kubectl -n "$NAMESPACE" patch configmap synthllm-pipeline-env --type merge -p "$(printf \
  '{"data": {"SYNTHLLM_ROOT_URI": "%s", "SYNTHLLM_S3_ENDPOINT_URL": "%s"}}' \
  "$ROOT_URI" "$S3_ENDPOINT")" >&2
kubectl -n "$NAMESPACE" create secret generic synthllm-s3-credentials \
  --from-literal=AWS_ACCESS_KEY_ID=local --from-literal=AWS_SECRET_ACCESS_KEY=local \
  --dry-run=client -o yaml | kubectl apply -f - >&2

k8s_log "deploy: the LLM server (k8s/overlays/cluster-local, $IMAGE_REGISTRY/python:$tag)"
kubectl kustomize k8s/overlays/cluster-local \
  | sed "s#image: $IMAGE_REGISTRY/python:[^[:space:]]*#image: $IMAGE_REGISTRY/python:$tag#" \
  | kubectl apply -f - >&2
# A -dirty tag names whatever was built last: restart the server onto that build.
if [[ $tag == *-dirty ]]; then
  kubectl -n "$NAMESPACE" rollout restart deployment/synthllm-llm >&2
fi
kubectl -n "$NAMESPACE" rollout status deployment/synthllm-llm --timeout=300s >&2 || {
  kubectl -n "$NAMESPACE" describe pods -l app.kubernetes.io/name=synthllm-llm >&2 || true
  k8s_die "the LLM server did not become ready"
}

k8s_log "deploy: Airflow's kubeconfig ($AIRFLOW_KUBECONFIG, service account synthllm-airflow)"
server=$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.server}')
ca_data=$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
if [[ -z $ca_data ]]; then
  ca_data=$(base64 -w0 <"$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')")
fi
token=$(kubectl -n "$NAMESPACE" create token synthllm-airflow --duration=24h)
umask 077
cat >"$AIRFLOW_KUBECONFIG" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "$server", certificate-authority-data: "$ca_data"}
users:
- name: synthllm-airflow
  user: {token: "$token"}
contexts:
- name: synthllm
  context: {cluster: local, user: synthllm-airflow, namespace: $NAMESPACE}
current-context: synthllm
KCFG
KUBECONFIG="$AIRFLOW_KUBECONFIG" kubectl auth can-i create pods -n "$NAMESPACE" >/dev/null ||
  k8s_die "synthllm-airflow may not create pods in $NAMESPACE"
k8s_log "deploy: done"
