"""Classifier inputs and helpers: seed file, pseudo-labels, folds, the bundled MiniLM model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jobs.config import REPO_ROOT, load_config
from jobs.filter.classifier import (
    otsu_threshold,
    parse_positives,
    pseudo_labels,
    read_positives,
    seed_similarity,
    stratified_folds,
)
from jobs.filter.embed import bundled_model_path, resolve_model_path
from jobs.storage import Storage

SEEDS = REPO_ROOT / "jobs" / "filter" / "seeds" / "positives.jsonl"


def test_parse_positives_names_file_and_line():
    good = json.dumps({"text": "The derivative of x^2 is 2x."})
    assert parse_positives(good + "\n\n", "s.jsonl") == ["The derivative of x^2 is 2x."]
    with pytest.raises(ValueError, match=r"s\.jsonl:2: not valid JSON"):
        parse_positives(good + "\n{oops", "s.jsonl")
    with pytest.raises(ValueError, match=r"s\.jsonl:1: expected an object"):
        parse_positives(json.dumps({"txt": "x"}), "s.jsonl")
    with pytest.raises(ValueError, match="no positive examples"):
        parse_positives("\n", "s.jsonl")


def test_seed_positives_file():
    rows = [json.loads(line) for line in SEEDS.read_text().splitlines()]
    assert 60 <= len(rows) <= 80
    assert SEEDS.stat().st_size < 150_000
    assert {r["style"] for r in rows} == {"textbook", "exam", "blog", "lecture_notes"}
    assert {r["topic"] for r in rows} == {
        "arithmetic",
        "algebra",
        "geometry",
        "calculus",
        "probability",
        "number_theory",
        "linear_algebra",
    }
    assert len({r["text"] for r in rows}) == len(rows)
    assert all(200 <= len(r["text"]) <= 800 for r in rows)


def test_default_positives_uri_points_at_the_seed_file():
    from jobs.storage import resolve_uri

    cfg = load_config("local")
    assert resolve_uri(cfg.filter.positives_uri) == "file://" + str(SEEDS)


def test_bundled_model_is_found_and_configured_path_checked(tmp_path: Path):
    path = Path(bundled_model_path())
    assert (path / "modules.json").is_file()
    assert resolve_model_path(None) == str(path)
    with pytest.raises(FileNotFoundError, match="embed_model_path"):
        resolve_model_path(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not installed"):
        bundled_model_path("no_such_model_package_xyz")


def test_read_positives_from_storage(tmp_path: Path):
    storage = Storage(load_config("local").storage)
    assert len(read_positives(storage, "file://" + str(SEEDS))) == 70
    with pytest.raises(FileNotFoundError, match="positives_uri"):
        read_positives(storage, f"file://{tmp_path}/missing.jsonl")


def test_otsu_threshold_splits_two_clusters():
    values = np.array([0.10, 0.12, 0.11, 0.09, 0.40, 0.42, 0.41])
    assert otsu_threshold(values) == pytest.approx((0.12 + 0.40) / 2)
    # a lopsided sample (one in-domain document among many) is still split at the gap
    lopsided = np.r_[np.full(20, 0.1) + np.arange(20) * 0.001, [0.5]]
    assert otsu_threshold(lopsided) == pytest.approx((0.119 + 0.5) / 2)


def test_otsu_threshold_of_a_constant_sample_labels_nothing_positive():
    assert otsu_threshold(np.array([0.3, 0.3, 0.3])) == pytest.approx(1.3)
    assert otsu_threshold(np.array([0.3])) == pytest.approx(1.3)


def test_seed_similarity_and_pseudo_labels():
    seeds = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    docs = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    sim = seed_similarity(docs, seeds, k=2)
    # doc 0: cosines 1.0, 0.8, 0.0 -> top-2 mean 0.9; doc 1: 0.0, 0.6, 1.0 -> 0.8
    assert sim == pytest.approx([0.9, 0.8, (0.96 + 0.8) / 2])
    labels, cut = pseudo_labels(
        np.array([[1, 0], [0.99, 0.14], [-1, 0], [-0.99, -0.14]]), seeds[:1], 1
    )
    assert labels.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert -0.99 < cut < 0.99


def test_stratified_folds_deal_each_class_evenly_and_reproducibly():
    keys = list(range(10))
    labels = [1.0] * 4 + [0.0] * 6
    folds = stratified_folds(keys, labels, 2, seed=3)
    assert folds == stratified_folds(list(reversed(keys)), labels[::-1], 2, seed=3)
    assert sorted(folds[k] for k in keys[:4]) == [0, 0, 1, 1]
    assert sorted(folds[k] for k in keys[4:]) == [0, 0, 0, 1, 1, 1]


def test_bundled_model_embeds_offline():
    from jobs.filter.embed import embed_texts, load_model

    model = load_model(bundled_model_path(), num_threads=1, max_tokens=64)
    assert model.max_seq_length == 64
    texts = [
        "The derivative of sin x is cos x, and the integral of cos x is sin x plus a constant.",
        "By the chain rule the derivative of f(g(x)) is f'(g(x)) times g'(x).",
        "Open the file in binary mode and write the bytes of the response to disk.",
    ]
    vecs = embed_texts(model, texts, max_chars=1000, batch_size=8)
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.linalg.norm(vecs, axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2
