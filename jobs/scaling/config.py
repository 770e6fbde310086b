"""Typed config section of the scaling study (``[scaling]``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScalingConfig(_Section):
    """Nested subsets, the fitted metric and the report's predictions."""

    # Each law needs at least as many points as parameters (rectified: 4) after the largest
    # is held out; 6 or more subsets leave the rectified fit residuals to bootstrap.
    num_subsets: int = Field(5, ge=2)
    growth: float = Field(2.0, gt=1)  # each subset has this many times the tokens of the last
    min_tokens: int | None = Field(None, ge=1)  # None: the dataset's tokens / growth**(n-1)
    metric: Literal["error_rate", "heldout_loss"] = "error_rate"
    # Hold the largest subset out of the fit and report each law's error on it (paper 3.2).
    holdout: bool = True
    bootstrap: int = Field(200, ge=0)  # residual-bootstrap refits per law; 0: no intervals
    ci_level: float = Field(0.95, gt=0, lt=1)
    seed: int = 0  # orders the rows for the subsets and seeds the bootstrap
    # The plateau: where one more doubling gains less than this (in the metric's units).
    plateau_gain: float = Field(0.5, gt=0)
    predict_tokens: tuple[Annotated[float, Field(gt=0)], ...] = (
        1e10,
        5e10,
        2.5e11,
        3e11,
        1e12,
        4e12,
    )
