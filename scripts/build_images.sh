#!/usr/bin/env bash
# Build the job images tagged with the current commit, which they also carry as
# SYNTHLLM_CODE_VERSION (jobs/cli.py code_version() -> _manifest.json). Deploy by setting
# SYNTHLLM_IMAGE_TAG to the printed tag in the Airflow environment: the one image setting
# (dags/synthllm_tasks/kubernetes.py).
#
#   scripts/build_images.sh [--load] [--allow-dirty] [--dry-run] [KIND...]
#     KIND           python, spark, vllm (default: python spark; vllm needs its CUDA base
#                    image from a registry, which the project's own machines cannot reach)
#     --load         then load them into the local cluster's containerd (scripts/cluster/)
#     --allow-dirty  build uncommitted changes, tagged <commit>-dirty
#     --dry-run      print the build commands only
# Environment:
#   SYNTHLLM_IMAGE_BUILDER   podman (the default where it is installed) or docker
#   SYNTHLLM_IMAGE_REGISTRY  repository prefix (default synthllm; podman stores it under
#                            localhost/, the name pods on the local cluster use)
#   SYNTHLLM_BASE_IMAGE      the Python image's base (default: the Debian image that
#                            scripts/cluster/ makes where it exists, else the Dockerfile's)
# With podman the Python packages come from one wheel folder ($SYNTHLLM_CACHE_DIR/wheels)
# mounted into the build, filled once from the package index (and the llama.cpp wheel that
# make setup built for this CPU): images and their rebuilds download nothing twice.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

load=false dirty=false dry_run=false kinds=()
for arg in "$@"; do
  case $arg in
    --load) load=true ;;
    --allow-dirty) dirty=true ;;
    --dry-run) dry_run=true ;;
    python | spark | vllm) kinds+=("$arg") ;;
    *) echo "build_images: unknown argument $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
((${#kinds[@]})) || kinds=(python spark)
log() { printf '[build_images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

tag="$(git rev-parse --short=12 HEAD)"
if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
  # An image of uncommitted code must not carry a version that does not describe it.
  if ! $dirty && ! $dry_run; then
    echo "build_images: the working tree has uncommitted changes; commit, or --allow-dirty" >&2
    exit 2
  fi
  tag="$tag-dirty"
fi
registry="${SYNTHLLM_IMAGE_REGISTRY:-synthllm}"
builder="${SYNTHLLM_IMAGE_BUILDER:-$(command -v podman >/dev/null && echo podman || echo docker)}"
if [[ $builder == podman ]]; then
  # shellcheck source=scripts/cluster/env.sh
  source scripts/cluster/env.sh
fi
base="${SYNTHLLM_BASE_IMAGE:-}"
if [[ -z $base && $builder == podman ]] && podman image exists localhost/synthllm-debian:bookworm; then
  base=localhost/synthllm-debian:bookworm
fi
if [[ " ${kinds[*]} " == *" spark "* ]] && ! $dry_run && ! ls jars/lib/*.jar >/dev/null 2>&1; then
  echo "build_images: jars/lib is empty; run make setup first (the Spark image bakes those jars)" >&2
  exit 2
fi

# The wheels of every lock line that the folder lacks, from the index; the llama.cpp wheel
# comes from make setup's build for this CPU (the Dockerfile compiles a portable one where no
# folder is given).
fill_wheels() {
  local wheels=$1 missing llama
  mkdir -p "$wheels"
  missing=$(.venv/bin/python - "$wheels" images/python/requirements.lock images/spark/requirements.lock <<'PY'
import pathlib, sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
have = set()
for p in pathlib.Path(sys.argv[1]).glob("*.whl"):
    name, version, _, _ = parse_wheel_filename(p.name)
    have.add((name, str(version)))
for lock in sys.argv[2:]:
    for line in pathlib.Path(lock).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            if (canonicalize_name(req.name), next(iter(req.specifier)).version) not in have:
                print(line)
PY
)
  if [[ -z $missing ]]; then
    log "wheels: all in $wheels"
    return 0
  fi
  # shellcheck source=scripts/lib/llama-wheel.sh
  source scripts/lib/llama-wheel.sh
  llama=$(llama_cpp_wheels)
  log "wheels: fetching $(wc -l <<<"$missing") into $wheels"
  .venv/bin/pip wheel -q --no-deps -w "$wheels" --find-links "$llama" -r /dev/stdin <<<"$missing"
}

build_args=()
if [[ $builder == podman ]]; then
  wheels="$SYNTHLLM_CACHE_DIR/wheels"
  $dry_run || fill_wheels "$wheels"
  build_args+=(-v "$wheels:/wheels:ro" --build-arg "PIP_ARGS=--no-index --find-links /wheels")
fi

built=()
# build IMAGE DOCKERFILE [ARG...]: one image, or its command on a dry run.
build() {
  local image=$1 dockerfile=$2 start=$SECONDS
  shift 2
  local args=(build -f "$dockerfile" --build-arg "SYNTHLLM_CODE_VERSION=$tag" "$@" -t "$image" .)
  if $dry_run; then
    echo "$builder ${args[*]}"
    return 0
  fi
  log "building $image with $builder"
  "$builder" "${args[@]}"
  log "built $image in $((SECONDS - start))s"
  built+=("$image")
}
python_args=("${build_args[@]}")
[[ -n $base ]] && python_args+=(--build-arg "BASE_IMAGE=$base")
for kind in "${kinds[@]}"; do
  case $kind in
    python) build "$registry/python:$tag" images/python/Dockerfile "${python_args[@]}" ;;
    spark)
      # The Python image's runtime stage (cached layers where the Python image was just
      # built), FROM which the Spark image is built.
      build "$registry/python-runtime:$tag" images/python/Dockerfile --target runtime "${python_args[@]}"
      build "$registry/spark:$tag" images/spark/Dockerfile \
        --build-arg "RUNTIME_IMAGE=$registry/python-runtime:$tag" "${build_args[@]}"
      ;;
    vllm) build "$registry/vllm:$tag" images/vllm/Dockerfile ;;
  esac
done

if [[ $builder == podman ]] && ! $dry_run; then
  # Every build is tagged with its commit and each holds gigabytes: only this build's tag of
  # each image is kept. A rebuild under the same tag (-dirty) leaves the previous image
  # untagged; those go too.
  for image in "${built[@]}"; do
    repo=${image%:*}
    while read -r other; do
      [[ ${other%:*} == "$repo" || ${other%:*} == "localhost/$repo" ]] || continue
      [[ $other == "$image" || $other == "localhost/$image" ]] && continue
      log "removing the older $other"
      podman rmi "$other" >/dev/null
    done < <(podman images --format '{{.Repository}}:{{.Tag}}')
  done
  podman image prune -f >/dev/null
fi
if $load && ! $dry_run; then
  [[ $builder == podman ]] || { echo "build_images: --load needs podman" >&2; exit 2; }
  # The runtime stage runs no pod of its own: the Spark image carries its layers.
  to_load=()
  for image in "${built[@]}"; do
    [[ $image == */python-runtime:* ]] || to_load+=("$image")
  done
  scripts/cluster/load-image.sh "${to_load[@]}" >&2
fi
echo "SYNTHLLM_IMAGE_TAG=$tag"
