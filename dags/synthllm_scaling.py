"""synthllm_scaling: a published dataset -> nested subsets -> one model each -> scaling laws.

Wiring only: every task runs a job module built by the one factory in ``synthllm_tasks``;
the two small ``@task`` functions only resolve names and build argv tails.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task
from synthllm_tasks import DEFAULT_ARGS, SYNTHLLM_DATASET, JobSpec, job_task
from synthllm_tasks.sizing import active_sizes

DOC_MD = """
# synthllm_scaling

How does a model's math error rate scale with the amount of SynthLLM data (paper section
3)? Cuts the published dataset into nested subsets whose token counts double, fine-tunes one
model per subset, evaluates each, and fits the power law `L = B / D^beta + E` and the
rectified law `L = B / (D_l + D^beta) + E` with the largest subset held out as the test.

**Runs** when `synthllm_generate.publish` updates the Asset `synthllm_dataset`, or by hand.

**Inputs**: `{root}/datasets/synthllm/{snapshot}/` (the published dataset and its manifest);
the evaluation set (`eval_set`, else `evaluation.eval_set_uri`, else the built-in set).

**Outputs**, under `{root}/scaling/{study_id}/`: `subsets/{K}/` (K = 0 is the smallest),
`study.json`, `runs/{K}/train/` and `runs/{K}/eval/` (`metrics.json`), and `report/`
(`report.json`, `report.html`, `fit.png`: parameters with bootstrap intervals, each law's
error on the held-out subset, predictions at 10B...4T tokens, the plateau).

**Tasks**: resolve_study → prepare_subsets → subset_tails → train (mapped over subsets,
GPU) → evaluate (mapped, GPU) → fit_report.

**Params**
- `snapshot`: the dataset's snapshot; empty: the triggering Asset event's `extra.snapshot`,
  else the snapshot of the `synthllm_generate` run that published it. A manual run without
  a snapshot fails at `resolve_study`.
- `recipe`: training recipe name; when set it wins over `train.recipe`, empty: the config's.
- `num_subsets`: nested subsets (= trained models); always wins over `scaling.num_subsets`
  (a config overlay cannot change it; both default to 5).
- `eval_set`: evaluation set URI (JSONL); when set it wins over `evaluation.eval_set_uri`,
  empty: the config's.
- `study_id`: names the study's folder; empty: `{snapshot}-{recipe}-{run_id}`, made path-safe.
- `config`: path of an extra TOML config overlay (e.g. `[scaling] metric = "heldout_loss"`).

Every job gets `--snapshot` twice: the shared run flags render `params.snapshot or ds`
(an Asset-triggered run has no `ds`; it renders empty here) and the resolved snapshot
follows it; the last one wins.

**Backfill**: there is no time schedule to backfill; to (re)run a study for an older
snapshot, trigger by hand: `airflow dags trigger synthllm_scaling --conf
'{"snapshot": "2026-11-01", "num_subsets": 6}'`. A rerun of the same run reuses its
study id and overwrites its outputs atomically; a new run gets a new study.
"""

# Sizes for the kubernetes profile, per kind of cluster (synthllm_tasks/sizing.py; the local
# profile runs everything on the worker).
GPU, TABLE = active_sizes().gpu, active_sizes().table
# Fine-tuning on the largest subset dominates a study; evaluation generates one answer each.
TRAIN_TIMEOUT = timedelta(hours=24)
EVAL_TIMEOUT = timedelta(hours=6)
# The two @task functions only compute names and lists (one API call at most).
SMALL_TASK_TIMEOUT = timedelta(minutes=10)

_RESOLVED = "ti.xcom_pull(task_ids='resolve_study')"
STUDY_ARGV = (
    "--snapshot",
    "{{ " + _RESOLVED + "['snapshot'] }}",
    "--study-id",
    "{{ " + _RESOLVED + "['study_id'] }}",
)
PREPARE_SUBSETS = JobSpec(
    "prepare_subsets",
    "jobs.scaling.study",
    (
        "prepare",
        *STUDY_ARGV,
        "--recipe",
        "{{ params.recipe }}",
        "--eval-set",
        "{{ params.eval_set }}",
        "--set",
        "scaling.num_subsets={{ params.num_subsets }}",
    ),
    kind="python",
    resources=TABLE,
)
# The subset (and the recipe / evaluation set, when given) comes with each mapped instance.
TRAIN = JobSpec(
    "train", "jobs.train.train", STUDY_ARGV, kind="python_gpu", resources=GPU, timeout=TRAIN_TIMEOUT
)
EVALUATE = JobSpec(
    "evaluate",
    "jobs.evaluation.evaluate",
    STUDY_ARGV,
    kind="python_gpu",
    resources=GPU,
    timeout=EVAL_TIMEOUT,
)
FIT_REPORT = JobSpec(
    "fit_report", "jobs.scaling.study", ("report", *STUDY_ARGV), kind="python", resources=TABLE
)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_ID = 64  # jobs.layout.check_snapshot's rule: 1-64 of letters, digits, '.', '_', '-'


def path_safe_id(raw: str) -> str:
    """``raw`` as a path segment: unsafe runs of characters become '-', and past 64
    characters the tail becomes a hash of the whole (run ids carry ':' and '+')."""
    safe = _UNSAFE.sub("-", raw).strip("._-")
    if len(safe) <= MAX_ID:
        return safe
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{safe[: MAX_ID - 9].rstrip('._-')}-{digest}"


def snapshot_from_events(events: Mapping[Any, Any] | None) -> str | None:
    """The snapshot named by the newest triggering Asset event: its ``extra['snapshot']``,
    else the producing run's (``conf['snapshot']`` or its logical date, the way
    synthllm_generate names it); None without events."""
    newest = max(
        (e for batch in (events or {}).values() for e in batch),
        key=lambda e: e.timestamp,
        default=None,
    )
    if newest is None:
        return None
    if (newest.extra or {}).get("snapshot"):
        return str(newest.extra["snapshot"])
    run = newest.source_dag_run
    if run is None:
        return None
    if (run.conf or {}).get("snapshot"):
        return str(run.conf["snapshot"])
    return run.logical_date.strftime("%Y-%m-%d") if run.logical_date else None


@task(execution_timeout=SMALL_TASK_TIMEOUT)
def resolve_study(
    snapshot: str, recipe: str, study_id: str, run_id: str, triggering_asset_events=None
) -> dict[str, str]:
    """The run's snapshot and study id (see the DAG doc); fails when no snapshot is known."""
    snapshot = snapshot or snapshot_from_events(triggering_asset_events)
    if not snapshot:
        raise ValueError(
            "snapshot is required: set the `snapshot` param (no triggering Asset event names one)"
        )
    study = study_id or path_safe_id(f"{snapshot}-{recipe or 'default'}-{run_id}")
    return {"snapshot": snapshot, "study_id": study}


@task(execution_timeout=SMALL_TASK_TIMEOUT)
def subset_tails(num_subsets: str, recipe: str, eval_set: str) -> list[dict[str, list[str]]]:
    """Per subset ``K``, the argv tails of its train (``--subset K [--recipe R]``) and
    evaluate (``--subset K [--set evaluation.eval_set_uri="U"]``) instances."""
    count = int(num_subsets)
    if count < 2:
        raise ValueError(f"num_subsets must be >= 2, got {count}")
    train = ["--recipe", recipe] if recipe else []
    evaluate = ["--set", f"evaluation.eval_set_uri={json.dumps(eval_set)}"] if eval_set else []
    return [
        {"train": ["--subset", str(k), *train], "evaluate": ["--subset", str(k), *evaluate]}
        for k in range(count)
    ]


def train_argv(tails: Mapping[str, list[str]]) -> list[str]:
    """The train instance's tail (``.map`` over subset_tails: only one XCom can be mapped)."""
    return tails["train"]


def evaluate_argv(tails: Mapping[str, list[str]]) -> list[str]:
    """The evaluate instance's tail."""
    return tails["evaluate"]


with DAG(
    dag_id=Path(__file__).stem,
    description="Published dataset -> nested subsets -> trained models -> scaling-law fits",
    doc_md=DOC_MD,
    # Every new published dataset starts a study; manual runs name their snapshot.
    schedule=[SYNTHLLM_DATASET],
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    # No time schedule to catch up on; stated so a later schedule change cannot flip it.
    catchup=False,
    # One study at a time: each trains several models on the shared GPU pool.
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=72),
    # Asset-triggered runs have no logical date, so `ds` is missing from their context and
    # the shared run flags' `{{ params.snapshot or ds }}` would not render; it renders
    # empty instead, and the resolved `--snapshot` later in argv wins.
    user_defined_macros={"ds": ""},
    default_args=DEFAULT_ARGS,
    params={
        "snapshot": Param(
            None,
            type=["null", "string"],
            description="Dataset snapshot; empty: from the triggering Asset event.",
        ),
        "recipe": Param(
            "", type="string", description="Training recipe; set: wins over train.recipe."
        ),
        "num_subsets": Param(
            5,
            type="integer",
            minimum=2,
            description="Nested subsets; always wins over scaling.num_subsets (same default 5).",
        ),
        "eval_set": Param(
            "",
            type="string",
            description="Evaluation set URI; set: wins over evaluation.eval_set_uri.",
        ),
        "study_id": Param("", type="string", description="Study id; empty: derived."),
        "config": Param("", type="string", description="Extra TOML config overlay path."),
    },
    tags=["synthllm", "scaling", "training", "gpu"],
) as dag:
    study = resolve_study(
        snapshot="{{ params.snapshot or '' }}",
        recipe="{{ params.recipe }}",
        study_id="{{ params.study_id }}",
        run_id="{{ run_id }}",
    )
    prepare_subsets = job_task(PREPARE_SUBSETS)
    tails = subset_tails(
        num_subsets="{{ params.num_subsets }}",
        recipe="{{ params.recipe }}",
        eval_set="{{ params.eval_set }}",
    )
    train = job_task(TRAIN, expand_argv=tails.map(train_argv))
    evaluate = job_task(EVALUATE, expand_argv=tails.map(evaluate_argv))
    fit_report = job_task(FIT_REPORT)

    study >> prepare_subsets >> tails
    train >> evaluate >> fit_report


if __name__ == "__main__":
    dag.test()
