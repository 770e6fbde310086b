# The Airflow side's environment for the pipeline on the local cluster (sourced after
# scripts/env.sh): the kubernetes profile, the images of this checkout on a node without a
# registry or GPUs, small sizes, and the kubeconfig of the synthllm-airflow service account.
# A platform team sets the same variables in its Airflow deployment (README, "Kubernetes").
# shellcheck shell=bash
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
export SYNTHLLM_PROFILE=kubernetes
export SYNTHLLM_K8S_NAMESPACE="$NAMESPACE"
export SYNTHLLM_IMAGE_REGISTRY="$IMAGE_REGISTRY"
SYNTHLLM_IMAGE_TAG="$(image_tag)"
export SYNTHLLM_IMAGE_TAG
export SYNTHLLM_IMAGE_PULL_POLICY=Never
export SYNTHLLM_K8S_GPUS=0
export SYNTHLLM_K8S_SIZES=small
# Its own metadata DB, apart from the local profile's var/airflow.
export AIRFLOW_HOME="$REPO/var/airflow-k8s"
AIRFLOW_CONN_KUBERNETES_DEFAULT="$(printf \
  '{"conn_type": "kubernetes", "extra": {"kube_config_path": "%s", "namespace": "%s"}}' \
  "$AIRFLOW_KUBECONFIG" "$NAMESPACE")"
export AIRFLOW_CONN_KUBERNETES_DEFAULT
