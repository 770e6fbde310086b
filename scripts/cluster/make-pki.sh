#!/usr/bin/env bash
# Makes the cluster's PKI (openssl) and the kubeconfigs that use it, under the state dir.
# A PKI that is still valid for a day and names the current host address and node is reused;
# anything else regenerates all of it (a new CA invalidates every cert signed by the old one).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

HOST_IP=$(host_ip)
# name -> subject; O= is the group RBAC sees. The apiserver's kubelet client is in
# system:masters so that `kubectl logs/exec` pass the kubelet's webhook authorization.
declare -A CLIENTS=(
  [admin]="/O=system:masters/CN=synthllm-admin"
  [controller-manager]="/CN=system:kube-controller-manager"
  [scheduler]="/CN=system:kube-scheduler"
  [kube-proxy]="/CN=system:kube-proxy"
  [node]="/O=system:nodes/CN=system:node:$NODE_NAME"
  [apiserver-kubelet-client]="/O=system:masters/CN=kube-apiserver-kubelet-client"
)
SERVER_SANS="IP:127.0.0.1,IP:$HOST_IP,IP:$KUBERNETES_SERVICE_IP,DNS:localhost,DNS:kubernetes"
SERVER_SANS+=",DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"

pki_reusable() {
  local name
  [[ -s $PKI_DIR/ca.key && -s $PKI_DIR/sa.key && -s $PKI_DIR/sa.pub ]] || return 1
  for name in ca apiserver "${!CLIENTS[@]}"; do
    [[ -s $PKI_DIR/$name.crt && -s $PKI_DIR/$name.key ]] || return 1
    openssl x509 -in "$PKI_DIR/$name.crt" -noout -checkend 86400 >/dev/null 2>&1 || return 1
    [[ $name == ca ]] || openssl verify -CAfile "$PKI_DIR/ca.crt" "$PKI_DIR/$name.crt" >/dev/null 2>&1 || return 1
  done
  openssl x509 -in "$PKI_DIR/apiserver.crt" -noout -ext subjectAltName 2>/dev/null |
    grep -E "IP Address:${HOST_IP//./\\.}(,|$)" >/dev/null || return 1
  openssl x509 -in "$PKI_DIR/node.crt" -noout -subject -nameopt compat 2>/dev/null |
    grep -F "CN=system:node:$NODE_NAME" >/dev/null || return 1
}

# issue NAME SUBJECT EXTENSIONS: a key and a one-year cert signed by the CA.
issue() {
  local name=$1 subject=$2 ext=$3
  openssl genrsa -out "$PKI_DIR/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI_DIR/$name.key" -subj "$subject" -out "$PKI_DIR/$name.csr"
  openssl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
    -CAcreateserial -CAserial "$PKI_DIR/ca.srl" -days 365 -sha256 \
    -extfile <(printf '%b\n' "$ext") -out "$PKI_DIR/$name.crt" 2>/dev/null
  rm -f "$PKI_DIR/$name.csr"
  log "issued $name.crt: $subject"
}

make_pki() {
  local leaf="basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment"
  rm -rf "$PKI_DIR" && mkdir -p "$PKI_DIR" && chmod 700 "$PKI_DIR"
  openssl genrsa -out "$PKI_DIR/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$PKI_DIR/ca.key" -subj "/CN=synthllm-cluster-ca" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$PKI_DIR/ca.crt"
  log "made ca.crt (10 years)"
  issue apiserver "/CN=kube-apiserver" "$leaf\nextendedKeyUsage=serverAuth\nsubjectAltName=$SERVER_SANS"
  local name
  for name in "${!CLIENTS[@]}"; do
    issue "$name" "${CLIENTS[$name]}" "$leaf\nextendedKeyUsage=clientAuth"
  done
  openssl genrsa -out "$PKI_DIR/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI_DIR/sa.key" -pubout -out "$PKI_DIR/sa.pub" 2>/dev/null
  log "made the service-account key pair sa.key/sa.pub"
}

# One kubeconfig per client, all pointing at the apiserver over loopback.
write_kubeconfig() {
  local name=$1
  cat >"$KUBECONFIG_DIR/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: synthllm
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $PKI_DIR/ca.crt
users:
- name: $name
  user:
    client-certificate: $PKI_DIR/$name.crt
    client-key: $PKI_DIR/$name.key
contexts:
- name: synthllm
  context:
    cluster: synthllm
    user: $name
current-context: synthllm
EOF
}

step "PKI and kubeconfigs ($PKI_DIR; apiserver SANs include $HOST_IP)"
if pki_reusable; then
  log "reusing the PKI in $PKI_DIR (valid, names $HOST_IP and $NODE_NAME)"
else
  make_pki
fi
mkdir -p "$KUBECONFIG_DIR"
for name in admin controller-manager scheduler kube-proxy node; do
  write_kubeconfig "$name"
done
chmod 600 "$KUBECONFIG_DIR"/*.kubeconfig
log "kubeconfigs in $KUBECONFIG_DIR (admin: $ADMIN_KUBECONFIG)"
