#!/usr/bin/env bash
# Makes the two images every pod here depends on, in podman's storage under the cache dir:
# the pause (sandbox) image and the Debian base image that project images build FROM.
# No image registry is reachable, so both are made locally; an existing image is kept.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
podman_env

make_pause_image() {
  if podman image exists "$PAUSE_IMAGE"; then
    log "reusing $PAUSE_IMAGE"
    return 0
  fi
  local ctx=$IMAGE_CACHE/pause
  log "building the pause binary (static Go) and $PAUSE_IMAGE (FROM scratch)"
  mkdir -p "$ctx"
  (cd "$SYNTHLLM_CLUSTER_DIR/pause" &&
    GOMODCACHE="$GO_CACHE_ROOT/mod" GOCACHE="$GO_CACHE_ROOT/build" GOFLAGS=-buildvcs=false \
      GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ctx/pause" .)
  cp "$SYNTHLLM_CLUSTER_DIR/pause/Containerfile" "$ctx/Containerfile"
  podman build --quiet --network none -t "$PAUSE_IMAGE" "$ctx" >/dev/null
  log "made $PAUSE_IMAGE"
}

make_base_image() {
  if podman image exists "$BASE_IMAGE"; then
    log "reusing $BASE_IMAGE"
    return 0
  fi
  local tarball=$IMAGE_CACHE/debian-bookworm-minbase.tar
  if [[ -s $tarball ]]; then
    log "reusing the debootstrap tarball $tarball"
  else
    local mirror root=$IMAGE_CACHE/debootstrap.tmp
    mirror=$(apt_mirror)
    log "debootstrap --variant=minbase bookworm from $mirror (about a minute)"
    rm -rf "$root" && mkdir -p "$root"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$IMAGE_CACHE/debootstrap.log" 2>&1 ||
      {
        tail -n 20 "$IMAGE_CACHE/debootstrap.log" >&2
        die "debootstrap failed (log $IMAGE_CACHE/debootstrap.log)"
      }
    # Package lists and caches are fetched again by any build that installs something.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  log "podman import $tarball as $BASE_IMAGE"
  podman import --quiet --change 'CMD ["/bin/bash"]' "$tarball" "$BASE_IMAGE" >/dev/null
  log "made $BASE_IMAGE"
}

step "images: $PAUSE_IMAGE and $BASE_IMAGE (podman storage $SYNTHLLM_CACHE_DIR/containers)"
mkdir -p "$IMAGE_CACHE"
make_pause_image
make_base_image
