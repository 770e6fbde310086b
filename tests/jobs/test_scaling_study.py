"""Nested subsets (pure functions) and the study job: prepare on a published dataset, report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jobs.commit import StageOutput
from jobs.publish.dataset import MANIFEST_FILE, PARQUET_FILE, encode_parquet, qa_arrow
from jobs.scaling.layout import StudyLayout, check_study_id
from jobs.scaling.study import main
from jobs.scaling.subsets import (
    SubsetError,
    hash_order,
    nested_subsets,
    row_tokens,
    subset_ids,
)
from jobs.storage import Storage, join
from jobs.tables import read_table, schema

SNAPSHOT = "2026-11-01"
STUDY = "s1"


def test_hash_order_is_seeded_and_independent_of_row_order():
    ids = [f"q{i}" for i in range(50)]
    order = hash_order(ids, seed=0)
    assert sorted(order) == list(range(50))
    assert list(order) != list(range(50))
    shuffled = ids[::-1]
    assert [shuffled[i] for i in hash_order(shuffled, 0)] == [ids[i] for i in order]
    assert list(hash_order(ids, seed=1)) != list(order)


def test_row_tokens_calibrate_the_question_estimate_on_the_answers():
    tokens = row_tokens(np.array([30, 9]), np.array([300, 30]), np.array([100, 10]))
    assert tokens.chars_per_token == 3.0  # 330 answer characters / 110 answer tokens
    assert list(tokens.question) == [10, 3]
    assert list(tokens.total) == [110, 13]
    missing = row_tokens(np.array([8]), np.array([40]), np.array([np.nan]))
    assert missing.chars_per_token == 4.0 and list(missing.total) == [12]


def test_subsets_are_nested_prefixes_that_double():
    rng = np.random.default_rng(0)
    tokens = rng.integers(50, 150, size=1000)
    subsets = nested_subsets(tokens, 5, 2.0)
    total = int(tokens.sum())
    assert [s.k for s in subsets] == [0, 1, 2, 3, 4]
    assert subsets[-1].rows == 1000 and subsets[-1].tokens == total
    for s in subsets:
        assert s.target_tokens == pytest.approx(total / 2 ** (4 - s.k))
        # the shortest prefix with at least the target: within one row of it
        assert 0 <= s.tokens - s.target_tokens < 150
    for small, big in zip(subsets, subsets[1:], strict=False):
        assert small.rows < big.rows
        assert big.tokens / small.tokens == pytest.approx(2.0, rel=0.02)


def test_min_tokens_anchors_the_smallest_subset():
    subsets = nested_subsets(np.full(100, 10), 3, 3.0, min_tokens=50)
    assert [(s.rows, s.tokens) for s in subsets] == [(5, 50), (15, 150), (45, 450)]
    with pytest.raises(SubsetError, match="needs 4500 tokens"):
        nested_subsets(np.full(100, 10), 3, 3.0, min_tokens=500)


def test_too_small_a_dataset_is_refused():
    with pytest.raises(SubsetError, match="too few for 5 subsets"):
        nested_subsets(np.full(6, 10), 5, 2.0)
    with pytest.raises(SubsetError, match="no rows"):
        nested_subsets(np.array([], dtype=int), 3, 2.0)


def test_subset_ids():
    assert subset_ids(3) == ["0", "1", "2"]
    with pytest.raises(SubsetError):
        subset_ids(0)


@pytest.mark.parametrize("bad", ["", "a/b", "manual__2026-11-01T00:00:00+00:00", "x" * 65])
def test_study_ids_must_be_path_safe(bad):
    with pytest.raises(ValueError, match="study id"):
        check_study_id(bad)


# -- the job -----------------------------------------------------------------------------------


def qa_rows(n: int) -> list[dict]:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        answer = "step " * int(rng.integers(20, 60)) + f"\\boxed{{{i}}}"
        rows.append(
            {
                "question_id": f"q{i:03d}",
                "combo_id": f"c{i % 7}",
                "level": 1 + i % 3,
                "question": f"What is {i} + {i}? " * int(rng.integers(1, 4)),
                "answer": answer,
                "final_answer": str(i),
                "num_tokens": len(answer) // 4,
                "agreement": 1.0,
                "num_samples": 1,
                "model": "m",
                "prompt_version": "v1",
                "source_doc_ids": ["d1"],
                "snapshot": SNAPSHOT,
            }
        )
    return rows


@pytest.fixture
def published(make_config):
    """A committed published dataset of 64 rows (as jobs.publish.publish lays it out)."""
    import pandas as pd

    cfg = make_config()
    storage = Storage(cfg.storage)
    uri = join(cfg.storage.root_uri, "datasets", "synthllm", SNAPSHOT)
    out = StageOutput(storage, uri, "1")
    tmp = out.begin()
    storage.write_bytes(
        join(tmp, PARQUET_FILE), encode_parquet(qa_arrow(pd.DataFrame(qa_rows(64)), schema("qa")))
    )
    storage.write_json(join(tmp, MANIFEST_FILE), {"created_from": {"run_id": "gen-1"}})
    out.commit({"job": "test"}, None)
    return cfg


def run_study(cfg, *args: str) -> int:
    root = cfg.storage.root_uri
    base = ["--snapshot", SNAPSHOT, "--study-id", STUDY, "--set", f'storage.root_uri="{root}"']
    # The code defaults (error rate in %), not the local profile's held-out-loss demo setting.
    metric = ["--set", "scaling.metric=error_rate", "--set", "scaling.plateau_gain=0.5"]
    return main([*metric, *args, *base])


def test_prepare_commits_nested_subsets_and_the_study(published, capsys):
    cfg = published
    assert run_study(cfg, "prepare", "--set", "scaling.num_subsets=4", "--recipe", "tiny") == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == ["0", "1", "2", "3"]
    storage = Storage(cfg.storage)
    study = StudyLayout(cfg.storage.root_uri, STUDY)
    doc = storage.read_json(study.study_file)
    assert doc["snapshot"] == SNAPSHOT and doc["recipe"] == "tiny"
    assert doc["created_from"]["dataset_run_id"] == "gen-1"
    assert len(doc["created_from"]["manifest_sha256"]) == 64
    ids = []
    for entry in doc["subsets"]:
        uri = study.subset(entry["subset"])
        assert storage.exists(join(uri, "_SUCCESS"))
        stats = storage.read_json(join(uri, "_stats.json"))
        assert stats["rows_out"] == entry["rows"] and stats["tokens"]["total"] == entry["tokens"]
        table = read_table(storage, uri)
        assert len(table) == entry["rows"]
        assert {"question", "answer", "tokens"} <= set(table.columns)
        assert int(table["tokens"].sum()) == entry["tokens"]
        ids.append(list(table["question_id"]))
    for small, big in zip(ids, ids[1:], strict=False):
        assert big[: len(small)] == small  # nested: the same rows, in the same order
    assert len(ids[-1]) == 64 and doc["dataset"]["rows"] == 64
    tokens = [e["tokens"] for e in doc["subsets"]]
    assert tokens[-1] == doc["dataset"]["tokens"]
    assert all(1.6 < b / a < 2.4 for a, b in zip(tokens, tokens[1:], strict=False))


def test_prepare_refuses_too_many_subsets(published, capsys):
    assert run_study(published, "prepare", "--set", "scaling.num_subsets=12") == 2
    assert "too few for 12 subsets" in capsys.readouterr().err


def test_bad_study_id_is_a_usage_error(published):
    with pytest.raises(SystemExit) as info:
        main(["prepare", "--snapshot", SNAPSHOT, "--study-id", "run:1+0"])
    assert info.value.code == 2


def _commit_metrics(storage, uri, metrics):
    out = StageOutput(storage, uri, "1")
    storage.write_json(join(out.begin(), "metrics.json"), metrics)
    out.commit({"job": "test"}, None)


def test_report_fits_the_evaluated_runs(published, capsys):
    cfg = published
    assert run_study(cfg, "prepare", "--set", "scaling.num_subsets=5") == 0
    storage = Storage(cfg.storage)
    study = StudyLayout(cfg.storage.root_uri, STUDY)
    doc = storage.read_json(study.study_file)
    for entry in doc["subsets"]:
        k, d = entry["subset"], entry["tokens"]
        error = 300 / (10 + d**0.5) + 20  # a rectified law in the subsets' own tokens
        _commit_metrics(storage, study.train(k), {"tokens_seen": 3 * d})
        _commit_metrics(
            storage,
            study.eval(k),
            {"error_rate": error, "heldout_loss": 1.0, "eval_set": "builtin", "num_examples": 300},
        )
    capsys.readouterr()
    assert run_study(cfg, "report", "--set", "scaling.bootstrap=0") == 0
    out = capsys.readouterr().out
    assert f"report: {study.report}/report.html" in out
    report = storage.read_json(join(study.report, "report.json"))
    assert report["metric"] == "error_rate" and report["num_points"] == 5
    assert report["study"]["snapshot"] == SNAPSHOT
    assert [p["tokens"] for p in report["points"]] == [e["tokens"] for e in doc["subsets"]]
    assert report["points"][-1]["role"] == "heldout"
    assert report["points"][0]["train_tokens_seen"] == 3 * doc["subsets"][0]["tokens"]
    assert report["laws"]["power"]["heldout"] is not None
    assert storage.exists(join(study.report, "_SUCCESS"))
    manifest = storage.read_json(join(study.report, "_manifest.json"))
    assert study.eval(4) in manifest["inputs"]


def test_report_refuses_a_flat_metric(published, capsys):
    cfg = published
    assert run_study(cfg, "prepare", "--set", "scaling.num_subsets=4") == 0
    storage = Storage(cfg.storage)
    study = StudyLayout(cfg.storage.root_uri, STUDY)
    for k in range(4):
        _commit_metrics(storage, study.eval(k), {"error_rate": 100.0, "heldout_loss": 5.0})
    assert run_study(cfg, "report") == 2
    assert "does not go down" in capsys.readouterr().err
    assert not storage.exists(study.report)


def test_report_refuses_mixed_evaluation_sets(published, capsys):
    cfg = published
    assert run_study(cfg, "prepare", "--set", "scaling.num_subsets=4") == 0
    storage = Storage(cfg.storage)
    study = StudyLayout(cfg.storage.root_uri, STUDY)
    for k in range(4):
        metrics = {"error_rate": 90.0 - 10 * k, "eval_set": "math" if k else "gsm8k"}
        _commit_metrics(storage, study.eval(k), metrics)
    assert run_study(cfg, "report") == 2
    assert "evaluated on different sets: ['gsm8k', 'math']" in capsys.readouterr().err
