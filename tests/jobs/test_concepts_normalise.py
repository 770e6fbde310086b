"""Node identity of topic and concept names: ``node_key``, ``display_name``, ``split_names``."""

from __future__ import annotations

import random

import pytest

from jobs.concepts.normalise import display_name, node_key, singular, split_names


@pytest.mark.parametrize(
    "raw, key",
    [
        ("Derivatives", "derivative"),
        ("  DERIVATIVE. ", "derivative"),
        ("**1.1 Chain rule**", "chain rule"),
        ("1.1. Chain Rule:", "chain rule"),
        ("- chain rule", "chain rule"),
        ("• Chain rule", "chain rule"),
        ("(a) Chain rule", "chain rule"),
        ("iv. Chain rule", "chain rule"),
        ("### 2) Limits", "limit"),
        ('"Limits"', "limit"),
        ("“Area of a circle”.", "area of a circle"),
        ("`Sets`", "set"),
        ("matrices", "matrix"),
        ("Vertices of a polygon", "vertex of a polygon"),
        ("Probabilities", "probability"),
        ("Conditional probabilities", "conditional probability"),
        ("Series", "series"),
        ("Power series", "power series"),
        ("Real analysis", "real analysis"),
        ("Calculus", "calculus"),
        ("Mathematics", "mathematics"),
        ("Physics", "physics"),
        ("Statistics", "statistics"),
        ("Basis", "basis"),
        ("axis", "axis"),
        ("Axes", "axis"),
        ("Radii", "radius"),
        ("Maxima and minima", "maximum and minimum"),
        ("Ratios", "ratio"),
        ("Areas", "area"),
        ("Formulas", "formula"),
        ("Boxes", "box"),
        ("Approaches", "approach"),
        ("Processes", "process"),
        ("Class", "class"),
        ("Hypotheses", "hypothesis"),
        ("Cross-sections", "cross section"),
        ("cross_section", "cross section"),
        ("Input/output", "input output"),
        ("x-axis", "x axis"),
        ("Euler's formula", "euler formula"),
        ("Euler’s formula", "euler formula"),
        ("Euler formula", "euler formula"),
        ("Bayes' theorem", "bayes theorem"),
        ("Bayes's theorem", "bayes theorem"),
        ("Cauchy–Schwarz inequality", "cauchy schwarz inequality"),
        ("3D geometry", "3d geometry"),
        ("2 x 2 matrices", "2 x 2 matrix"),
        ("ﬁxed points", "fixed point"),
        ("Ｍatrices", "matrix"),
        ("\u200bSets\u00a0of\tnumbers", "set of number"),
        ("Straße", "strasse"),
        ("Σ-algebras", "σ algebra"),
        ("微积分", "微积分"),
        ("Théorème de Pythagore", "théorème de pythagore"),
        ("", ""),
        ("***", ""),
        ("1.", ""),
        ("- ...", ""),
    ],
)
def test_node_key(raw, key):
    assert node_key(raw) == key


def test_the_same_concept_written_differently_is_one_key():
    variants = ["Chain rule", "chain rules", "**Chain Rule**", "1.2 Chain rule:", "- chain-rule"]
    assert {node_key(v) for v in variants} == {"chain rule"}


def test_different_concepts_stay_different():
    names = ["Series", "Sequence", "Power series", "Sum", "Summation", "Mean", "Means test"]
    assert len({node_key(n) for n in names}) == len(names)


@pytest.mark.parametrize(
    "word, expected",
    [
        ("derivatives", "derivative"),
        ("matrices", "matrix"),
        ("vertices", "vertex"),
        ("probabilities", "probability"),
        ("zeros", "zero"),
        ("zeroes", "zero"),
        ("criteria", "criterion"),
        ("criterias", "criterion"),
        ("formulae", "formula"),
        ("series", "series"),
        ("analysis", "analysis"),
        ("calculus", "calculus"),
        ("mathematics", "mathematics"),
        ("glass", "glass"),
        ("sets", "set"),
        ("its", "its"),
        ("x2s", "x2s"),
        ("équations", "équations"),
    ],
)
def test_singular(word, expected):
    assert singular(word) == expected


def _random_names(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    pieces = [
        "1.", "1.1", "(a)", "- ", "**", "__", "`", "'s", "s", "es", "ies", "ices", "'",
        " ", "-", "/", "Matrices", "series", "Bayes", "axes", "criteria", "ﬁ", "Σ", "微",
        "\u200b", "\u00a0", ":", '"', "“", "#", "•", "2", "x", "Class", "ss", "us", "is",
    ]  # fmt: skip
    names = ["".join(rng.choice(pieces) for _ in range(rng.randrange(1, 9))) for _ in range(count)]
    names += ["".join(chr(rng.randrange(32, 0x3000)) for _ in range(12)) for _ in range(count)]
    return names


def test_node_key_is_idempotent():
    for name in _random_names(5, 1500):
        key = node_key(name)
        assert node_key(key) == key, name
        assert key == key.strip() and "  " not in key


def test_display_name_is_idempotent_and_keeps_the_key():
    for name in _random_names(9, 1500):
        shown = display_name(name)
        assert display_name(shown) == shown, name
        assert node_key(shown) == node_key(name), name


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("**1.1 Chain rule**", "Chain rule"),
        ("1. Derivatives:", "Derivatives"),
        ("- *Chain rule*", "Chain rule"),
        ("“Area of a circle”.", "Area of a circle"),
        ("  Taylor   series  ", "Taylor series"),
        ("(x, y) coordinates", "(x, y) coordinates"),
        ("f'(x)", "f'(x)"),
        ("Ｍatrices", "Matrices"),
        ("...", ""),
    ],
)
def test_display_name(raw, shown):
    assert display_name(raw) == shown


@pytest.mark.parametrize(
    "text, commas, parts",
    [
        ("a, b; c", True, ["a", "b", "c"]),
        ("a, b; c", False, ["a, b", "c"]),
        ("Sum of $a, b$, x", True, ["Sum of $a, b$", "x"]),
        ("Points (x, y), slope", True, ["Points (x, y)", "slope"]),
        ("1,000 and more, less", True, ["1,000 and more", "less"]),
        ('"Sum, difference", "b"', True, ['"Sum, difference"', '"b"']),
        ("costs $5, b", True, ["costs $5", "b"]),
        (" ; , ", True, []),
    ],
)
def test_split_names(text, commas, parts):
    assert split_names(text, commas) == parts
