# Shared settings and helpers for the local single-node cluster (sourced, not executed).
# shellcheck shell=bash disable=SC2034 # the variables are used by the scripts that source this
#
# Two places outside the checkout, so that another engineer's `git clean` or a fresh clone
# never loses gigabytes and a reused machine rebuilds nothing:
#   SYNTHLLM_CACHE_DIR      kept by down.sh: built binaries, Go caches, podman image storage.
#   SYNTHLLM_CLUSTER_STATE  one cluster's state: PKI, etcd, containerd, kubelet, logs, pids.

SYNTHLLM_CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SYNTHLLM_CACHE_DIR="${SYNTHLLM_CACHE_DIR:-/var/cache/synthllm}"
SYNTHLLM_CLUSTER_STATE="${SYNTHLLM_CLUSTER_STATE:-/var/lib/synthllm-cluster}"

# Kubernetes >= 1.35's kubelet refuses cgroup v1, which is what these machines have.
K8S_VERSION=v1.34.4
# The staging modules (k8s.io/api, client-go, ...) are tagged v0.<minor>.<patch>.
K8S_STAGING_VERSION="v0.${K8S_VERSION#v1.}"
# The newest 3.6.x the Go module proxy serves; kube-apiserver 1.34 is tested against 3.6.
ETCD_VERSION=v3.6.16
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
K8S_BIN="$SYNTHLLM_CACHE_DIR/k8s-$K8S_VERSION/bin"
ETCD_BIN="$SYNTHLLM_CACHE_DIR/etcd-$ETCD_VERSION/bin"
GO_CACHE_ROOT="$SYNTHLLM_CACHE_DIR/go"

# Bump the tag when pause/main.go changes: up.sh only rebuilds an image that is missing.
PAUSE_IMAGE=localhost/synthllm-pause:1.0
BASE_IMAGE=localhost/synthllm-debian:bookworm
IMAGE_CACHE="$SYNTHLLM_CACHE_DIR/images"
CONTAINERS_CONF="$SYNTHLLM_CLUSTER_DIR/containers.conf"
# Generated (not committed) because it names the cache dir, which callers may move.
CONTAINERS_STORAGE_CONF="$SYNTHLLM_CACHE_DIR/containers/storage.conf"

NODE_NAME="${SYNTHLLM_NODE_NAME:-synthllm-node}"
HOST_IFACE="${SYNTHLLM_HOST_IFACE:-eth0}"
# Checked against `ip route` at start-up: neither may overlap the machine's own networks.
POD_CIDR=10.244.0.0/24
POD_GATEWAY=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
CNI_BRIDGE=synthllm0
CNI_NETWORK=synthllm
APISERVER_PORT=6443

PKI_DIR="$SYNTHLLM_CLUSTER_STATE/pki"
KUBECONFIG_DIR="$SYNTHLLM_CLUSTER_STATE/kubeconfig"
ADMIN_KUBECONFIG="$KUBECONFIG_DIR/admin.kubeconfig"
CONF_DIR="$SYNTHLLM_CLUSTER_STATE/conf"
LOG_DIR="$SYNTHLLM_CLUSTER_STATE/logs"
PID_DIR="$SYNTHLLM_CLUSTER_STATE/run"
ETCD_DATA="$SYNTHLLM_CLUSTER_STATE/etcd"
# root keeps the images loaded into the node across down/up (re-importing GBs is slow);
# state (tasks, sockets, mounts) is wiped by down.sh.
CONTAINERD_ROOT="$SYNTHLLM_CLUSTER_STATE/containerd/root"
CONTAINERD_STATE="$SYNTHLLM_CLUSTER_STATE/containerd/state"
CONTAINERD_ADDRESS="$SYNTHLLM_CLUSTER_STATE/containerd/containerd.sock"
RUNC_ROOT="$SYNTHLLM_CLUSTER_STATE/containerd/runc"
KUBELET_ROOT="$SYNTHLLM_CLUSTER_STATE/kubelet"
POD_LOG_DIR="$SYNTHLLM_CLUSTER_STATE/pod-logs"
CNI_CONF_DIR="$SYNTHLLM_CLUSTER_STATE/cni/net.d"
CNI_IPAM_DIR="$SYNTHLLM_CLUSTER_STATE/cni/ipam"
CNI_BIN_DIR=/usr/lib/cni
# Where containerd 1.6's CRI plugin mounts pod network namespaces (not relocatable in 1.6).
NETNS_DIR=/run/netns

# (Pipelines into `grep -q` are avoided throughout: with pipefail, grep quitting early makes
# the writer die of SIGPIPE and the test fail although it matched.)

# In start order (down.sh stops the controllers first, containerd last).
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
step() { printf '\n[%s] == %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
  printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
  exit 1
}

host_ip() {
  local ip
  ip=$(ip -4 -o addr show dev "$HOST_IFACE" 2>/dev/null | awk '{split($4, a, "/"); print a[1]; exit}')
  [[ -n $ip ]] || die "no IPv4 address on $HOST_IFACE (set SYNTHLLM_HOST_IFACE to the machine's interface)"
  printf '%s\n' "$ip"
}

# The kernel keeps 15 characters of a command name (kube-controller-manager -> kube-controller).
comm_name() { printf '%s\n' "${1:0:15}"; }

# PIDs of a component that belongs to this cluster: the recorded one if it still runs under the
# right name, plus any process of that name whose command line names our state dir (a lost
# pid file must not leave a process behind).
component_pids() {
  local name=$1 comm pid
  comm=$(comm_name "$name")
  {
    if [[ -f $PID_DIR/$name.pid ]]; then
      pid=$(<"$PID_DIR/$name.pid")
      if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]]; then printf '%s\n' "$pid"; fi
    fi
    for pid in $(pgrep -x "$comm" || true); do
      if [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"$SYNTHLLM_CLUSTER_STATE"* ]]; then
        printf '%s\n' "$pid"
      fi
    done
  } | sort -un
}

component_running() { [[ -n $(component_pids "$1") ]]; }

# Run a component in its own session, detached from the caller's terminal, one log per component.
# Returns once the recorded PID runs the component's binary: until setsid has exec'd it, the
# PID's name is still setsid's and component_running would call the component dead.
start_component() {
  local name=$1 comm pid i
  shift
  comm=$(comm_name "$(basename "$1")")
  mkdir -p "$LOG_DIR" "$PID_DIR"
  log "starting $name (log $LOG_DIR/$name.log)"
  setsid "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$PID_DIR/$name.pid"
  for ((i = 0; i < 100; i++)); do
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  tail_log "$name"
  die "$name did not start (pid $pid)"
}

tail_log() {
  local name=$1
  [[ -f $LOG_DIR/$name.log ]] || return 0
  printf -- '--- last lines of %s ---\n' "$LOG_DIR/$name.log" >&2
  tail -n "${2:-25}" "$LOG_DIR/$name.log" >&2
}

# wait_for COMPONENT SECONDS DESCRIPTION CMD...: poll CMD until it succeeds; on timeout or if the
# component died, fail with the end of its log.
wait_for() {
  local name=$1 timeout=$2 what=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ $name != - ]] && ! component_running "$name"; then
      tail_log "$name"
      die "$name exited while waiting for: $what"
    fi
    if ((SECONDS >= deadline)); then
      [[ $name != - ]] && tail_log "$name"
      die "timed out after ${timeout}s waiting for: $what"
    fi
    sleep 0.5
  done
  log "ok: $what"
}

kubectl_admin() { "$K8S_BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

ctr_k8s() { ctr --address "$CONTAINERD_ADDRESS" --namespace k8s.io "$@"; }

# The URI of the Debian mirror apt already uses for bookworm (deb822 or one-line sources).
apt_mirror() {
  local uri
  uri=$(awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm( |\n|$)/ && /Types: deb/ {
          if (match($0, /URIs: [^ \n]+/)) { print substr($0, RSTART + 6, RLENGTH - 6); exit } }' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [[ -z $uri ]]; then
    uri=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  fi
  [[ -n $uri ]] || die "cannot find the Debian bookworm mirror in /etc/apt/sources.list*"
  printf '%s\n' "$uri"
}

write_storage_conf() {
  [[ -f $CONTAINERS_STORAGE_CONF ]] && return 0
  mkdir -p "$(dirname "$CONTAINERS_STORAGE_CONF")"
  cat >"$CONTAINERS_STORAGE_CONF" <<EOF
# Generated by scripts/cluster/lib.sh: podman/buildah image storage under the cache dir,
# since project images are several GB and must survive a fresh checkout.
[storage]
driver = "overlay"
graphroot = "$SYNTHLLM_CACHE_DIR/containers/storage"
runroot = "/run/synthllm-containers"
EOF
}

podman_env() {
  write_storage_conf
  export CONTAINERS_CONF CONTAINERS_STORAGE_CONF
}
