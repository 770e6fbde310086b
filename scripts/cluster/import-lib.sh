# Helpers of load-image.sh (sourced after lib.sh, not executed): the temporary folder of podman's
# archive, the disk check before an import and the removal of what no current image is.
# shellcheck shell=bash

CONTAINERD_ROOT="${CONTAINERD_ROOT:-$SYNTHLLM_CLUSTER_STATE/containerd/root}"

# podman save writes the whole archive to a temporary file before it streams it: gigabytes,
# in a folder of this run's own that goes however the script ends (a killed run's folder goes
# at the next run).
SAVE_TMP_ROOT="$SYNTHLLM_CACHE_DIR/tmp"
save_tmp=""
new_save_tmp() {
  local dir
  mkdir -p "$SAVE_TMP_ROOT"
  for dir in "$SAVE_TMP_ROOT"/podman-save.*; do
    [[ -d $dir ]] || continue
    kill -0 "${dir##*.}" 2>/dev/null && continue
    log "removing $dir, left by an import that did not finish ($(du -sh "$dir" | cut -f1))"
    rm -rf "$dir"
  done
  save_tmp="$SAVE_TMP_ROOT/podman-save.$$"
  mkdir -p "$save_tmp"
}

gib() { awk -v b="$1" 'BEGIN { printf "%.1f GiB", b / 2^30 }'; }
free_bytes() { df --output=avail -B1 "$1" | tail -n 1; }

# Stops before the import, not halfway into it, where the disk cannot hold it: podman's archive
# of the images, then containerd's copy of each layer it lacks and that layer unpacked.
check_space() {
  local sizes archive new need_tmp need_root margin=$((1 << 30))
  if ! sizes=$(podman image inspect "$@" |
    python3 "$SYNTHLLM_CLUSTER_DIR/import_space.py" "$(podman info --format '{{.Store.GraphRoot}}')/overlay-layers/layers.json" \
      <(ctr_k8s content ls -q)); then
    log "the import's size is not known (above): importing without a disk check"
    return 0
  fi
  read -r archive new <<<"$sizes"
  need_tmp=$((archive + margin)) need_root=$((2 * new + margin))
  if [[ $(stat -c %d "$save_tmp") == "$(stat -c %d "$CONTAINERD_ROOT")" ]]; then
    need_tmp=$((need_tmp + need_root - margin)) need_root=0
  fi
  log "the import needs $(gib "$archive") for podman's archive and $(gib "$((2 * new))") for the layers containerd lacks"
  local path need
  for path in "$save_tmp" "$CONTAINERD_ROOT"; do
    [[ $path == "$save_tmp" ]] && need=$need_tmp || need=$need_root
    ((need)) || continue
    (($(free_bytes "$path") >= need)) ||
      die "not enough disk for the import: $path has $(gib "$(free_bytes "$path")") free, it needs $(gib "$need")" \
        "(podman's archive $(gib "$archive"), containerd's new layers $(gib "$new") stored and unpacked, 1 GiB spare);" \
        "free some, or set SYNTHLLM_CACHE_DIR (podman's store and its archive) or SYNTHLLM_CLUSTER_STATE to a bigger disk"
  done
}

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

# Nothing pulls images back here, and each is gigabytes: once a build of a repository is in,
# the node keeps only that tag of it (a pod still running an old one keeps its snapshot).
# containerd's CRI plugin also names every image by its ID (sha256:<config digest>), a name
# that goes with no tag: an ID no tag points to any more is removed too, else it would keep
# every earlier build's layers. The last removal waits for containerd's garbage collection.
drop_other_tags() {
  local name repo ref digest old=()
  for name in "$@"; do
    repo=${name%:*}
    while read -r ref; do
      if [[ $ref == "$repo:"* && $ref != "$name" ]]; then old+=("$ref"); fi
    done < <(ctr_k8s images ls -q)
  done
  local -A named=()
  while read -r ref _ digest _; do
    if [[ $ref != sha256:* && " ${old[*]} " != *" $ref "* ]]; then named[$digest]=1; fi
  done < <(ctr_k8s images ls | tail -n +2)
  while read -r ref _ digest _; do
    if [[ $ref == sha256:* && -z ${named[$digest]:-} ]]; then old+=("$ref"); fi
  done < <(ctr_k8s images ls | tail -n +2)
  ((${#old[@]})) || return 0
  log "removing from containerd what no current image is: ${old[*]}"
  local before
  before=$(free_bytes "$CONTAINERD_ROOT")
  ctr_k8s images rm --sync "${old[@]}" >/dev/null || true
  log "containerd's disk: $(gib "$(($(free_bytes "$CONTAINERD_ROOT") - before))") freed"
}
