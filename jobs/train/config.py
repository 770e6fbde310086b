"""Typed config sections of the trainer and the evaluation job (``[train]``, ``[evaluation]``).

A training run is a named recipe (``jobs.train.recipes``) plus the few knobs below; the
``None`` overrides replace the recipe's value when set, so a study can change one thing
(``--set train.num_epochs=1``) without defining a new recipe.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainConfig(_Section):
    """Which recipe trains, where, and how often it checkpoints."""

    recipe: str = "tiny_cpu"  # a name from jobs.train.recipes
    seed: int = 0
    checkpoint_every: int = Field(50, ge=1)  # optimizer steps between checkpoints
    # Checkpoints kept while training; older ones are deleted after each new one is written.
    keep_checkpoints: int = Field(2, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = Field(None, ge=1)
    # Pretrained weights to start from: a packaged model name, a .gguf file or a local Hugging
    # Face model directory. Required by recipes without their own source (``paper``).
    model_path: str | None = None
    # Local folder for converted packaged models: parsing the bundled GGUF costs ~15-30 s,
    # loading the converted files well under 1 s. Relative paths are under the repo root.
    cache_dir: str = "var/cache/models"
    log_every: int = Field(10, ge=1)  # optimizer steps between progress log lines
    # Recipe overrides (None: the recipe's value).
    num_epochs: int | None = Field(None, ge=1)
    max_steps: int | None = Field(None, ge=1)  # cap on optimizer steps; the schedule fits it
    learning_rate: float | None = Field(None, gt=0)
    batch_size: int | None = Field(None, ge=1)  # sequences per optimizer step, all ranks
    micro_batch_size: int | None = Field(None, ge=1)  # sequences per forward pass
    max_seq_len: int | None = Field(None, ge=8)
    warmup_ratio: float | None = Field(None, ge=0, lt=1)


class EvaluationConfig(_Section):
    """The evaluation set and how answers are generated and checked."""

    eval_set_uri: str | None = None  # JSONL (question, answer); None: the built-in set
    num_builtin: int = Field(300, ge=10)
    builtin_seed: int = 2026
    max_examples: int | None = Field(None, ge=1)
    max_new_tokens: int = Field(256, ge=1)
    verify_timeout_s: float = Field(5.0, gt=0)
    batch_size: int = Field(8, ge=1)  # prompts per generate call and per loss forward
