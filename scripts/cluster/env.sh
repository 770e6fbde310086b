# Environment for using the local cluster (sourced, not executed):
#   source scripts/cluster/env.sh && kubectl get nodes
# Exports KUBECONFIG (the admin kubeconfig), PATH with the cluster's own kubectl first (the
# Debian one is older and warns about skew), podman/buildah's CONTAINERS_CONF and
# CONTAINERS_STORAGE_CONF, CONTAINERD_ADDRESS/CONTAINERD_NAMESPACE (read by ctr),
# SYNTHLLM_CLUSTER_STATE, SYNTHLLM_CACHE_DIR and SYNTHLLM_CLUSTER_HOST_IP (the address pods
# reach this machine on, e.g. for an S3 API server listening there).
# shellcheck shell=bash

# lib.sh is read in a child shell: its helpers (die exits) must not land in the caller's shell.
eval "$(bash -c '
  set -euo pipefail
  source "$1/lib.sh"
  write_storage_conf
  ip=$(ip -4 -o addr show dev "$HOST_IFACE" 2>/dev/null | awk "{split(\$4, a, \"/\"); print a[1]; exit}")
  [[ -n $ip ]] || echo "env.sh: no IPv4 address on $HOST_IFACE; SYNTHLLM_CLUSTER_HOST_IP is empty" >&2
  for v in SYNTHLLM_CLUSTER_STATE SYNTHLLM_CACHE_DIR CONTAINERS_CONF CONTAINERS_STORAGE_CONF \
    CONTAINERD_ADDRESS; do
    printf "export %s=%q\n" "$v" "${!v}"
  done
  printf "export KUBECONFIG=%q\n" "$ADMIN_KUBECONFIG"
  printf "export SYNTHLLM_CLUSTER_HOST_IP=%q\n" "$ip"
  printf "export CONTAINERD_NAMESPACE=k8s.io\n"
  printf "_synthllm_k8s_bin=%q\n" "$K8S_BIN"
' _ "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)")"
# shellcheck disable=SC2154 # set by the eval above
case ":$PATH:" in
  *":$_synthllm_k8s_bin:"*) ;;
  *) export PATH="$_synthllm_k8s_bin:$PATH" ;;
esac
unset _synthllm_k8s_bin
