"""Named recipes resolve, overrides apply, shapes match the public checkpoints."""

from __future__ import annotations

import math

import pytest

from jobs.train.optim import lr_factor
from jobs.train.recipes import (
    RECIPES,
    SMOLLM2_135M_SHAPE,
    SMOLLM2_360M_SHAPE,
    get_recipe,
    recipe_dict,
    resolve_recipe,
)

EXPECTED = {"tiny_cpu", "smollm2_135m", "gpu_135m", "gpu_360m", "gpu_1b", "paper"}


def test_every_named_recipe_exists_and_resolves(make_config):
    assert set(RECIPES) == EXPECTED
    for name in EXPECTED - {"paper"}:
        recipe = resolve_recipe(make_config(f"train.recipe={name}").train)
        assert recipe.name == name
        assert recipe.model_source or recipe.shape
        assert recipe.micro_batch_size <= recipe.batch_size
        assert recipe_dict(recipe)["name"] == name


def test_paper_recipe_is_the_papers_and_needs_weights(make_config):
    paper = get_recipe("paper")
    assert (paper.learning_rate, paper.batch_size, paper.num_epochs) == (1e-5, 512, 3)
    assert paper.schedule == "linear"
    with pytest.raises(ValueError, match="model_path"):
        resolve_recipe(make_config("train.recipe=paper").train)
    resolved = resolve_recipe(
        make_config("train.recipe=paper", 'train.model_path="/models/llama-3.2-1b"').train
    )
    assert resolved.model_source == "/models/llama-3.2-1b"


def test_overrides_replace_recipe_values(make_config):
    cfg = make_config(
        "train.recipe=tiny_cpu",
        "train.num_epochs=5",
        "train.learning_rate=0.01",
        "train.batch_size=2",
        "train.max_seq_len=64",
    )
    recipe = resolve_recipe(cfg.train)
    assert (recipe.num_epochs, recipe.learning_rate, recipe.batch_size) == (5, 0.01, 2)
    assert recipe.max_seq_len == 64
    assert recipe.micro_batch_size == 2  # clipped to the smaller batch
    assert get_recipe("tiny_cpu").num_epochs == 1  # the named recipe is untouched


def test_unknown_recipe_names_the_known_ones():
    with pytest.raises(KeyError, match="tiny_cpu"):
        get_recipe("nope")


def test_shapes_match_public_parameter_counts():
    # 135M: the bundled checkpoint's count; 360M: the published 361.82M.
    assert SMOLLM2_135M_SHAPE.num_params(49152) == 134_515_008
    assert SMOLLM2_360M_SHAPE.num_params(49152) == 361_821_120


def test_schedules_warm_up_then_decay():
    total, warmup = 100, 10
    assert lr_factor(0, total, warmup, "linear") == pytest.approx(0.1)
    assert lr_factor(9, total, warmup, "linear") == pytest.approx(1.0)
    assert lr_factor(55, total, warmup, "linear") == pytest.approx(0.5)
    assert lr_factor(55, total, warmup, "cosine") == pytest.approx(0.5)
    assert lr_factor(32, total, warmup, "cosine") == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 22 / 90))
    )
    assert lr_factor(99, total, 0, "linear") == pytest.approx(0.01)
    assert lr_factor(50, total, warmup, "constant") == 1.0
