#!/usr/bin/env bash
# An S3 API for the local cluster: moto's server on this machine's own address, which pods
# reach through the node (no traffic leaves the machine).
#   s3.sh start   start it (idempotent) and create the bucket
#   s3.sh stop    stop it by its PID
#   s3.sh env     print the AWS_* / SYNTHLLM_* variables a client on this machine needs
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
pid_file="$S3_DIR/moto.pid"

running() { [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

case "${1:-}" in
  start)
    mkdir -p "$S3_DIR"
    if running; then
      k8s_log "s3: moto already serves $S3_ENDPOINT (pid $(cat "$pid_file"))"
    else
      [[ -n $SYNTHLLM_CLUSTER_HOST_IP ]] || k8s_die "no host address (SYNTHLLM_CLUSTER_HOST_IP)"
      k8s_log "s3: starting moto on $S3_ENDPOINT (log $S3_DIR/moto.log)"
      setsid "$REPO/.venv/bin/moto_server" -H "$SYNTHLLM_CLUSTER_HOST_IP" -p "$S3_PORT" \
        >"$S3_DIR/moto.log" 2>&1 < /dev/null &
      echo $! >"$pid_file"
      for _ in $(seq 50); do
        curl -fsS "$S3_ENDPOINT/" >/dev/null 2>&1 && break
        running || k8s_die "moto exited: $(tail -n 5 "$S3_DIR/moto.log")"
        sleep 0.2
      done
    fi
    AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1 \
      "$REPO/.venv/bin/python" - "$S3_ENDPOINT" "$S3_BUCKET" <<'PY'
import sys
import boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
if sys.argv[2] not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
    s3.create_bucket(Bucket=sys.argv[2])
print(f"[s3] bucket {sys.argv[2]} ready at {sys.argv[1]}", file=sys.stderr)
PY
    ;;
  stop)
    if running; then
      pid=$(cat "$pid_file")
      kill "$pid" && for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      k8s_log "s3: stopped moto (pid $pid)"
    else
      k8s_log "s3: moto is not running"
    fi
    rm -f "$pid_file"
    ;;
  env)
    printf 'export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1\n'
    printf 'export SYNTHLLM_S3_ENDPOINT_URL=%q SYNTHLLM_ROOT_URI=%q\n' "$S3_ENDPOINT" "$ROOT_URI"
    ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
