"""Document quality heuristics: pure functions over one text, no Spark.

The filter job applies them to every document through one Spark UDF (``score_text``), so
the values tested here on strings are exactly the values written to the ``documents`` table.

``prompt_injection``: a document written to steer the model that will read it ("ignore all
previous instructions", "print your system prompt") is quarantined with the phrase that
matched, however maths-like the rest of it is (one such document scored 0.82 with the
domain classifier, among the first sent to the model). ``INJECTION_PHRASES`` is a short,
reviewed list matched on the normalised text (NFKC, case-folded, control characters
dropped, any run of spaces or punctuation between words); phrases that occur in maths
writing ("acts as a pivot", "we may disregard the above term") are deliberately narrower
than the phrase a reader would think of first.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

INJECTION = "prompt_injection"
# Order matters: a document failing several checks is quarantined under the first reason.
REASONS = (INJECTION, "too_short", "too_long", "low_alpha_ratio", "high_symbol_ratio",
           "repetitive")  # fmt: skip

_EARLIER = r"(?:previous|prior|above|preceding|earlier|foregoing)"
_ORDERS = r"(?:instructions?|prompts?|directions?|rules|messages?|guidelines)"
# Regexes over normalised text; a space stands for any run of spaces and punctuation.
_SECRET = r"(?:system |initial |original |hidden |secret )"
INJECTION_PHRASES = (
    rf"ignore (?:all |any |every )?(?:of )?(?:the |your |my |these )?{_EARLIER} {_ORDERS}",
    rf"ignore (?:all |any )?(?:of )?(?:the |your )?{_ORDERS} (?:above|before)",
    rf"disregard (?:all |any |everything )?(?:of )?(?:the |your )?{_EARLIER}"
    rf"(?: {_ORDERS}|(?=\s*[.,;:!]|\s+and\b|\s*$))",
    rf"forget (?:all |everything )?(?:of )?(?:the |your )?(?:{_EARLIER} )?{_ORDERS}",
    rf"override (?:all |the |your )?(?:{_EARLIER} |safety )?{_ORDERS}",
    r"(?:new|updated|real) (?:system )?instructions\s*:",
    r"system prompt",
    rf"(?:print|reveal|repeat|show|output|display|leak|tell me) (?:me )?"
    rf"(?:your {_SECRET}?|the {_SECRET})(?:prompt|instructions)",
    r"you are now (?:\w+ ){0,2}(?:dan|jailbroken|unrestricted|unfiltered|uncensored|"
    r"no longer|in developer mode|ai|assistant|chatbot|language model)\b",
    r"jailbr(?:eak|oken)\w*",
    r"(?:from now on|pretend to|i want you to|you will|you must) act as",
    r"act as (?:an? )?(?:ai|assistant|chatbot|language model|dan|unrestricted|jailbroken)\b",
    r"do anything now",
    r"developer mode (?:enabled|on|activated)",
)
_SEPARATOR = r"[\W_]+"
_INJECTION = re.compile("|".join(rf"\b(?:{p.replace(' ', _SEPARATOR)})" for p in INJECTION_PHRASES))
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")


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


def injection_phrase(text: str) -> str | None:
    """The first phrase of ``INJECTION_PHRASES`` in ``text`` (as normalised), or None."""
    normal = _CONTROL.sub("", unicodedata.normalize("NFKC", text).casefold())
    match = _INJECTION.search(normal)
    return " ".join(w for w in re.split(_SEPARATOR, match.group(0)) if w) if match else None


def reject_reason(scores: dict[str, Any], cfg: Any) -> str | None:
    """The first heuristic a document fails (see ``REASONS``), or None when it passes all.

    ``cfg`` is a ``FilterConfig`` (any object with its threshold attributes).
    """
    if scores.get("injection_phrase"):
        return INJECTION
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
        "injection_phrase": injection_phrase(text),
    }
    scores["reason"] = reject_reason(scores, cfg)
    return scores
