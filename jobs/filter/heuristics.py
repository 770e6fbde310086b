"""Document quality heuristics: pure functions over one text, no Spark.

The filter job applies them to every document through one Spark UDF (``score_text``), so
the values tested here on strings are exactly the values written to the ``documents`` table.
"""

from __future__ import annotations

from typing import Any

# Order matters: a document failing several checks is quarantined under the first reason.
REASONS = ("too_short", "too_long", "low_alpha_ratio", "high_symbol_ratio", "repetitive")


def num_chars(text: str) -> int:
    """Length in Unicode code points (what Spark's ``length`` also counts)."""
    return len(text)


def _non_space(text: str) -> list[str]:
    return [c for c in text if not c.isspace()]


def alpha_ratio(text: str) -> float:
    """Letters / non-whitespace characters; 0.0 for a text with no visible characters."""
    visible = _non_space(text)
    if not visible:
        return 0.0
    return sum(c.isalpha() for c in visible) / len(visible)


def symbol_ratio(text: str) -> float:
    """Characters that are neither alphanumeric nor whitespace / non-whitespace characters.

    Mathematics (LaTeX, doctests, formulas) is symbol-heavy, so the threshold applied to this
    ratio must stay permissive; it is meant to catch markup dumps and line noise.
    """
    visible = _non_space(text)
    if not visible:
        return 0.0
    return sum(not c.isalnum() for c in visible) / len(visible)


def dup_line_fraction(text: str) -> float:
    """Fraction of non-empty lines (whitespace-stripped) that repeat an earlier line."""
    seen: set[str] = set()
    lines = 0
    dups = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        lines += 1
        if line in seen:
            dups += 1
        else:
            seen.add(line)
    return dups / lines if lines else 0.0


def reject_reason(scores: dict[str, Any], cfg: Any) -> str | None:
    """The first heuristic a document fails (see ``REASONS``), or None when it passes all.

    ``cfg`` is a ``FilterConfig`` (any object with its threshold attributes).
    """
    if scores["num_chars"] < cfg.min_chars:
        return "too_short"
    if scores["num_chars"] > cfg.max_chars:
        return "too_long"
    if scores["alpha_ratio"] < cfg.min_alpha_ratio:
        return "low_alpha_ratio"
    if scores["symbol_ratio"] > cfg.max_symbol_ratio:
        return "high_symbol_ratio"
    if scores["dup_line_fraction"] > cfg.max_dup_line_fraction:
        return "repetitive"
    return None


def score_text(text: str | None, cfg: Any) -> dict[str, Any]:
    """All heuristic scores of one text plus the reject reason (None = passes)."""
    text = text or ""
    scores: dict[str, Any] = {
        "num_chars": num_chars(text),
        "alpha_ratio": alpha_ratio(text),
        "symbol_ratio": symbol_ratio(text),
        "dup_line_fraction": dup_line_fraction(text),
    }
    scores["reason"] = reject_reason(scores, cfg)
    return scores
