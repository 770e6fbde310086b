#!/usr/bin/env bash
# Brings up the single-node Kubernetes cluster on this machine (make cluster-up): Debian
# prerequisites, binaries and images (built once into the cache), PKI, configuration, then
# containerd, etcd, the control plane, kubelet and kube-proxy, each in the background with
# its PID under $SYNTHLLM_CLUSTER_STATE/run. Safe to rerun: a healthy cluster is left alone.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
START=$SECONDS
# Generous for a loaded 2-core machine; a healthy start takes about 15 s.
WAIT_S="${SYNTHLLM_CLUSTER_WAIT_S:-120}"
PORTS=(2379 2380 "$APISERVER_PORT" 10248 10249 10250 10256 10257 10259)

node_ready() {
  [[ $(kubectl_admin get node "$NODE_NAME" \
    -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

cluster_healthy() {
  local name
  for name in "${COMPONENTS[@]}"; do component_running "$name" || return 1; done
  kubectl_admin get --raw /readyz >/dev/null 2>&1 && node_ready
}

summary() {
  step "cluster is up ($((SECONDS - START))s)"
  kubectl_admin get nodes -o wide
  cat <<EOF

kubeconfig: $ADMIN_KUBECONFIG
apiserver:  https://127.0.0.1:$APISERVER_PORT (pods: https://$KUBERNETES_SERVICE_IP:443)
pods reach this machine at $(host_ip) (pod subnet $POD_CIDR, Services $SERVICE_CIDR)
logs:       $LOG_DIR
use it:     source scripts/cluster/env.sh && kubectl get pods -A
load image: scripts/cluster/load-image.sh IMAGE   stop: make cluster-down
EOF
}

# Pod and Service subnets must not overlap any network this machine already routes.
cidr_range() {
  local ip=${1%/*} bits=${1#*/} a b c d
  [[ $1 == */* ]] || bits=32
  IFS=. read -r a b c d <<<"$ip"
  local base=$(((a << 24) | (b << 16) | (c << 8) | d)) size=$((1 << (32 - bits)))
  base=$((base & ~(size - 1) & 0xffffffff))
  printf '%s %s\n' "$base" "$((base + size - 1))"
}

check_subnets() {
  local ours dest lo hi olo ohi
  for ours in "$POD_CIDR" "$SERVICE_CIDR"; do
    read -r olo ohi < <(cidr_range "$ours")
    while read -r dest; do
      [[ $dest == default ]] && continue
      read -r lo hi < <(cidr_range "$dest")
      if ((lo <= ohi && olo <= hi)); then
        die "subnet $ours overlaps this machine's route $dest (ip route); change POD_CIDR/SERVICE_CIDR in lib.sh"
      fi
    done < <(ip -4 route show table all type unicast | awk -v br="$CNI_BRIDGE" '$0 !~ "dev " br {print $1}')
  done
  log "pod subnet $POD_CIDR and Service subnet $SERVICE_CIDR overlap no route of this machine"
}

check_ports_free() {
  local port busy=()
  for port in "${PORTS[@]}"; do
    if [[ -n $(ss -Hltn "sport = :$port") ]]; then busy+=("$port"); fi
  done
  ((${#busy[@]} == 0)) || die "ports already in use by another program: ${busy[*]} (ss -ltnp)"
}

# ip_forward carries pod -> Service -> pod traffic; bridge-nf makes bridged traffic see
# kube-proxy's rules. The machine's own values are kept for down.sh to restore.
set_sysctls() {
  local key orig="$SYNTHLLM_CLUSTER_STATE/sysctl.orig"
  if [[ ! -f $orig ]]; then
    for key in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.ipv4.conf.all.route_localnet; do
      printf '%s=%s\n' "$key" "$(sysctl -n "$key")"
    done >"$orig"
  fi
  sysctl -q -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  log "sysctl net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 (originals in $orig)"
}

start_containerd() {
  mkdir -p "$CONTAINERD_ROOT" "$CONTAINERD_STATE" "$RUNC_ROOT"
  start_component containerd /usr/bin/containerd --config "$CONF_DIR/containerd.toml"
  wait_for containerd "$WAIT_S" "containerd answers on $CONTAINERD_ADDRESS" \
    ctr --address "$CONTAINERD_ADDRESS" version
  "$HERE/load-image.sh" "$PAUSE_IMAGE" "$BASE_IMAGE" >/dev/null
}

start_etcd() {
  mkdir -p "$ETCD_DATA" && chmod 700 "$ETCD_DATA"
  # Loopback only, plain HTTP; --unsafe-no-fsync because down.sh wipes the data anyway and
  # fsyncs on a shared disk make every API write slow.
  start_component etcd "$ETCD_BIN/etcd" --name synthllm --data-dir "$ETCD_DATA" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster synthllm=http://127.0.0.1:2380 --initial-cluster-state new \
    --unsafe-no-fsync --log-level warn
  wait_for etcd "$WAIT_S" "etcd healthy on 127.0.0.1:2379" curl -fsS http://127.0.0.1:2379/health
}

start_apiserver() {
  local host_ip=$1
  # Bound on all addresses and advertised on the host's own address: the `kubernetes`
  # Service (10.96.0.1:443) is rewritten by kube-proxy to $host_ip:6443 for pods.
  start_component kube-apiserver "$K8S_BIN/kube-apiserver" \
    --advertise-address="$host_ip" --bind-address=0.0.0.0 --secure-port="$APISERVER_PORT" \
    --etcd-servers=http://127.0.0.1:2379 \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --client-ca-file="$PKI_DIR/ca.crt" \
    --tls-cert-file="$PKI_DIR/apiserver.crt" --tls-private-key-file="$PKI_DIR/apiserver.key" \
    --kubelet-client-certificate="$PKI_DIR/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI_DIR/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --service-account-key-file="$PKI_DIR/sa.pub" \
    --service-account-signing-key-file="$PKI_DIR/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local
  wait_for kube-apiserver "$WAIT_S" "kube-apiserver /readyz" kubectl_admin get --raw /readyz
}

start_controllers() {
  local kc=$KUBECONFIG_DIR
  start_component kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$kc/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$kc/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$kc/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --controllers='*' \
    --use-service-account-credentials \
    --service-account-private-key-file="$PKI_DIR/sa.key" --root-ca-file="$PKI_DIR/ca.crt" \
    --cluster-signing-cert-file="$PKI_DIR/ca.crt" --cluster-signing-key-file="$PKI_DIR/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR"
  start_component kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$kc/scheduler.kubeconfig" \
    --authentication-kubeconfig="$kc/scheduler.kubeconfig" \
    --authorization-kubeconfig="$kc/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false
  wait_for kube-controller-manager "$WAIT_S" "kube-controller-manager /healthz" \
    curl -fsSk https://127.0.0.1:10257/healthz
  wait_for kube-scheduler "$WAIT_S" "kube-scheduler /healthz" curl -fsSk https://127.0.0.1:10259/healthz
}

start_node() {
  local host_ip=$1
  mkdir -p "$KUBELET_ROOT"
  start_component kubelet "$K8S_BIN/kubelet" --config="$CONF_DIR/kubelet.yaml" \
    --kubeconfig="$KUBECONFIG_DIR/node.kubeconfig" --root-dir="$KUBELET_ROOT" \
    --cert-dir="$KUBELET_ROOT/pki" --hostname-override="$NODE_NAME" --node-ip="$host_ip"
  # 0 for the conntrack settings: leave the kernel's values, which cannot be changed here.
  start_component kube-proxy "$K8S_BIN/kube-proxy" \
    --kubeconfig="$KUBECONFIG_DIR/kube-proxy.kubeconfig" --hostname-override="$NODE_NAME" \
    --proxy-mode=iptables --cluster-cidr="$POD_CIDR" \
    --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 \
    --conntrack-tcp-timeout-close-wait=0 \
    --nodeport-addresses=primary \
    --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256
  wait_for kubelet "$WAIT_S" "kubelet /healthz" curl -fsS http://127.0.0.1:10248/healthz
  wait_for kubelet "$WAIT_S" "node $NODE_NAME Ready" node_ready
  wait_for kube-proxy "$WAIT_S" "kube-proxy /healthz" curl -fsS http://127.0.0.1:10256/healthz
  wait_for kube-controller-manager "$WAIT_S" "service account default/default" \
    kubectl_admin -n default get serviceaccount default
}

main() {
  if cluster_healthy; then
    log "the cluster is already up and healthy; nothing to do"
    summary
    return 0
  fi
  local name running=()
  for name in "${COMPONENTS[@]}"; do component_running "$name" && running+=("$name"); done
  if ((${#running[@]})); then
    log "a partial cluster is running (${running[*]}) but it is not healthy: stopping it first"
    "$HERE/down.sh"
  fi

  "$HERE/install-deps.sh"
  "$HERE/build-binaries.sh"
  "$HERE/make-images.sh"
  "$HERE/make-pki.sh"
  local host_ip
  host_ip=$(host_ip)

  step "starting the cluster (state $SYNTHLLM_CLUSTER_STATE, host address $host_ip)"
  local t0=$SECONDS
  check_subnets
  check_ports_free
  "$HERE/write-configs.sh"
  set_sysctls
  start_containerd
  start_etcd
  start_apiserver "$host_ip"
  start_controllers
  start_node "$host_ip"
  log "components started and ready in $((SECONDS - t0))s"
  summary
}

on_exit() {
  local rc=$?
  ((rc == 0)) || echo "up.sh failed (exit $rc); logs in $LOG_DIR; clean up with: make cluster-down" >&2
}
trap on_exit EXIT
main "$@"
