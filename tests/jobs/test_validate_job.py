"""The validate job end to end: committed table in, verdict + Data Docs out (local and S3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from committed import commit_table

from jobs.commit import UncommittedInputError
from jobs.config import load_config
from jobs.layout import Layout
from jobs.storage import Storage, join
from jobs.tables import schema
from jobs.validate.results import ValidationFailedError
from jobs.validate.validate import main

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "expectations"
SNAP = "2026-11-01"
_S = pa.string()
DOCUMENTS = pa.schema(
    [("doc_id", _S), ("text", _S), ("url", _S), ("source", _S), ("snapshot", _S),
     ("meta", pa.map_(_S, _S)), ("num_chars", pa.int32()), ("alpha_ratio", pa.float64()),
     ("symbol_ratio", pa.float64()), ("dup_line_fraction", pa.float64()),
     ("domain_score", pa.float64()), ("filter_reason", _S),
     ("ratings", pa.struct([(c, pa.float64()) for c in ("relevance", "clarity", "language")])),
     ("rating", pa.float64()), ("rating_round", pa.int32()), ("fine_score", pa.float64())]
)  # fmt: skip
SCHEMAS = {"documents": DOCUMENTS, "questions": schema("questions"), "qa": schema("qa")}


def good_rows(table: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / f"{table}.jsonl").read_text().splitlines()]


def commit_stage_table(storage: Storage, layout: Layout, table: str, rows: list[dict]) -> None:
    """A committed stage output like the real stages write (one part file + stats)."""
    from jobs.commit import StageStats

    stats = StageStats(len(rows) + 1, len(rows), {"parse_error": 1}, {"completion": 100})
    commit_table(storage, layout.table(table), stats, rows, SCHEMAS[table])


def argv(table: str, root_uri: str, *extra: str) -> list[str]:
    return ["--snapshot", SNAP, "--table", table, "--set", f'storage.root_uri="{root_uri}"', *extra]


def _local(tmp_path):
    root = f"file://{tmp_path / 'data'}"
    cfg = load_config("local", None, [f'storage.root_uri="{root}"'])
    return root, Storage(cfg.storage), Layout(root, SNAP)


def test_good_table_passes_and_publishes_data_docs(tmp_path):
    root, storage, layout = _local(tmp_path)
    commit_stage_table(storage, layout, "documents", good_rows("documents"))
    assert main(argv("documents", root, "--run-id", "scheduled__1")) == 0
    result_uri = join(layout.run, "validation", "documents")
    assert storage.exists(join(result_uri, "_SUCCESS"))
    result = storage.read_json(join(result_uri, "result.json"))
    assert result["success"] is True and result["all_passed"] is True
    assert result["run_id"] == "scheduled__1"
    assert result["metrics"] == {"row_count": 3, "duplicate_rate": 0.0, "parse_failure_rate": 0.25}
    stats = storage.read_json(join(result_uri, "_stats.json"))
    assert stats["rows_in"] == stats["rows_out"] == 3 and stats["success"] is True
    docs = join(layout.reports, "data_docs")
    assert "documents_metrics" in storage.read_text(join(docs, "documents", "index.html"))
    landing = storage.read_text(join(docs, "index.html"))
    assert '<a href="documents/index.html">documents</a>' in landing
    assert "passed" in landing and "not run" in landing  # questions and qa have not run


def test_broken_table_fails_with_named_expectation_and_committed_verdict(tmp_path):
    root, storage, layout = _local(tmp_path)
    rows = good_rows("questions")
    rows[0]["edu_level"] = "university"
    commit_stage_table(storage, layout, "questions", rows)
    with pytest.raises(
        ValidationFailedError, match=r"expect_column_values_to_be_in_set\(edu_level\)"
    ):
        main(argv("questions", root))
    result = storage.read_json(join(layout.run, "validation", "questions", "result.json"))
    assert result["success"] is False
    assert result["statistics"]["critical_failed"] == 1
    assert "university" in result["critical_failures"][0]
    landing = storage.read_text(join(layout.reports, "data_docs", "index.html"))
    assert "FAILED (1 critical)" in landing
    # The CLI (what the DAG runs) exits non-zero with the failed expectation in its log.
    env = {**os.environ, "SYNTHLLM_ROOT_URI": root}
    cmd = [
        sys.executable,
        "-m",
        "jobs.validate.validate",
        "--snapshot",
        SNAP,
        "--table",
        "questions",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2  # permanent (jobs/errors.py): a critical failure is not retried
    assert "expect_column_values_to_be_in_set(edu_level)" in proc.stderr


def test_uncommitted_table_and_unknown_table_are_refused(tmp_path):
    root, _, _ = _local(tmp_path)
    with pytest.raises(UncommittedInputError, match="questions"):
        main(argv("questions", root))
    with pytest.raises(SystemExit) as exc:
        main(argv("combinations", root))
    assert exc.value.code == 2


def test_data_docs_upload_to_s3(s3_bucket):
    import boto3

    endpoint, bucket = s3_bucket
    root = f"s3://{bucket}/synthllm"
    overrides = [f'storage.root_uri="{root}"', f'storage.s3_endpoint_url="{endpoint}"']
    storage = Storage(load_config("local", None, overrides).storage)
    layout = Layout(root, SNAP)
    commit_stage_table(storage, layout, "qa", good_rows("qa"))
    assert main(argv("qa", root, "--set", f'storage.s3_endpoint_url="{endpoint}"')) == 0
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    prefix = f"synthllm/reports/{SNAP}/data_docs/"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    assert prefix + "index.html" in keys
    assert prefix + "qa/index.html" in keys
    assert prefix + "qa/expectations/qa_metrics.html" in keys
    assert any(k.startswith(prefix + "qa/validations/qa/") for k in keys)
    head = s3.head_object(Bucket=bucket, Key=prefix + "qa/index.html")
    assert head["ContentType"] == "text/html"
    verdict = storage.read_json(join(layout.run, "validation", "qa", "result.json"))
    assert verdict["success"] is True
    assert verdict["data_docs_uri"] == f"s3://{bucket}/{prefix}qa/index.html"


def test_large_table_validates_in_bounded_chunks_like_the_whole_table(tmp_path, monkeypatch):
    """5,000 rows in chunks of 1,000: no chunk is larger, a duplicate id split across chunks
    and a null answer are still found, and every result matches the whole-table run."""
    import pandas as pd

    from jobs.validate import validate as job
    from jobs.validate.suites import load_suite, suite_parameters, suite_path

    base = good_rows("qa")
    rows = [
        dict(b, question_id=f"q{i:05d}", question=f"{b['question']} (case {i})")
        for i, b in enumerate(base[i % len(base)] for i in range(5000))
    ]
    rows[4500]["question_id"] = rows[10]["question_id"]  # chunk 5 repeats an id of chunk 1
    rows[3200]["answer"] = None
    root, storage, layout = _local(tmp_path)
    commit_stage_table(storage, layout, "qa", rows)
    sizes: list[int] = []
    real = job.iter_table_batches

    def counted(*args, **kwargs):
        for batch in real(*args, **kwargs):
            sizes.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(job, "iter_table_batches", counted)
    with pytest.raises(ValidationFailedError, match=r"be_unique\(question_id\) — 2 unexpected"):
        main(argv("qa", root, "--set", "validation.chunk_rows=1000"))
    assert sizes == [1000] * 5
    chunked = storage.read_json(join(layout.run, "validation", "qa", "result.json"))
    cfg = load_config("local")
    spec = load_suite(suite_path(cfg, "qa"))
    stats = storage.read_json(join(layout.table("qa"), "_stats.json"))
    whole = job.run_suite(
        spec, pd.DataFrame(rows), stats, suite_parameters(cfg), tmp_path / "w", "whole"
    )

    def key(result):
        return [
            (r["suite"], r["type"], json.dumps(r["kwargs"], sort_keys=True), r["success"],
             r["unexpected_count"], round(r["unexpected_percent"] or 0, 9), r["element_count"])
            for r in result["results"]
        ]  # fmt: skip

    assert key(chunked) == key(whole)
    assert chunked["metrics"] == whole["metrics"]
    assert chunked["critical_failures"] == whole["critical_failures"]
    assert {r["type"] for r in chunked["results"] if not r["success"]} == {
        "expect_column_values_to_be_unique",
        "expect_column_values_to_not_be_null",
    }
    assert chunked["metrics"]["row_count"] == 5000
