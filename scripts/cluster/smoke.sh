#!/usr/bin/env bash
# Checks a running local cluster end to end with real pods from the base image:
#   1. a pod runs `sh -c 'echo hello'` to Succeeded and its log reads back;
#   2. a pod reaches the `kubernetes` Service (10.96.0.1:443, through kube-proxy), this
#      machine's own address (where the S3 API server listens) and another pod;
#   3. a namespace enforcing Pod Security `restricted` refuses a privileged pod and runs a
#      compliant one.
# Prints PASS/FAIL per check and exits 1 if any failed.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
NS=synthllm-smoke
NS_RESTRICTED=synthllm-smoke-restricted
POD_TIMEOUT=90s
PASSED=0
FAILED=0
HOST_IP=$(host_ip)

pass() {
  PASSED=$((PASSED + 1))
  log "PASS: $1"
}
fail() {
  FAILED=$((FAILED + 1))
  log "FAIL: $1"
}

k() { kubectl_admin "$@"; }

# expect_in OUTPUT TEXT PASS-MESSAGE FAIL-MESSAGE
expect_in() {
  if [[ $1 == *"$2"* ]]; then pass "$3"; else fail "$4 (output: $(tr '\n' ' ' <<<"$1"))"; fi
}

# Namespaces go away in the background at the end; a new run waits for a previous run's.
cleanup() { k delete namespace "$NS" "$NS_RESTRICTED" --ignore-not-found --wait=false >/dev/null 2>&1 || true; }

wait_namespaces_gone() {
  local deadline=$((SECONDS + 90))
  while [[ -n $(k get namespace "$NS" "$NS_RESTRICTED" --ignore-not-found -o name 2>/dev/null) ]]; do
    ((SECONDS < deadline)) || die "namespaces $NS/$NS_RESTRICTED from an earlier run are still terminating"
    sleep 1
  done
}

# pod_yaml NAMESPACE NAME SCRIPT [CONTAINER-YAML]: a one-shot bash pod from the base image.
pod_yaml() {
  cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $2, namespace: $1}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: $BASE_IMAGE
    imagePullPolicy: Never
    command: ["bash", "-c"]
    args:
    - |
$(sed -e 's/^ *//' -e '/^$/d' -e 's/^/      /' <<<"$3")
${4:-}
EOF
}

wait_phase() {
  local ns=$1 pod=$2 phase=$3
  k -n "$ns" wait --for=jsonpath='{.status.phase}'="$phase" "pod/$pod" --timeout="$POD_TIMEOUT" >/dev/null 2>&1
}

describe() { k -n "$1" describe pod "$2" 2>&1 | tail -n 12 | sed 's/^/    /'; }

check_hello() {
  pod_yaml "$NS" hello 'echo hello' | k apply -f - >/dev/null
  if wait_phase "$NS" hello Succeeded && [[ $(k -n "$NS" logs hello) == hello ]]; then
    pass "pod 'echo hello' from $BASE_IMAGE Succeeded and logged 'hello'"
  else
    fail "pod 'echo hello' did not succeed with log 'hello'"
    describe "$NS" hello
  fi
}

# The base image has no network tools: bash's /dev/tcp connects, and a "Connection refused"
# from a port nobody listens on proves the packets reached the other pod.
check_network() {
  pod_yaml "$NS" target 'sleep 300' | k apply -f - >/dev/null
  if ! wait_phase "$NS" target Running; then
    fail "target pod for pod-to-pod traffic did not start"
    describe "$NS" target
    return 0
  fi
  local target_ip out
  target_ip=$(k -n "$NS" get pod target -o jsonpath='{.status.podIP}')
  pod_yaml "$NS" netcheck "
    probe() { timeout 5 bash -c \"exec 3<>/dev/tcp/\$1/\$2\" 2>&1 && echo \"\$3=\$1:connected\" || echo \"\$3=failed\"; }
    probe \$KUBERNETES_SERVICE_HOST \$KUBERNETES_SERVICE_PORT service
    probe $HOST_IP $APISERVER_PORT host
    timeout 5 bash -c 'exec 3<>/dev/tcp/$target_ip/9' 2>&1 | grep -q 'Connection refused' && echo pod=reached || echo pod=failed" |
    k apply -f - >/dev/null
  if ! wait_phase "$NS" netcheck Succeeded; then
    fail "network check pod did not finish"
    describe "$NS" netcheck
    return 0
  fi
  out=$(k -n "$NS" logs netcheck)
  expect_in "$out" "service=$KUBERNETES_SERVICE_IP:connected" \
    "pod reached the kubernetes Service at $KUBERNETES_SERVICE_IP:443" "pod could not reach the kubernetes Service"
  expect_in "$out" "host=$HOST_IP:connected" \
    "pod reached this machine at $HOST_IP:$APISERVER_PORT" "pod could not reach $HOST_IP:$APISERVER_PORT"
  expect_in "$out" "pod=reached" "pod reached another pod at $target_ip" "pod could not reach pod $target_ip"
}

check_pod_security() {
  k create namespace "$NS_RESTRICTED" >/dev/null
  k label namespace "$NS_RESTRICTED" pod-security.kubernetes.io/enforce=restricted \
    pod-security.kubernetes.io/enforce-version=latest >/dev/null
  local out
  if out=$(pod_yaml "$NS_RESTRICTED" privileged 'echo should not run' \
    '    securityContext: {privileged: true}' | k apply -f - 2>&1); then
    fail "restricted namespace accepted a privileged pod"
  elif [[ $out == *"violates PodSecurity \"restricted"* ]]; then
    pass "restricted namespace refused a privileged pod: ${out#*is forbidden: }"
  else
    fail "privileged pod refused, but not by Pod Security: $out"
  fi
  local restricted='    securityContext:
      allowPrivilegeEscalation: false
      runAsNonRoot: true
      runAsUser: 1000
      capabilities: {drop: [ALL]}
      seccompProfile: {type: RuntimeDefault}'
  if ! out=$(pod_yaml "$NS_RESTRICTED" compliant 'id -u' "$restricted" | k apply -f - 2>&1); then
    fail "restricted namespace refused a compliant pod: $out"
  elif wait_phase "$NS_RESTRICTED" compliant Succeeded &&
    [[ $(k -n "$NS_RESTRICTED" logs compliant) == 1000 ]]; then
    pass "restricted namespace accepted a compliant pod, which ran as uid 1000"
  else
    fail "compliant pod was accepted but did not run as uid 1000"
    describe "$NS_RESTRICTED" compliant
  fi
}

step "smoke checks on the local cluster ($ADMIN_KUBECONFIG)"
k get --raw /readyz >/dev/null 2>&1 || die "the cluster is not up (run: make cluster-up)"
cleanup
wait_namespaces_gone
trap cleanup EXIT
k create namespace "$NS" >/dev/null
check_hello
check_network
check_pod_security
echo "smoke: $PASSED passed, $FAILED failed"
((FAILED == 0))
