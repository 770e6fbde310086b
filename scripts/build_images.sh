#!/usr/bin/env bash
# Build the three job images tagged with the current commit, which they also carry as
# SYNTHLLM_CODE_VERSION (jobs/cli.py code_version() -> _manifest.json). Deploy by setting
# SYNTHLLM_IMAGE_TAG to the printed tag in the Airflow environment: the one image setting
# (dags/synthllm_tasks/kubernetes.py).
#
#   scripts/build_images.sh            build synthllm/{spark,python,vllm}:<commit>
#   scripts/build_images.sh --dry-run  print the docker commands only
# SYNTHLLM_IMAGE_REGISTRY (default synthllm) names the registry/repository prefix.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
dry_run=false
[[ "${1:-}" == "--dry-run" ]] && dry_run=true

tag="$(git rev-parse --short=12 HEAD)"
# An image of uncommitted code would carry a version that does not describe it.
if [[ -n "$(git status --porcelain --untracked-files=no)" ]] && ! $dry_run; then
    echo "build_images: the working tree has uncommitted changes; commit first" >&2
    exit 2
fi
registry="${SYNTHLLM_IMAGE_REGISTRY:-synthllm}"
for kind in spark python vllm; do
    cmd=(docker build -f "images/$kind/Dockerfile"
         --build-arg "SYNTHLLM_CODE_VERSION=$tag"
         -t "$registry/$kind:$tag" .)
    if $dry_run; then
        echo "${cmd[*]}"
    else
        "${cmd[@]}"
    fi
done
echo "SYNTHLLM_IMAGE_TAG=$tag"
