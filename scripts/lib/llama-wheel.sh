# llama_cpp_wheels: the folder holding this machine's llama-cpp-python wheel, built if missing
# (sourced by scripts/setup.sh and scripts/build_images.sh from the repository root; needs
# .venv/bin/pip).
# shellcheck shell=bash

# llama-cpp-python is published as source only: build its wheel once for this CPU and these
# flags (about 8 minutes on 2 cores), keep it in var/cache/wheels (git-ignored) and reuse it.
# No multimodal (llava/mtmd) library: the pipeline only generates text.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_BLAS=OFF -DLLAVA_BUILD=OFF"

# What GGML_NATIVE compiles for: the compiler's -march=native target and the ISA extensions it
# enables there, plus the kernel's CPU flags. A wheel built on one CPU may use instructions
# another lacks (or round differently), so it is reused only where all of this is the same.
cpu_features() {
  printf 'cpu: %s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
  ${CC:-cc} -march=native -Q --help=target 2>/dev/null \
    | awk '$1 == "-march=" {print "march: " $2} $2 == "[enabled]" {isa = isa " " $1}
           END {print "isa:" isa}'
  printf 'compiler: %s\n' "$(${CC:-cc} --version | head -n 1)"
  printf 'flags: %s\n' "$(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2- | xargs)"
}

llama_cpp_wheels() {
  local version key dir features
  version=$(sed -n 's/^llama[-_]cpp[-_]python==//p' requirements/constraints.txt)
  features=$(cpu_features)
  key=$(printf '%s\n%s\n%s\n' "$version" "$LLAMA_CMAKE_ARGS" "$features" | sha256sum | cut -c1-12)
  dir="var/cache/wheels/llama-cpp-python-$key"
  if ! ls "$dir"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
    {
      echo "building llama-cpp-python $version from source into $dir, for:"
      echo "$features" | sed -n '1,3s/^/  /p'
    } >&2
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
      .venv/bin/pip wheel -q --no-deps --no-binary llama-cpp-python -w "$dir.tmp" \
      "llama-cpp-python==$version" >&2
    printf 'llama-cpp-python %s\ncmake: %s\n%s\n' "$version" "$LLAMA_CMAKE_ARGS" "$features" \
      > "$dir.tmp/BUILD-INFO"
    mv "$dir.tmp" "$dir"
  else
    echo "llama-cpp-python $version: reusing $dir, built for:" >&2
    sed -n '3,5s/^/  /p' "$dir/BUILD-INFO" >&2 2>/dev/null || true
  fi
  echo "$dir"
}
