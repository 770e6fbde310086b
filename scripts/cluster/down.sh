#!/usr/bin/env bash
# Stops the single-node cluster (make cluster-down) and leaves the machine as up.sh found it:
# no component or container process, no mount under the state dir, no pod network namespace,
# no synthllm0 bridge, no KUBE-*/CNI-* iptables chains. Leftover mounts or chains break the
# next start on a reused machine, so the end is checked and anything left is named (exit 1).
#
# Kept: the cache (binaries, podman images), the PKI and kubeconfigs, containerd's root (the
# images loaded into the node) and the last logs. Wiped: etcd data (the next up starts an
# empty cluster), kubelet root, containerd's runtime state, CNI IP reservations, pod logs.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
STOP_TIMEOUT_S="${SYNTHLLM_STOP_TIMEOUT_S:-15}"
# Pods get 5 s to stop; one already terminating keeps its own (longer) grace period, and
# waiting past this bound is pointless since the containers are killed below anyway.
POD_DELETE_TIMEOUT_S="${SYNTHLLM_POD_DELETE_TIMEOUT_S:-20}"
START=$SECONDS
REMOVED=()

removed() {
  REMOVED+=("$1")
  log "removed: $1"
}

# TERM, then KILL after STOP_TIMEOUT_S; only processes that belong to this cluster.
kill_pids() {
  local what=$1
  shift
  (($#)) || return 0
  kill -TERM "$@" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT_S)) pid alive
  while :; do
    alive=()
    for pid in "$@"; do if kill -0 "$pid" 2>/dev/null; then alive+=("$pid"); fi; done
    ((${#alive[@]})) || break
    if ((SECONDS >= deadline)); then
      log "$what did not stop within ${STOP_TIMEOUT_S}s: SIGKILL ${alive[*]}"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  removed "$what (pid $*)"
}

# Stops the named components together (each one's shutdown takes a second or two).
stop_components() {
  local name pids=() stopping=()
  for name in "$@"; do
    # shellcheck disable=SC2207 # one word per pid
    local mine=($(component_pids "$name"))
    if ((${#mine[@]})); then
      pids+=("${mine[@]}")
      stopping+=("$name")
    fi
    rm -f "$PID_DIR/$name.pid"
  done
  ((${#pids[@]})) || return 0
  log "stopping ${stopping[*]}"
  kill_pids "${stopping[*]}" "${pids[@]}"
}

# With the controllers stopped nothing recreates them; kubelet then stops each pod properly
# (CNI teardown included). Bounded, and forced at the end: a wedged pod must not block down.
delete_pods() {
  component_running kube-apiserver && component_running kubelet || return 0
  kubectl_admin get --raw /readyz >/dev/null 2>&1 || return 0
  local count
  count=$(kubectl_admin get pods -A --no-headers 2>/dev/null | wc -l)
  ((count)) || return 0
  log "deleting $count pods (at most ${POD_DELETE_TIMEOUT_S}s)"
  timeout "$POD_DELETE_TIMEOUT_S" "$K8S_BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" \
    delete pods --all -A --grace-period=5 --wait=true >/dev/null 2>&1 ||
    kubectl_admin delete pods --all -A --force --grace-period=0 >/dev/null 2>&1 || true
  removed "$count pods"
}

# Containers kubelet did not get to (or all of them when kubelet was gone), through containerd.
remove_containers() {
  component_running containerd || return 0
  local id tasks containers
  tasks=$(ctr_k8s tasks ls -q 2>/dev/null || true)
  for id in $tasks; do ctr_k8s tasks delete --force "$id" >/dev/null 2>&1 || true; done
  containers=$(ctr_k8s containers ls -q 2>/dev/null || true)
  for id in $containers; do ctr_k8s containers delete "$id" >/dev/null 2>&1 || true; done
  [[ -z $containers ]] || removed "$(wc -w <<<"$containers") containerd containers"
}

shim_pids() { pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_ADDRESS" || true; }

# Processes still in the pod cgroups kubelet made (cgroupfs driver, cgroup v1 hierarchies).
pod_processes() {
  cat /sys/fs/cgroup/*/kubepods/cgroup.procs /sys/fs/cgroup/*/kubepods/*/cgroup.procs \
    /sys/fs/cgroup/*/kubepods/*/*/cgroup.procs /sys/fs/cgroup/*/kubepods/*/*/*/cgroup.procs \
    2>/dev/null | sort -un || true
}

kill_leftover_processes() {
  local pids
  pids=$(shim_pids)
  # shellcheck disable=SC2086 # one word per pid
  [[ -z $pids ]] || kill_pids "containerd shims" $pids
  pids=$(pod_processes)
  # shellcheck disable=SC2086
  [[ -z $pids ]] || kill_pids "container processes" $pids
  local dir found=0
  for dir in /sys/fs/cgroup/*/kubepods; do
    [[ -d $dir ]] || continue
    find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
    found=1
  done
  ((found == 0)) || removed "kubepods cgroups"
}

proxy_cleanup() {
  [[ -x $K8S_BIN/kube-proxy ]] || return 0
  # Exit status ignored: it also tries the nftables and IPVS back-ends, which are unused here.
  "$K8S_BIN/kube-proxy" --cleanup >"$LOG_DIR/kube-proxy-cleanup.log" 2>&1 || true
}

# Deletes every KUBE-*/CNI-* chain of one table, after the rules elsewhere that jump to them.
# podman/buildah here use netavark (NETAVARK-* chains), so CNI-* chains are the cluster's.
sweep_chains() {
  local tool=$1 table=$2 script
  script=$("$tool-save" -t "$table" 2>/dev/null | awk '
    /^:(KUBE-|CNI-)/ { chains[++n] = substr($1, 2) }
    /^-A / && $2 !~ /^(KUBE-|CNI-)/ && / -j (KUBE-|CNI-)/ { sub(/^-A /, "-D "); print }
    END { for (i = 1; i <= n; i++) print "-F " chains[i]; for (i = 1; i <= n; i++) print "-X " chains[i] }')
  [[ -n $script ]] || return 0
  printf '*%s\n%s\nCOMMIT\n' "$table" "$script" | "$tool-restore" --noflush
  removed "$tool $table chains: $(grep -c '^-X ' <<<"$script")"
}

sweep_network() {
  local tool table link ns
  for tool in iptables ip6tables; do
    command -v "$tool-save" >/dev/null || continue
    for table in nat filter mangle; do sweep_chains "$tool" "$table" || log "could not sweep $tool $table"; done
  done
  for link in $(ip -o link show master "$CNI_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link delete "$link" && removed "veth $link"
  done
  if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then
    ip link delete "$CNI_BRIDGE" && removed "bridge $CNI_BRIDGE"
  fi
  # containerd 1.6's CRI names the pod network namespaces it makes cni-<uuid>.
  for ns in "$NETNS_DIR"/cni-*; do
    [[ -e $ns ]] || continue
    umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || true
    rm -f "$ns" && removed "network namespace $(basename "$ns")"
  done
}

our_mounts() {
  awk -v s="$SYNTHLLM_CLUSTER_STATE/" 'index($2, s) == 1 { print $2 }' /proc/mounts | tac
}

unmount_all() {
  local mnt count=0
  for mnt in $(our_mounts); do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || log "could not unmount $mnt"
    count=$((count + 1))
  done
  ((count == 0)) || removed "$count mounts under $SYNTHLLM_CLUSTER_STATE"
}

wipe_state() {
  if [[ -n $(our_mounts) ]]; then
    log "mounts remain under $SYNTHLLM_CLUSTER_STATE: not wiping state"
    return 0
  fi
  local dir link
  # --one-file-system: never follow into anything that might still be mounted in there.
  for dir in "$ETCD_DATA" "$KUBELET_ROOT" "$CONTAINERD_STATE" "$RUNC_ROOT" "$CNI_IPAM_DIR" "$POD_LOG_DIR"; do
    [[ -e $dir ]] || continue
    rm -rf --one-file-system "$dir"
    removed "$dir"
  done
  for link in /var/log/containers/*.log; do
    [[ -L $link && $(readlink "$link") == "$POD_LOG_DIR"/* ]] && rm -f "$link"
  done
  rm -f "$CONTAINERD_ADDRESS" "$CONTAINERD_ADDRESS.ttrpc"
}

# What kubelet and containerd 1.6 write to fixed host paths whatever their configuration says.
remove_host_leftovers() {
  local path
  rm -f /var/lib/kubelet/device-plugins/kubelet.sock /var/lib/cni/results/"$CNI_NETWORK"-*
  for path in /var/lib/kubelet/device-plugins /var/lib/kubelet /var/lib/cni/results /var/lib/cni \
    /run/containerd/s /run/containerd /var/log/containers; do
    if [[ -d $path ]] && rmdir "$path" 2>/dev/null; then removed "empty $path"; fi
  done
}

restore_sysctls() {
  local orig="$SYNTHLLM_CLUSTER_STATE/sysctl.orig" line
  [[ -f $orig ]] || return 0
  while read -r line; do sysctl -q -w "$line" || log "could not restore $line"; done <"$orig"
  removed "sysctl changes (restored $(paste -sd' ' "$orig"))"
  rm -f "$orig"
}

verify() {
  local left=() name
  for name in "${COMPONENTS[@]}"; do
    if pgrep -x "$(comm_name "$name")" >/dev/null; then left+=("process $name"); fi
  done
  [[ -z $(shim_pids) ]] || left+=("containerd shims")
  [[ -z $(pod_processes) ]] || left+=("container processes")
  if [[ -n $(our_mounts) ]]; then left+=("mounts: $(our_mounts | paste -sd' ' -)"); fi
  if compgen -G "$NETNS_DIR/cni-*" >/dev/null; then left+=("network namespaces $NETNS_DIR/cni-*"); fi
  if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then left+=("bridge $CNI_BRIDGE"); fi
  for name in iptables ip6tables; do
    command -v "$name-save" >/dev/null || continue
    if "$name-save" 2>/dev/null | grep -E '^:(KUBE-|CNI-)' >/dev/null; then left+=("$name KUBE-/CNI- chains"); fi
  done
  if ((${#left[@]})); then
    printf '[%s] ERROR: down could not clean: %s\n' "$(date +%H:%M:%S)" "$(IFS=';'; echo "${left[*]}")" >&2
    exit 1
  fi
}

step "stopping the cluster (state $SYNTHLLM_CLUSTER_STATE)"
mkdir -p "$LOG_DIR"
stop_components kube-scheduler kube-controller-manager
delete_pods
stop_components kube-proxy kubelet
stop_components kube-apiserver
stop_components etcd
remove_containers
stop_components containerd
kill_leftover_processes
proxy_cleanup
sweep_network
unmount_all
wipe_state
restore_sysctls
remove_host_leftovers
verify
if ((${#REMOVED[@]})); then
  log "the cluster is down ($((SECONDS - START))s); kept: cache $SYNTHLLM_CACHE_DIR, PKI, node images, logs in $LOG_DIR"
else
  log "nothing was running: the cluster is already down"
fi
