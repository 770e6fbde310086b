"""Node identity of topic and concept names: ``node_key``, ``display_name``, ``split_names``."""

from __future__ import annotations

import random

import pytest

from jobs.concepts.normalise import display_name, merge_rate, node_key, singular, split_names


@pytest.mark.parametrize(
    "raw, key",
    [
        ("Derivatives", "derivative"),
        ("  DERIVATIVE. ", "derivative"),
        ("**1.1. Chain rule**", "chain rule"),
        ("**1.1 Chain rule**", "1.1 chain rule"),
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
        ("Σ-algebras", "Σ algebra"),
        ("σ-algebras", "σ algebra"),
        ("Θεώρημα", "θεώρημα"),
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
    variants = ["Chain rule", "chain rules", "**Chain Rule**", "1.2. Chain rule:", "- chain-rule"]
    variants += ["The chain rule", "A chain rule", "Chain rule (CR)"]
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
        ("odds", "odds"),
        ("bases", "bases"),
        ("jones", "jones"),
    ],
)
def test_singular(word, expected):
    assert singular(word) == expected


@pytest.mark.parametrize(
    "first, second",
    [
        ("Discriminant > 0", "Discriminant < 0"),
        ("Discriminant > 0", "Discriminant = 0"),
        ("Discriminant < 0", "Discriminant = 0"),
        ("f'(x)", "f(x)"),
        ("f′(x)", "f(x)"),
        ("f''(x)", "f'(x)"),
        ("P(A|B)", "P(A∩B)"),
        ("P(A∩B)", "P(A∪B)"),
        ("x ≤ 0", "x ≥ 0"),
        ("x ≤ 0", "x < 0"),
        ("x ≠ 0", "x = 0"),
        ("Φ(x)", "φ(x)"),
        ("Δx", "δx"),
        ("$\\Sigma$", "$\\sigma$"),
        ("x²", "x2"),
        ("x₁", "x1"),
        ("a + b", "a × b"),
        ("x = -1", "x = 1"),
        ("n!", "n"),
        ("1.5 times rule", "15 times rule"),
        ("1.5 times rule", "times rule"),
        ("Greatest common divisor (LCM)", "Greatest common divisor"),
        ("A priori estimate", "Priori estimate"),
        ("Odds", "Odd"),
        ("Bases", "Base"),
        ("Bases", "Basis"),
        ("Jones polynomial", "Jone polynomial"),
    ],
)
def test_different_concepts_get_different_keys(first, second):
    assert node_key(first) != node_key(second)


@pytest.mark.parametrize(
    "first, second",
    [
        ("The chain rule", "chain rule"),
        ("An inverse function", "Inverse functions"),
        ("A matrix", "Matrices"),
        ("Greatest common divisor (GCD)", "Greatest common divisor"),
        ("Greatest Common Divisor (gcd):", "greatest common divisor"),
        ("Partial differential equations (PDEs)", "Partial differential equation"),
        ("Principle of inclusion-exclusion (PIE)", "Principle of inclusion exclusion"),
        ("$x^2$", "x²"),
        ("$x^{2}$", "x²"),
        ("x^2", "x²"),
        ("$x^{-1}$", "x⁻¹"),
        ("$x_1$", "x₁"),
        ("$x_{n}$", "xₙ"),
        ("a_n", "aₙ"),
        ("$\\alpha$", "α"),
        ("$\\Phi(x)$", "Φ(x)"),
        ("$a \\le b$", "a ≤ b"),
        ("$a \\leq b$", "a ≤ b"),
        ("a <= b", "a ≤ b"),
        ("$a \\geq b$", "a ≥ b"),
        ("$a \\neq b$", "a ≠ b"),
        ("$a \\cdot b$", "a · b"),
        ("a⋅b", "a · b"),
        ("$A \\cap B$", "A∩B"),
        ("$P(A \\mid B)$", "P(A|B)"),
        ("P(A∣B)", "P(A | B)"),
        ("$f^{\\prime}(x)$", "f'(x)"),
        ("f’(x)", "f′(x)"),
        ("$\\mathbb{R}^n$", "ℝⁿ"),
        ("$\\sin x$", "sin x"),
        ("$x - 1$", "x − 1"),
        ("x ≤ 0", "x≤0"),
        ("non-negative", "nonnegative"),
        ("Non-negative integers", "nonnegative integer"),
        ("Semi-circle", "semicircle"),
        ("Co-ordinates", "coordinates"),
        ("Bayes's theorem", "Bayes' theorem"),
        ("Jones's theorem", "Jones theorem"),
    ],
)
def test_the_same_concept_gets_one_key(first, second):
    assert node_key(first) == node_key(second)


@pytest.mark.parametrize(
    "raw, key",
    [
        # Keys are graph ids ("c:<key>"): these pin the exact strings.
        ("Discriminant > 0", "discriminant > 0"),
        ("f'(x)", "f′ x"),
        ("P(A|B)", "p a | b"),
        ("Φ(x)", "Φ x"),
        ("$x^2 + 1$", "x² + 1"),
        ("$x \\le 0$", "x ≤ 0"),
        ("The chain rule", "chain rule"),
        ("Greatest common divisor (GCD)", "greatest common divisor"),
        ("non-negative", "nonnegative"),
        ("1.5 times rule", "1.5 times rule"),
    ],
)
def test_maths_keys_are_stable_strings(raw, key):
    assert node_key(raw) == key


@pytest.mark.parametrize(
    "raw, key",
    [
        ("Odds", "odds"),
        ("Odds ratios", "odds ratio"),
        ("Bases", "bases"),  # base or basis: left apart from both
        ("Change of bases", "change of bases"),
        ("Jones", "jones"),
        ("Jones polynomials", "jones polynomial"),
        ("Jones's theorem", "jones theorem"),
        ("Metropolis–Hastings algorithm", "metropolis hastings algorithm"),
        ("Gibbs sampling", "gibbs sampling"),
        ("Derivatives", "derivative"),
        ("Partial derivatives", "partial derivative"),
        ("matrices", "matrix"),
        ("Arrival times", "arrival time"),
        ("Times tables", "times table"),
    ],
)
def test_plurals(raw, key):
    assert node_key(raw) == key


@pytest.mark.parametrize(
    "raw, key",
    [
        ("1.5 times rule", "1.5 times rule"),
        ("- 1.5 times rule", "1.5 times rule"),
        ("1. 1.5 times rule", "1.5 times rule"),
        ("**1.5 times rule**", "1.5 times rule"),
        ("0.05 significance level", "0.05 significance level"),
        ("1.1. Chain rule", "chain rule"),
        ("(1.1) Chain rule", "chain rule"),
        ("1) Chain rule", "chain rule"),
        ("3. Chain rule", "chain rule"),
    ],
)
def test_outline_numbers(raw, key):
    """A marked number ("1.1.", "(1.1)", "1)") goes; a bare "1.5" is the parser's to judge."""
    assert node_key(raw) == key


@pytest.mark.parametrize(
    "raw, key",
    [
        ("A priori estimate", "a priori estimate"),
        ("A ∪ B", "a ∪ b"),
        ("A-level maths", "a level math"),
        ("Theory of groups (TG)", "theory of group"),
        ("Chain rule (calculus)", "chain rule calculus"),
        ("Sets (S)", "set s"),
        ("cross_section", "cross section"),
        ("COVID-19 statistics", "covid 19 statistics"),
        ("L'Hôpital's rule", "lhôpital rule"),
    ],
)
def test_articles_acronyms_and_apostrophes_stop_where_they_should(raw, key):
    assert node_key(raw) == key


def test_merge_rate():
    names = ["Chain rule", "chain rules", "The chain rule", "Derivative", "Integral", "Integral"]
    assert merge_rate(names + ["", "***"]) == pytest.approx(3 / 5)
    assert merge_rate(["x ≤ 0", "x ≥ 0", "Φ(x)", "φ(x)"]) == 0.0
    assert merge_rate(["$x^2$", "x²"]) == 1.0
    assert merge_rate([]) == 0.0


def _random_names(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    pieces = [
        "1.", "1.1", "(a)", "- ", "**", "__", "`", "'s", "s", "es", "ies", "ices", "'",
        " ", "-", "/", "Matrices", "series", "Bayes", "axes", "criteria", "ﬁ", "Σ", "微",
        "\u200b", "\u00a0", ":", '"', "“", "#", "•", "2", "x", "Class", "ss", "us", "is",
        "$", "\\le", "\\alpha", "^", "_", "{", "}", "²", "₁", "The ", "(GCD)", "non-", "1.5 ",
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
        ("**1.1. Chain rule**", "Chain rule"),
        ("**1.1 Chain rule**", "1.1 Chain rule"),
        ("x² and x₁", "x² and x₁"),
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


def test_split_names_hands_out_a_fresh_list_each_call():
    """The split is cached; a caller extending its list must not change the next caller's."""
    first = split_names("Sets; Maps")
    first.append("changed")
    assert split_names("Sets; Maps") == ["Sets", "Maps"]
