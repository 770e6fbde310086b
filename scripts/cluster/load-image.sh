#!/usr/bin/env bash
# Usage: load-image.sh IMAGE...
# Copies images built with podman into the node's containerd (namespace k8s.io), so that pods
# with imagePullPolicy Never/IfNotPresent can use them: there is no registry to pull from.
# An image whose podman ID was already imported is skipped. Prints, one a line on stdout, the
# name containerd knows each image under (the name to use in pods); progress goes to stderr.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
podman_env
exec 3>&1 1>&2

(($#)) || die "usage: $0 IMAGE... (podman image names, e.g. localhost/synthllm-debian:bookworm)"
ctr --address "$CONTAINERD_ADDRESS" version >/dev/null 2>&1 ||
  die "the cluster's containerd is not running at $CONTAINERD_ADDRESS (run: make cluster-up)"

STAMP_DIR="$SYNTHLLM_CLUSTER_STATE/containerd/imported"
# shellcheck source=import-lib.sh
source "$(dirname "$0")/import-lib.sh"
trap '[[ -z $save_tmp ]] || rm -rf "$save_tmp"' EXIT

# Every image still to import goes into ONE archive: images that share layers (the Python and
# Spark images, both FROM the Python image's runtime stage) hold them once there.
load_images() {
  local ref name id stamp start=$SECONDS names=() ids=() todo=()
  for ref in "$@"; do
    name=$(podman_name "$ref")
    id=$(podman image inspect --format '{{.Id}}' "$name")
    stamp="$STAMP_DIR/$(tr '/:' '__' <<<"$name").id"
    if [[ $(cat "$stamp" 2>/dev/null) == "$id" ]] && containerd_has "$name"; then
      log "already in containerd: $name (podman id ${id:0:12})"
    else
      todo+=("$name")
      ids+=("$id")
    fi
    names+=("$name")
  done
  if ((${#todo[@]})); then
    new_save_tmp
    check_space "${todo[@]}"
    log "podman save --multi-image-archive ${todo[*]} | ctr -n k8s.io images import"
    TMPDIR=$save_tmp podman save --multi-image-archive --format docker-archive "${todo[@]}" |
      ctr_k8s images import --snapshotter overlayfs - >/dev/null
    rm -rf "$save_tmp"
    mkdir -p "$STAMP_DIR"
    local i
    for i in "${!todo[@]}"; do
      containerd_has "${todo[i]}" || die "containerd does not list ${todo[i]} after the import"
      printf '%s\n' "${ids[i]}" >"$STAMP_DIR/$(tr '/:' '__' <<<"${todo[i]}").id"
    done
    log "imported ${todo[*]} into containerd in $((SECONDS - start))s"
  fi
  drop_other_tags "${todo[@]}"
  for name in "${names[@]}"; do
    log "pods use image: $name"
    printf '%s\n' "$name" >&3
  done
}

load_images "$@"
# Every pod's sandbox runs the pause image, and containerd 1.6.20 does not pin it: should
# anything have removed it from the node, it goes back in with the images loaded now.
if ! containerd_has "$PAUSE_IMAGE"; then
  log "containerd lacks the sandbox image $PAUSE_IMAGE: loading it again"
  load_images "$PAUSE_IMAGE" 3>/dev/null
fi
