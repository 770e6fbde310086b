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

# The tag podman stores REF under (podman puts "localhost/" before names without a registry).
podman_name() {
  local ref=$1 tag tags
  tags=$(podman image inspect --format '{{range .RepoTags}}{{println .}}{{end}}' "$ref" 2>/dev/null) ||
    die "podman has no image $ref"
  for tag in $tags; do
    case $tag in
      "$ref" | "localhost/$ref" | "$ref:latest" | "localhost/$ref:latest")
        printf '%s\n' "$tag"
        return 0
        ;;
    esac
  done
  tag=$(head -n 1 <<<"$tags")
  [[ -n $tag ]] || die "image $ref has no name; tag it first (podman tag $ref localhost/NAME:TAG)"
  printf '%s\n' "$tag"
}

containerd_has() { ctr_k8s images ls -q | grep -xF "$1" >/dev/null; }

load_image() {
  local name id stamp start=$SECONDS
  name=$(podman_name "$1")
  id=$(podman image inspect --format '{{.Id}}' "$name")
  stamp="$STAMP_DIR/$(tr '/:' '__' <<<"$name").id"
  if [[ $(cat "$stamp" 2>/dev/null) == "$id" ]] && containerd_has "$name"; then
    log "already in containerd: $name (podman id ${id:0:12})"
    printf '%s\n' "$name" >&3
    return 0
  fi
  log "podman save --format docker-archive $name | ctr -n k8s.io images import"
  podman save --format docker-archive "$name" | ctr_k8s images import --snapshotter overlayfs - >/dev/null
  containerd_has "$name" || die "containerd does not list $name after the import"
  mkdir -p "$STAMP_DIR"
  printf '%s\n' "$id" >"$stamp"
  log "imported $name into containerd in $((SECONDS - start))s; pods use image: $name"
  printf '%s\n' "$name" >&3
}

for image in "$@"; do
  load_image "$image"
done
