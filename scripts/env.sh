# Environment shared by set-up, the main run and the tests (sourced, not executed).
# Everything lives inside the checkout so that a run never touches ~/airflow or ~/.cache.
SYNTHLLM_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SYNTHLLM_REPO
export PATH="$SYNTHLLM_REPO/.venv/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$SYNTHLLM_REPO/var/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$SYNTHLLM_REPO/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-2}"
export SPARK_LOCAL_IP=127.0.0.1
# Models ship inside PyPI packages; nothing may be fetched from a hub at run time.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export GX_ANALYTICS_ENABLED=false
export PYTHONPATH="$SYNTHLLM_REPO${PYTHONPATH:+:$PYTHONPATH}"
