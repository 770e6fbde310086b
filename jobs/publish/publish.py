"""Publish a validated snapshot to ``{root}/datasets/synthllm/{snapshot}/``.

``python -m jobs.publish.publish --snapshot S``

Refuses unless the qa table is committed and the documents, questions and qa validations
all succeeded. Writes ``data/qa.parquet``, ``data/qa.jsonl``, ``manifest.json`` (counts,
rows per level, concept graph size, tokens, models, prompt versions, code version,
checksums) and the dataset card
``README.md`` in one atomic StageOutput commit, then replaces the snapshot's entry in the
published-question index (:mod:`jobs.questions.index`) and prints where the dataset and the
report are. Both manifests name no endpoint, bucket or base URL but the dataset's own location
(:mod:`jobs.publish.redact`): other locations under the storage root become relative paths.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.cli import JobContext, base_parser, code_version, run_job
from jobs.commit import STATS, SUCCESS, StageOutput, StageStats, require_committed
from jobs.errors import PermanentError
from jobs.layout import Layout
from jobs.publish.card import render_card
from jobs.publish.dataset import (
    BATCH_ROWS,
    CARD_FILE,
    MANIFEST_FILE,
    PARQUET_FILE,
    build_manifest,
    distinct,
    licence_counts,
    stream_qa_files,
    type_name,
)
from jobs.publish.redact import public_copy
from jobs.questions.index import write_index
from jobs.report.summary import STAGES, graph_summary, level_counts, question_funnel
from jobs.storage import Storage, join
from jobs.tables import iter_table_batches, read_table, schema
from jobs.validate.results import RESULT_FILE
from jobs.validate.suites import TABLES

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_QA_SUMMARY_COLUMNS = (
    "question_id", "question", "level", "model", "prompt_version", "source_doc_ids",
)  # fmt: skip
_CONTENT_TYPES = {"parquet": "application/vnd.apache.parquet", "jsonl": "application/jsonl"}


class PublishRefusedError(PermanentError, RuntimeError):
    """The snapshot is not validated (or not complete) and must not be published."""


def check_validated(storage: Storage, layout: Layout) -> dict[str, dict[str, Any]]:
    """Every table's committed verdict, or :class:`PublishRefusedError` naming what is wrong."""
    problems, verdicts = [], {}
    for table in TABLES:
        uri = join(layout.run, "validation", table)
        if not storage.exists(join(uri, SUCCESS)):
            problems.append(f"{table}: no committed validation result at {uri}")
            continue
        verdict = storage.read_json(join(uri, RESULT_FILE))
        verdicts[table] = verdict
        if verdict.get("success") is not True:
            failed = "; ".join(verdict.get("critical_failures", [])) or "success is not true"
            problems.append(f"{table}: validation failed ({failed})")
    if problems:
        raise PublishRefusedError(
            f"refusing to publish snapshot {layout.snapshot}:\n  - " + "\n  - ".join(problems)
        )
    return verdicts


def _stage_stats(storage: Storage, layout: Layout) -> dict[str, dict | None]:
    out: dict[str, dict | None] = {}
    for stage in STAGES:
        uri = layout.table(stage)
        out[stage] = (
            storage.read_json(join(uri, STATS)) if storage.exists(join(uri, SUCCESS)) else None
        )
    return out


def _provenance(
    qa: pd.DataFrame, questions: pd.DataFrame, docs: pd.DataFrame, layout: Layout, verdicts: dict
) -> dict[str, Any]:
    """Models, prompt versions, source licences, verdicts and links for the manifest."""
    doc_ids = [d for ids in qa["source_doc_ids"] for d in (ids if ids is not None else [])]
    meta_by_doc = dict(zip(docs["doc_id"], docs["meta"], strict=True))
    return {
        "models": {"questions": distinct(questions["model"]), "answers": distinct(qa["model"])},
        "prompt_versions": {
            "questions": distinct(questions["prompt_version"]),
            "answers": distinct(qa["prompt_version"]),
        },
        "source_licences": licence_counts(meta_by_doc, doc_ids),
        "corpus_uri": layout.corpus,
        "validation": {
            t: {"success": v["success"], **v.get("statistics", {})} for t, v in verdicts.items()
        },
        "report_uri": join(layout.reports, "index.html"),
        "data_docs_uri": join(layout.reports, "data_docs", "index.html"),
    }


def dataset_figures(
    qa: pd.DataFrame, questions: pd.DataFrame, graph_stats: dict | None
) -> dict[str, Any]:
    """Rows per level (questions generated, qa published) and the concept graph's size."""
    levels = {"questions": level_counts(questions["level"]), "qa": level_counts(qa["level"])}
    graph = graph_summary(graph_stats)
    if "vertices_total" not in graph:
        return {"levels": levels, "graph": None}
    share = graph.get("components", {}).get("largest_share")
    return {
        "levels": levels,
        "graph": {
            "vertices": graph["vertices_total"],
            "edges": graph.get("edges_total"),
            "components": graph.get("components", {}).get("count"),
            "largest_component_share": share,
        },
    }


def cleaning_settings(stats: dict | None) -> dict[str, Any] | None:
    """What the card says about clean_questions: evaluation sets, n-grams, dedup threshold."""
    if not stats:
        return None
    params = stats.get("params") or {}
    keys = ("ngram_n", "short_ngram_n", "near_dup_jaccard", "min_chars", "max_chars")
    return {
        "eval_sets": stats.get("eval_sets") or [],
        "index_snapshots": stats.get("index_snapshots") or [],
        **{k: params.get(k) for k in keys},
    }


def run(ctx: JobContext) -> StageStats:
    """Check the verdicts, then write and commit the dataset."""
    storage = Storage(ctx.cfg.storage)
    layout = ctx.layout
    qa_uri = layout.table("qa")
    require_committed(storage, qa_uri)
    verdicts = check_validated(storage, layout)
    # The published files stream from the table; the figures, provenance and question index
    # need only these columns (not the answers, the bulk of the table).
    qa = read_table(storage, qa_uri, columns=list(_QA_SUMMARY_COLUMNS))
    questions = read_table(
        storage, layout.table("questions"), columns=["level", "model", "prompt_version"]
    )
    docs = read_table(storage, layout.table("documents"), columns=["doc_id", "meta"])
    qa_schema = schema("qa")
    stage_stats = _stage_stats(storage, layout)
    workdir = tempfile.TemporaryDirectory(prefix="publish-")
    batches = iter_table_batches(storage, qa_uri, BATCH_ROWS)
    files = stream_qa_files(batches, qa_schema, Path(workdir.name), BATCH_ROWS)
    num_rows = files[PARQUET_FILE]["rows"]
    manifest = build_manifest(
        snapshot=ctx.snapshot,
        run_id=ctx.run_id,
        code_version=code_version(),
        files=files,
        num_rows=num_rows,
        stage_stats=stage_stats,
        table_rows={"documents": len(docs), "questions": len(questions)},
        provenance=_provenance(qa, questions, docs, layout, verdicts),
    )
    manifest.update(dataset_figures(qa, questions, stage_stats["graph"]))
    manifest["answer_checking"] = (stage_stats.get("qa") or {}).get("answer_checking")
    manifest["cleaning"] = cleaning_settings(stage_stats.get("questions_clean"))
    manifest["funnel"] = question_funnel(stage_stats).get("by_level")
    manifest = public_copy(manifest, layout.dataset, layout.root_uri)
    types = {f.name: type_name(f.type) for f in qa_schema}
    out = StageOutput(storage, layout.dataset, ctx.attempt)
    tmp = out.begin()
    with workdir:
        for name, info in files.items():
            ctype = _CONTENT_TYPES[name.rsplit(".", 1)[-1]]
            storage.upload_file(info["path"], join(tmp, name), ctype)
    storage.write_json(join(tmp, MANIFEST_FILE), manifest)
    storage.write_text(join(tmp, CARD_FILE), render_card(manifest, types), "text/markdown")
    stats = StageStats(rows_in=num_rows, rows_out=num_rows)
    commit_manifest = ctx.manifest("publish", [qa_uri], files=sorted(files))
    out.commit(public_copy(commit_manifest, layout.dataset, layout.root_uri), stats)
    # After the dataset: a failure here fails the task, and its retry republishes both.
    index_entry = join(layout.question_index, ctx.snapshot)
    index_manifest = ctx.manifest("publish.question_index", [qa_uri])
    write_index(
        storage, layout.question_index, ctx.snapshot, qa, ctx.attempt,
        public_copy(index_manifest, index_entry, layout.root_uri),
    )  # fmt: skip
    print(f"dataset: {layout.dataset}")
    print(f"report: {join(layout.reports, 'index.html')}")
    return stats


def main(argv: list[str] | None = None) -> int:
    return run_job("publish", argv, run, base_parser("Publish a validated snapshot."))


if __name__ == "__main__":
    raise SystemExit(main())
