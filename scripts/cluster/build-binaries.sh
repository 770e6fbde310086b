#!/usr/bin/env bash
# Builds the Kubernetes binaries and etcd from Go modules into the version-keyed cache
# (no release binaries can be downloaded here). A binary that already reports the wanted
# version is kept, so a reused machine builds nothing.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# Two cores shared with other work: at most two compile jobs, at low priority; caches outside
# the checkout (module cache ~1 GB, build cache ~3 GB).
export GOMODCACHE="$GO_CACHE_ROOT/mod" GOCACHE="$GO_CACHE_ROOT/build"
export GOFLAGS="-modcacherw -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0
GO_PARALLEL="${SYNTHLLM_GO_PARALLEL:-2}"

command -v go >/dev/null || die "go is not installed (needed to build Kubernetes $K8S_VERSION and etcd $ETCD_VERSION)"

k8s_binary_ok() {
  local bin=$K8S_BIN/$1 out
  [[ -x $bin ]] || return 1
  if [[ $1 == kubectl ]]; then
    out=$("$bin" version --client 2>/dev/null) || return 1
  else
    out=$("$bin" --version 2>/dev/null) || return 1
  fi
  grep -qF "$K8S_VERSION" <<<"$out"
}

etcd_binary_ok() {
  local out
  [[ -x $ETCD_BIN/etcd ]] && out=$("$ETCD_BIN/etcd" --version 2>/dev/null) || return 1
  grep -qF "etcd Version: ${ETCD_VERSION#v}" <<<"$out"
}

# Copies a build module (go.mod.in + tools.go) into SRC with versions filled in, then lets
# `go mod tidy` write go.sum (it downloads only what is missing from the module cache).
prepare_module() {
  local from=$1 src=$2
  shift 2
  mkdir -p "$src"
  sed "$@" "$from/go.mod.in" >"$src/go.mod"
  cp "$from/tools.go" "$src/tools.go"
  log "go mod tidy in $src"
  (cd "$src" && go mod tidy)
}

build_kubernetes() {
  local missing=() name
  for name in "${K8S_BINARIES[@]}"; do
    if k8s_binary_ok "$name"; then
      log "reusing $K8S_BIN/$name ($K8S_VERSION)"
    else
      missing+=("$name")
    fi
  done
  ((${#missing[@]})) || return 0

  local src=$SYNTHLLM_CACHE_DIR/k8s-$K8S_VERSION/src tmp=$SYNTHLLM_CACHE_DIR/k8s-$K8S_VERSION/bin.tmp
  prepare_module "$SYNTHLLM_CLUSTER_DIR/build/kubernetes" "$src" \
    -e "s/@K8S_VERSION@/$K8S_VERSION/g" -e "s/@STAGING_VERSION@/$K8S_STAGING_VERSION/g"
  local major minor ldflags="-s -w" pkg
  major=${K8S_VERSION#v}
  major=${major%%.*}
  minor=${K8S_VERSION#v*.}
  minor=${minor%%.*}
  # Without these the binaries call themselves v0.0.0-master and kubectl warns about skew.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
  done
  local pkgs=()
  for name in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$name"); done
  log "building ${missing[*]} $K8S_VERSION (go build -p $GO_PARALLEL; ~3-5 min with a cold cache)"
  rm -rf "$tmp" && mkdir -p "$tmp" "$K8S_BIN"
  (cd "$src" && nice -n 10 go build -p "$GO_PARALLEL" -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
  for name in "${missing[@]}"; do mv -f "$tmp/$name" "$K8S_BIN/$name"; done
  rmdir "$tmp"
  for name in "${K8S_BINARIES[@]}"; do
    k8s_binary_ok "$name" || die "built $K8S_BIN/$name does not report $K8S_VERSION"
  done
  log "built ${missing[*]} into $K8S_BIN"
}

build_etcd() {
  if etcd_binary_ok; then
    log "reusing $ETCD_BIN/etcd ($ETCD_VERSION)"
    return 0
  fi
  local src=$SYNTHLLM_CACHE_DIR/etcd-$ETCD_VERSION/src
  prepare_module "$SYNTHLLM_CLUSTER_DIR/build/etcd" "$src" -e "s/@ETCD_VERSION@/$ETCD_VERSION/g"
  log "building etcd $ETCD_VERSION"
  mkdir -p "$ETCD_BIN"
  (cd "$src" && nice -n 10 go build -p "$GO_PARALLEL" -trimpath -ldflags "-s -w" \
    -o "$ETCD_BIN/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv -f "$ETCD_BIN/etcd.tmp" "$ETCD_BIN/etcd"
  etcd_binary_ok || die "built $ETCD_BIN/etcd does not report $ETCD_VERSION"
  log "built $ETCD_BIN/etcd"
}

step "binaries: Kubernetes $K8S_VERSION and etcd $ETCD_VERSION (cache $SYNTHLLM_CACHE_DIR)"
build_kubernetes
build_etcd
