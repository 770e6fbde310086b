"""Row-level rules of ``clean_questions``: normalised keys, format checks and word n-grams.

Plain Python, so the Spark job (as UDFs), the publish step (the question index) and the tests
share one definition of "the same question" and "an overlapping n-gram".

- :func:`question_key` is what exact duplicates and the cross-snapshot index compare: NFKC,
  case-folded, whitespace collapsed, trailing punctuation dropped. Two questions that differ
  only in case, spacing or a final "?" are the same question.
- :func:`format_problem` names the first length/format rule a question breaks, or ``None``.
- :func:`ngrams` gives the word n-grams decontamination matches on (lower-case alphanumeric
  tokens, so LaTeX markup and punctuation do not hide an overlap).
- :func:`echo_of` names the prompt example (:mod:`jobs.llm.prompt_examples`) a question
  copies or closely paraphrases: Jaccard similarity of the character 3-grams of both texts'
  words, every number written ``#`` (so "radius $5$" and "radius 7" are the same words), at
  least ``clean.echo_similarity``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

_SPACE = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s?.!:;,]+$")
_TOKEN = re.compile(r"[^\W_]+")
# Mathematical content: a digit, an operator or relation, LaTeX, or a mathematical word.
_MATH_SYMBOL = re.compile(r"[0-9=+\-*/^<>≤≥≠±×÷√∑∫π∞%]|\\[a-zA-Z]+")
# Whole words (with a plural s), and stems marked by a trailing "-" that take any ending.
_MATH_TERMS = (
    "number", "sum", "product", "difference", "quotient", "equation", "function", "derivative",
    "integral", "limit", "matrix", "matrices", "vector", "probability", "angle", "triangle",
    "circle", "area", "volume", "perimeter", "radius", "ratio", "fraction", "percent", "prime",
    "factor", "root", "solve", "calculate", "compute", "evaluate", "prove", "simplify", "graph",
    "set", "sequence", "series", "mean", "median", "mode", "variance", "average", "theorem",
    "proof", "geometry", "algebra", "exponent", "square", "cube", "digit", "odd", "even",
    "multiple", "remainder", "modulo", "slope", "line", "plane", "coordinate", "expected",
    "random", "distribution", "integer", "inequalit-", "divisib-", "polynomial-", "logarithm-",
    "convergen-", "permutation-", "combination-", "statistic-", "probabilit-", "factori-",
    "differentia-", "integra-", "minimi-", "maximi-", "optimi-",
)  # fmt: skip
_MATH_WORDS = re.compile(
    r"\b(?:"
    + "|".join(t[:-1] + r"\w*" for t in _MATH_TERMS if t.endswith("-"))
    + "|"
    + "|".join(t + r"(?:s|es)?\b" for t in _MATH_TERMS if not t.endswith("-"))
    + ")",
    re.I,
)
# Prompt or template text that leaked into a question: block tags, field labels, the
# template's placeholders and instructions addressed to the model.
_LEFTOVER = re.compile(
    r"<\s*/?\s*Q\s*\d*\s*>|\[\s*/?\s*Q\s*\d+\s*\]|</?\s*(?:key_concept|topic|question)s?\s*>"
    r"|\b(?:Orig_tag|Selected Concepts|Key Concepts)\s*:"
    r"|<\s*(?:original_question|newly_created|elementary|middle_school|high_school|college|"
    r"grad_school|competition)\s*>"
    r"|\b(?:NOT[ _]SUITABLE|as an AI|the (?:given |above )?(?:article|reference (?:text|article)"
    r"|document)s? (?:above|provided)|your (?:question|answer) here)\b",
    re.I,
)

EMPTY = "empty"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
NO_MATH = "no_math_content"
LEFTOVER = "leftover_markup"
PROMPT_ECHO = "prompt_echo"
ECHO_GRAM_CHARS = 3
_DIGITS = re.compile(r"\d+")


def normalise(text: str | None) -> str:
    """NFKC, case-folded, whitespace collapsed and trimmed."""
    if not text:
        return ""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def key_text(text: str | None) -> str:
    """The normalised question without trailing punctuation: what duplicates compare."""
    return _TRAILING.sub("", normalise(text))


def question_key(text: str | None) -> str:
    """SHA-256 (hex) of :func:`key_text`; "" when empty (Spark's ``sha2`` gives the same)."""
    norm = key_text(text)
    return hashlib.sha256(norm.encode("utf-8")).hexdigest() if norm else ""


def format_problem(text: str | None, min_chars: int, max_chars: int) -> str | None:
    """The first length/format rule ``text`` breaks (a quarantine reason), or ``None``."""
    stripped = (text or "").strip()
    if not stripped:
        return EMPTY
    if len(stripped) < min_chars:
        return TOO_SHORT
    if len(stripped) > max_chars:
        return TOO_LONG
    if _LEFTOVER.search(stripped):
        return LEFTOVER
    if not (_MATH_SYMBOL.search(stripped) or _MATH_WORDS.search(stripped)):
        return NO_MATH
    return None


def tokens(text: str | None) -> list[str]:
    """Lower-case alphanumeric word tokens of the normalised text."""
    return _TOKEN.findall(normalise(text))


def echo_grams(text: str | None) -> frozenset[str]:
    """Character 3-grams of the text's words, numbers written ``#`` (see :func:`echo_of`)."""
    words = " ".join(_DIGITS.sub("#", w) for w in tokens(text))
    n = ECHO_GRAM_CHARS
    return frozenset(words[i : i + n] for i in range(len(words) - n + 1)) or frozenset({words})


def echo_of(
    text: str | None, examples: Sequence[tuple[str, frozenset[str]]], threshold: float
) -> tuple[str, float] | None:
    """``(example name, similarity)`` of the example most like ``text``, if >= ``threshold``.

    ``examples``: ``(name, echo_grams(example text))`` pairs; ties go to the first.
    """
    grams = echo_grams(text)
    best: tuple[str, float] | None = None
    for name, other in examples:
        union = len(grams | other)
        similarity = len(grams & other) / union if union else 0.0
        if similarity >= threshold and (best is None or similarity > best[1]):
            best = (name, round(similarity, 4))
    return best


def ngrams(words: Sequence[str], n: int) -> set[str]:
    """Distinct word ``n``-grams joined by single spaces; the whole text when shorter than n."""
    if not words:
        return set()
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def tagged_ngrams(text: str | None, long_n: int, short_n: int) -> tuple[list[str], bool]:
    """``(grams, is_short)``: ``"L:"``-tagged ``long_n``-grams (texts of at least ``long_n``
    words) and ``"S:"``-tagged ``short_n``-grams, and whether the text is short.

    A question and an evaluation item match on a shared ``L`` gram, or on a shared ``S`` gram
    when either of them is short (fewer than ``long_n`` words): 13-grams between long texts,
    the shorter n as soon as one side cannot hold a 13-gram. A text shorter than ``short_n``
    words is one ``S`` gram, its whole text, so a verbatim copy of it still matches.
    """
    words = tokens(text)
    is_short = len(words) < long_n
    grams = [f"S:{g}" for g in ngrams(words, short_n)]
    if not is_short:
        grams += [f"L:{g}" for g in ngrams(words, long_n)]
    return sorted(grams), is_short


def reference_ngrams(items: Iterable[dict[str, Any]], long_n: int, short_n: int):
    """``(gram, is_short, benchmark, item_id)`` rows of evaluation items (see tagged_ngrams)."""
    for item in items:
        grams, is_short = tagged_ngrams(item["question"], long_n, short_n)
        for gram in grams:
            yield gram, is_short, item["benchmark"], item["id"]
