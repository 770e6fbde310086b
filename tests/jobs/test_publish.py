"""Publication: refused without passing validations; atomic files with correct checksums."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from committed import commit_table

from jobs.commit import StageStats, UncommittedInputError
from jobs.config import load_config
from jobs.layout import Layout
from jobs.publish.publish import PublishRefusedError, main
from jobs.questions.cleaning import question_key
from jobs.storage import Storage, join
from jobs.tables import read_table, schema

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "expectations"
SNAP = "2026-11-01"
DOC_SCHEMA = pa.schema([("doc_id", pa.string()), ("meta", pa.map_(pa.string(), pa.string()))])


def good_rows(table: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / f"{table}.jsonl").read_text().splitlines()]


def verdict(success: bool) -> dict:
    failures = [] if success else ["qa: expect_column_values_to_not_be_null(answer)"]
    stats = {"evaluated": 16, "failed": len(failures), "warnings": 0}
    return {"success": success, "statistics": stats, "critical_failures": failures}


@pytest.fixture
def env(tmp_path):
    """A snapshot with committed documents, questions and qa tables (no verdicts yet)."""
    root = f"file://{tmp_path / 'data'}"
    storage = Storage(load_config("local", None, [f'storage.root_uri="{root}"']).storage)
    layout = Layout(root, SNAP)
    docs = [{"doc_id": r["doc_id"], "meta": r["meta"]} for r in good_rows("documents")]
    docs[2]["meta"] = {"licence": "MIT"}
    commit_table(storage, layout.table("documents_raw"), StageStats(4, 3, {"empty_text": 1}))
    commit_table(storage, layout.table("documents"), StageStats(3, 3), docs, DOC_SCHEMA)
    # questions.collect counts documents in rows_in/out; its table holds 3 questions.
    q_stats = StageStats(3, 2, {"unparseable": 1}, {"prompt": 900, "completion": 300})
    questions = good_rows("questions")
    commit_table(storage, layout.table("questions"), q_stats, questions, schema("questions"))
    qa_rows = list(reversed(good_rows("qa")))  # publish sorts by question_id
    qa_stats = StageStats(4, 3, {"no_boxed_answer": 1}, {"prompt": 400, "completion": 93})
    commit_table(storage, layout.table("qa"), qa_stats, qa_rows, schema("qa"))
    return root, storage, layout


def set_verdicts(storage, layout, **success: bool) -> None:
    for table, ok in success.items():
        uri = join(layout.run, "validation", table)
        commit_table(storage, uri, StageStats(), files={"result.json": verdict(ok)})


def validate_all(storage, layout) -> None:
    """Every table's validation committed as passed."""
    tables = ("documents", "doc_concepts", "questions", "questions_clean", "qa")
    set_verdicts(storage, layout, **dict.fromkeys(tables, True))


def publish(root: str) -> int:
    return main(
        ["--snapshot", SNAP, "--run-id", "manual__7", "--set", f'storage.root_uri="{root}"']
    )


def test_refuses_when_validations_are_missing_or_failed(env):
    root, storage, layout = env
    with pytest.raises(PublishRefusedError, match="documents: no committed validation") as exc:
        publish(root)
    assert "questions: no committed" in str(exc.value) and "qa: no committed" in str(exc.value)
    set_verdicts(
        storage,
        layout,
        documents=True,
        doc_concepts=True,
        questions=True,
        questions_clean=True,
        qa=False,
    )
    with pytest.raises(PublishRefusedError, match=r"qa: validation failed .*not_be_null\(answer\)"):
        publish(root)
    assert not storage.exists(layout.dataset)


def test_refuses_when_qa_is_not_committed(env):
    root, storage, layout = env
    validate_all(storage, layout)
    storage.delete(join(layout.table("qa"), "_SUCCESS"))
    with pytest.raises(UncommittedInputError, match="qa"):
        publish(root)


def test_publishes_files_with_checksums_manifest_and_card(env, capsys):
    root, storage, layout = env
    validate_all(storage, layout)
    assert publish(root) == 0
    out = capsys.readouterr().out
    assert f"dataset: {layout.dataset}" in out
    assert f"report: {join(layout.reports, 'index.html')}" in out
    ds = layout.dataset
    assert storage.exists(join(ds, "_SUCCESS"))
    manifest = storage.read_json(join(ds, "manifest.json"))
    for name in ("data/qa.parquet", "data/qa.jsonl"):
        data = storage.read_bytes(join(ds, name))
        assert manifest["files"][name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert manifest["files"][name]["bytes"] == len(data)
    table = pq.read_table(io.BytesIO(storage.read_bytes(join(ds, "data/qa.parquet"))))
    lines = storage.read_text(join(ds, "data/qa.jsonl")).splitlines()
    assert manifest["row_counts"] == {"documents_raw": 3, "documents": 3, "questions": 3, "qa": 3}
    assert table.num_rows == len(lines) == 3
    assert table.schema.equals(schema("qa"))
    ids = table.column("question_id").to_pylist()
    assert ids == sorted(ids) == [json.loads(line)["question_id"] for line in lines]
    # The published questions are in the question index, under this snapshot.
    index = read_table(storage, join(layout.question_index, SNAP))
    qa = good_rows("qa")
    assert sorted(index["question_id"]) == sorted(r["question_id"] for r in qa)
    assert set(index["question_key"]) == {question_key(r["question"]) for r in qa}
    assert set(index["snapshot"]) == {SNAP}
    first = json.loads(lines[0])
    assert list(first) == schema("qa").names and isinstance(first["source_doc_ids"], list)
    assert manifest["tokens"]["qa"] == {"prompt": 400, "completion": 93}
    assert manifest["models"] == {
        "questions": ["smollm2-135m-instruct"],
        "answers": ["smollm2-135m-instruct"],
    }
    assert manifest["prompt_versions"]["answers"] == ["answers-v1"]
    assert manifest["source_licences"] == {"MIT": 1, "PSF-2.0": 2}
    assert manifest["created_from"] == {"run_id": "manual__7"}
    assert manifest["validation"]["qa"]["success"] is True
    card = storage.read_text(join(ds, "README.md"))
    assert manifest["files"]["data/qa.parquet"]["sha256"] in card
    assert "| `final_answer` | string |" in card and "| qa | 3 |" in card
    assert "| `source_doc_ids` | list<string> |" in card
    assert "135M" in card and "| PSF-2.0 | 2 |" in card
    assert manifest["levels"] == {
        "questions": {"1": 3, "2": 0, "3": 0}, "qa": {"1": 3, "2": 0, "3": 0},
    }  # fmt: skip
    assert manifest["graph"] is None
    assert "Concept graph: not built for this snapshot." in card
    assert "| 1 | questions extracted from, or inspired by, one reference document;" in card
    level_rows = [
        line for line in card.splitlines() if line.startswith(("| 1 |", "| 2 |", "| 3 |"))
    ]
    assert [row.rsplit("|", 3)[1:3] for row in level_rows] == [
        [" 3 ", " 3 "], [" 0 ", " 0 "], [" 0 ", " 0 "],
    ]  # fmt: skip


def test_republish_replaces_the_dataset_with_identical_bytes(env):
    root, storage, layout = env
    validate_all(storage, layout)
    publish(root)
    first = storage.read_json(join(layout.dataset, "manifest.json"))["files"]
    storage.write_text(join(layout.dataset, "stale.txt"), "from an old run")
    publish(root)
    assert storage.read_json(join(layout.dataset, "manifest.json"))["files"] == first
    assert not storage.exists(join(layout.dataset, "stale.txt"))


def test_card_counts_rows_per_level_and_describes_the_graph(env):
    root, storage, layout = env
    questions = good_rows("questions")
    questions[1]["level"], questions[2]["level"] = 2, 3
    commit_table(
        storage, layout.table("questions"), StageStats(3, 3), questions, schema("questions")
    )
    qa_rows = good_rows("qa")
    qa_rows[0]["level"], qa_rows[1]["level"] = 3, 3
    commit_table(storage, layout.table("qa"), StageStats(3, 3), qa_rows, schema("qa"))
    graph = {
        "vertices": {"topic": 40, "concept": 360},
        "edges": {"topic_topic": 50, "topic_concept": 900, "concept_concept": 2050},
        "components": {"count": 3, "largest_size": 388, "largest_share": 0.97},
    }
    commit_table(storage, layout.table("graph"), StageStats(400, 400, extra={"graph": graph}))
    validate_all(storage, layout)
    assert publish(root) == 0
    manifest = storage.read_json(join(layout.dataset, "manifest.json"))
    assert manifest["levels"] == {
        "questions": {"1": 1, "2": 1, "3": 1}, "qa": {"1": 1, "2": 0, "3": 2},
    }  # fmt: skip
    assert manifest["graph"] == {
        "vertices": 400, "edges": 3000, "components": 3, "largest_component_share": 0.97,
    }  # fmt: skip
    card = storage.read_text(join(layout.dataset, "README.md"))
    level_rows = [
        line for line in card.splitlines() if line.startswith(("| 1 |", "| 2 |", "| 3 |"))
    ]
    assert [row.rsplit("|", 3)[1:3] for row in level_rows] == [
        [" 1 ", " 1 "], [" 1 ", " 0 "], [" 1 ", " 2 "],
    ]  # fmt: skip
    assert "2-3 key concepts extracted from one document" in level_rows[1]
    assert "weighted random walks on the global concept co-occurrence graph" in level_rows[2]
    assert "top-2 reference documents by Jaccard similarity" in level_rows[2]
    assert "`source_doc_ids` lead back to the corpus documents" in card
    assert (
        "Concept graph: 400 vertices (topics and key concepts), 3000 co-occurrence edges; the "
        "largest connected component holds 97.0% of the vertices." in card
    )


def test_card_states_cleaning_and_the_per_level_funnel(env):
    root, storage, layout = env
    clean_stats = StageStats(
        5, 3, {"contaminated": 1, "duplicate_exact": 1},
        extra={
            "by_level": {"1": {"in": 5, "out": 3,
                               "removed": {"contaminated": 1, "duplicate_exact": 1}}},
            "eval_sets": [{"name": "builtin-2026-300", "uri": "builtin", "items": 300},
                          {"name": "math500", "uri": "s3://b/math500.jsonl", "items": 500}],
            "index_snapshots": ["2026-10-31"],
            "params": {"ngram_n": 13, "short_ngram_n": 8, "near_dup_jaccard": 0.8,
                       "min_chars": 10, "max_chars": 2000},
        },
    )  # fmt: skip
    commit_table(storage, layout.table("questions_clean"), clean_stats)
    validate_all(storage, layout)
    assert publish(root) == 0
    manifest = storage.read_json(join(layout.dataset, "manifest.json"))
    assert manifest["cleaning"]["eval_sets"][1]["name"] == "math500"
    assert manifest["funnel"]["1"]["clean_questions"]["removed"] == {
        "contaminated": 1, "duplicate_exact": 1,
    }  # fmt: skip
    card = storage.read_text(join(layout.dataset, "README.md"))
    assert "`builtin-2026-300` (300 items), `math500` (500 items)" in card
    assert "word 13-gram" in card and "(2026-10-31)" in card
    assert "| 1 | clean_questions | 5 | 3 | contaminated: 1, duplicate_exact: 1 |" in card


def test_published_files_stream_in_bounded_batches(tmp_path, monkeypatch):
    """A 20,000-row table published 1,000 rows at a time: no step ever holds more rows,
    and the files match the in-memory encoders' rows, order and JSON lines exactly."""
    import random

    import pandas as pd

    from jobs.publish import dataset
    from jobs.tables import iter_table_batches

    base = good_rows("qa")
    rows = [dict(base[i % len(base)], question_id=f"q{i:06d}") for i in range(20_000)]
    random.Random(7).shuffle(rows)
    storage = Storage(load_config("local", None, []).storage)
    uri = f"file://{tmp_path / 'qa'}"
    for part in range(4):  # four part files, as a Spark writer would leave
        body = pa.Table.from_pylist(rows[part * 5000 : (part + 1) * 5000], schema=schema("qa"))
        path = tmp_path / "qa" / f"part-{part:05d}.parquet"
        path.parent.mkdir(exist_ok=True)
        pq.write_table(body, path, row_group_size=5000)
    seen: list[int] = []  # rows of every batch read and every sorted batch written

    def counted(batches):
        for batch in batches:
            seen.append(batch.num_rows)
            yield batch

    real_sorted = dataset.sorted_batches
    monkeypatch.setattr(dataset, "sorted_batches", lambda *a: counted(real_sorted(*a)))
    batches = counted(iter_table_batches(storage, uri, 1000))
    files = dataset.stream_qa_files(batches, schema("qa"), tmp_path / "out", batch_rows=1000)
    assert seen and max(seen) == 1000 and sum(seen) == 2 * 20_000
    whole = dataset.qa_arrow(pd.DataFrame(rows), schema("qa"))
    parquet = pq.ParquetFile(files["data/qa.parquet"]["path"])
    assert parquet.metadata.num_row_groups == 20
    assert parquet.read().equals(whole)
    jsonl = Path(files["data/qa.jsonl"]["path"]).read_bytes()
    assert jsonl == dataset.encode_jsonl(whole.to_pylist())
    for info in files.values():
        data = Path(info["path"]).read_bytes()
        assert info["sha256"] == hashlib.sha256(data).hexdigest()
        assert (info["bytes"], info["rows"]) == (len(data), 20_000)
    assert not (tmp_path / "out" / "spool.arrow").exists()


def test_streamed_files_equal_the_in_memory_encoding_when_one_batch(tmp_path):
    from jobs.publish import dataset

    rows = list(reversed(good_rows("qa")))
    table = pa.Table.from_pylist(rows, schema=schema("qa"))
    files = dataset.stream_qa_files(table.to_batches(), schema("qa"), tmp_path, batch_rows=100)
    ordered = table.sort_by("question_id")
    assert Path(files["data/qa.jsonl"]["path"]).read_bytes() == dataset.encode_jsonl(
        ordered.to_pylist()
    )
    assert Path(files["data/qa.parquet"]["path"]).read_bytes() == dataset.encode_parquet(ordered)


def test_published_manifests_name_no_location_but_the_datasets_own(env):
    import re

    root, storage, layout = env
    validate_all(storage, layout)
    secrets = ("minio.internal", "llm.internal", "other-bucket")
    argv = ["--snapshot", SNAP, "--run-id", "r", "--set", f'storage.root_uri="{root}"',
            "--set", 'storage.s3_endpoint_url="http://minio.internal:9000"',
            "--set", 'generation.openai_base_url="http://llm.internal:8000/v1"',
            "--set", 'evaluation.eval_set_uri="s3://other-bucket/evals/set.jsonl"']  # fmt: skip
    assert main(argv) == 0
    own = layout.dataset
    for name in ("manifest.json", "_manifest.json"):
        text = storage.read_text(join(own, name))
        for secret in (*secrets, root.removeprefix("file://") + "/runs"):
            assert secret not in text, (name, secret)
        uris = re.findall(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s\"']*", text)
        assert all(u.startswith(own) for u in uris), (name, uris)
    manifest = storage.read_json(join(own, "manifest.json"))
    assert manifest["report_uri"] == "../../../reports/2026-11-01/index.html"
    assert manifest["corpus_uri"] == "../../../corpus/2026-11-01"
    commit = storage.read_json(join(own, "_manifest.json"))
    assert commit["inputs"] == ["../../../runs/2026-11-01/qa"]
    assert commit["config"]["storage"]["s3_endpoint_url"] == "<redacted>"
    assert commit["config"]["generation"]["openai_base_url"] == "<redacted>"
    assert commit["config"]["storage"]["root_uri"] == "<redacted>"
    card = storage.read_text(join(own, "README.md"))
    assert "../../../reports/2026-11-01/index.html" in card


def test_public_copy_rewrites_uris_and_location_fields():
    from jobs.publish.redact import REDACTED, public_copy

    own, root = "s3://b/p/datasets/synthllm/S", "s3://b/p"
    got = public_copy(
        {"a": f"{own}/data/qa.parquet", "b": "s3://b/p/runs/S/qa", "c": "see https://x.io/v1 now",
         "bucket": "b", "s3_endpoint_url": None, "host": "10.0.0.1:9000", "n": 3,
         "l": ["s3://other/x", own]},
        own, root,
    )  # fmt: skip
    assert got == {
        "a": f"{own}/data/qa.parquet", "b": "../../../runs/S/qa", "c": f"see {REDACTED} now",
        "bucket": REDACTED, "s3_endpoint_url": None, "host": REDACTED, "n": 3,
        "l": [REDACTED, own],
    }  # fmt: skip
