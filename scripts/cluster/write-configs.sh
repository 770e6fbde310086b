#!/usr/bin/env bash
# Writes the containerd, CNI and kubelet configuration under the state dir (rewritten on every
# up, so a changed script or host address always takes effect).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

HOST_IP=$(host_ip)
mkdir -p "$CONF_DIR" "$CNI_CONF_DIR" "$CNI_IPAM_DIR" "$POD_LOG_DIR"

step "configuration ($CONF_DIR, $CNI_CONF_DIR)"

# Relocated away from /var/lib/containerd and /run/containerd so that it can never collide
# with a system containerd, and down.sh knows exactly what to unmount and wipe.
cat >"$CONF_DIR/containerd.toml" <<EOF
version = 2
root = "$CONTAINERD_ROOT"
state = "$CONTAINERD_STATE"
oom_score = 0

[grpc]
  address = "$CONTAINERD_ADDRESS"

[ttrpc]
  address = "$CONTAINERD_ADDRESS.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$SYNTHLLM_CLUSTER_STATE/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Root cannot lower oom_score_adj here; without this the pause container (-998) fails with
  # "runc create failed: can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  systemd_cgroup = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUNC_ROOT"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CNI_CONF_DIR"
    max_conf_num = 1
EOF
log "wrote $CONF_DIR/containerd.toml"

# No ipMasq: pods reach each other, Services and this machine's own addresses (the S3 server
# on $HOST_IP), and nothing beyond it. containerd sets up each pod's loopback itself.
cat >"$CNI_CONF_DIR/10-$CNI_NETWORK.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CNI_IPAM_DIR",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
log "wrote $CNI_CONF_DIR/10-$CNI_NETWORK.conflist (bridge $CNI_BRIDGE, pods $POD_CIDR)"

# Eviction thresholds are low because CI disks are small and nothing here can be pulled back;
# for the same reason image GC never runs (100%).
cat >"$CONF_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_ADDRESS
imageServiceEndpoint: unix://$CONTAINERD_ADDRESS
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI_DIR/ca.crt
authorization:
  mode: Webhook
address: $HOST_IP
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podLogsDir: $POD_LOG_DIR
volumePluginDir: $KUBELET_ROOT/volume-plugins
maxPods: 110
# No disk signals ("0%" drops a signal; unlisted ones stay off): under disk pressure the
# kubelet deletes every unused image, and containerd 1.6.20 does not pin the pause image, so
# the node could then start no pod at all: nothing can pull an image back here. The disk is
# shared and its free space moves by gigabytes; it was seen under 1 GiB for a few seconds
# mid-run, and the node lost every image. A really full disk fails the writes themselves.
evictionHard:
  memory.available: 200Mi
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
  imagefs.inodesFree: "0%"
# Memory pressure only: once memory is back, pods schedule within 30 s instead of 5 minutes.
evictionPressureTransitionPeriod: 30s
# 100 with no maximum age turns image GC off (images cannot be pulled back once collected).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
log "wrote $CONF_DIR/kubelet.yaml"
