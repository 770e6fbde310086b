r"""Evaluation sets: the built-in generated one, or a user's MATH-style JSONL file.

The built-in set is generated from a seed with sympy, so it needs no download and its gold
answers are exact: arithmetic, fractions, linear and quadratic equations, derivatives,
definite integrals, combinatorics and probability, in equal shares (topics take turns). Each
item is ``{"id", "topic", "question", "answer"}`` with the answer in LaTeX (``\frac{3}{4}``,
``-2, 3`` for several solutions). The same ``(n, seed)`` always gives the same items, and
the first ``n`` items of a longer set are the set of size ``n``.

A user's set (``evaluation.eval_set_uri``) is JSONL with ``question`` (or ``problem``) and
``answer`` (or ``solution``; a full solution's last ``\boxed{}`` is its gold answer), and an
optional ``id`` (default: the line number).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from jobs.answers.parse import extract_boxed
from jobs.jsonl import json_objects
from jobs.storage import Storage, basename

TOPICS = (
    "arithmetic",
    "fractions",
    "linear_equations",
    "quadratic_equations",
    "derivatives",
    "definite_integrals",
    "combinatorics",
    "probability",
)
_MAX_REDRAWS = 200
WORDS = ("BANANA", "LEVEL", "APPLE", "BOOK", "LETTER", "BALLOON", "COFFEE", "PEPPER", "ASSESS")


def _nonzero(rng: random.Random, lo: int, hi: int) -> int:
    return rng.choice([v for v in range(lo, hi + 1) if v != 0])


def _arithmetic(rng: random.Random) -> tuple[str, str]:
    a, b, c = rng.randint(2, 25), rng.randint(2, 25), rng.randint(1, 60)
    d = rng.randint(2, 9)
    form = rng.randrange(4)
    if form == 0:
        return f"{a} \\times {b} - {c}", str(a * b - c)
    if form == 1:
        return f"({a} + {b}) \\times {d} - {c}", str((a + b) * d - c)
    if form == 2:
        return f"{a}^{{2}} - {b} \\times {d}", str(a * a - b * d)
    return f"{a * d} \\div {d} + {b} \\times {c}", str(a + b * c)


def _fractions(rng: random.Random) -> tuple[str, str]:
    import sympy

    a, c = rng.randint(1, 9), rng.randint(1, 9)
    b, d = rng.randint(2, 12), rng.randint(2, 12)
    op, fn = rng.choice(
        [("+", lambda p, q: p + q), ("-", lambda p, q: p - q), ("\\times", lambda p, q: p * q)]
        + [("\\div", lambda p, q: p / q)]
    )
    value = fn(sympy.Rational(a, b), sympy.Rational(c, d))
    return f"\\frac{{{a}}}{{{b}}} {op} \\frac{{{c}}}{{{d}}}", sympy.latex(value)


def _linear(rng: random.Random) -> tuple[str, str]:
    import sympy

    x = sympy.Symbol("x")
    a, c = _nonzero(rng, -9, 9), _nonzero(rng, -9, 9)
    while c == a:
        c = _nonzero(rng, -9, 9)
    b, d = rng.randint(-20, 20), rng.randint(-20, 20)
    root = sympy.Rational(d - b, a - c)
    return f"{sympy.latex(a * x + b)} = {sympy.latex(c * x + d)}", sympy.latex(root)


def _quadratic(rng: random.Random) -> tuple[str, str]:
    import sympy

    x = sympy.Symbol("x")
    r1, r2, k = rng.randint(-9, 9), rng.randint(-9, 9), rng.choice([1, 1, 2, 3])
    poly = sympy.expand(k * (x - r1) * (x - r2))
    roots = sorted({r1, r2})
    return f"{sympy.latex(poly)} = 0", ", ".join(str(r) for r in roots)


def _poly(rng: random.Random, degree: int) -> Any:
    import sympy

    x = sympy.Symbol("x")
    terms = [rng.randint(-6, 6) * x**i for i in range(degree)]
    return _nonzero(rng, -5, 5) * x**degree + sum(terms)


def _derivative(rng: random.Random) -> tuple[str, str, str]:
    import sympy

    x = sympy.Symbol("x")
    if rng.random() < 0.5:
        f = _poly(rng, rng.randint(2, 4))
        return sympy.latex(f), "x", sympy.latex(sympy.expand(sympy.diff(f, x)))
    f = _nonzero(rng, -5, 5) * sympy.sin(rng.randint(1, 4) * x) + _poly(rng, rng.randint(1, 3))
    return sympy.latex(f), "0", sympy.latex(sympy.diff(f, x).subs(x, 0))


def _integral(rng: random.Random) -> tuple[str, str]:
    import sympy

    x = sympy.Symbol("x")
    if rng.random() < 0.25:
        k = _nonzero(rng, -5, 5)
        f, lo, hi, value = k * sympy.sin(x), "0", "\\pi", 2 * k  # -k cos x from 0 to pi
    else:
        f = _poly(rng, rng.randint(1, 3))
        a = rng.randint(-3, 2)
        b = rng.randint(a + 1, a + 4)
        # The antiderivative of a polynomial directly: sympy.integrate is ~100x slower.
        antiderivative = sympy.Poly(f, x).integrate()
        lo, hi, value = str(a), str(b), antiderivative.eval(b) - antiderivative.eval(a)
    body = f"\\int_{{{lo}}}^{{{hi}}} \\left({sympy.latex(f)}\\right)\\, dx"
    return body, sympy.latex(value)


def _combinatorics(rng: random.Random) -> tuple[str, str]:
    import math
    from collections import Counter

    form = rng.randrange(3)
    if form == 0:
        n = rng.randint(5, 15)
        k = rng.randint(2, min(6, n - 1))
        q = f"In how many ways can a committee of {k} people be chosen from {n} people?"
        return q, str(math.comb(n, k))
    if form == 1:
        n = rng.randint(4, 10)
        k = rng.randint(2, min(5, n))
        q = f"In how many ways can {k} of {n} different books be placed in a row on a shelf?"
        return q, str(math.perm(n, k))
    word = rng.choice(WORDS)
    count = math.factorial(len(word))
    for repeats in Counter(word).values():
        count //= math.factorial(repeats)
    return f"How many distinct arrangements of the letters of the word {word} are there?", str(
        count
    )


def _probability(rng: random.Random) -> tuple[str, str]:
    import math

    import sympy

    form = rng.randrange(3)
    if form == 0:
        s = rng.randint(2, 12)
        ways = sum(1 for a in range(1, 7) for b in range(1, 7) if a + b == s)
        q = f"Two fair six-sided dice are rolled. What is the probability that the sum is {s}?"
        return q, sympy.latex(sympy.Rational(ways, 36))
    if form == 1:
        n = rng.randint(3, 8)
        k = rng.randint(0, n)
        q = (
            f"A fair coin is flipped {n} times. What is the probability of getting exactly "
            f"{k} heads?"
        )
        return q, sympy.latex(sympy.Rational(math.comb(n, k), 2**n))
    r, b = rng.randint(2, 8), rng.randint(1, 8)
    q = (
        f"A bag holds {r} red and {b} blue balls. Two balls are drawn at random without "
        f"replacement. What is the probability that both are red?"
    )
    return q, sympy.latex(sympy.Rational(r * (r - 1), (r + b) * (r + b - 1)))


def _question(topic: str, rng: random.Random) -> tuple[str, str]:
    if topic == "arithmetic":
        expr, ans = _arithmetic(rng)
        return f"Compute ${expr}$.", ans
    if topic == "fractions":
        expr, ans = _fractions(rng)
        return f"Compute ${expr}$. Write the answer as a fraction in lowest terms.", ans
    if topic == "linear_equations":
        eq, ans = _linear(rng)
        return f"Solve for $x$: ${eq}$.", ans
    if topic == "quadratic_equations":
        eq, ans = _quadratic(rng)
        return f"Find all real solutions of ${eq}$. Separate multiple solutions by commas.", ans
    if topic == "derivatives":
        f, at, ans = _derivative(rng)
        target = "f'(x)" if at == "x" else f"f'({at})"
        return f"Let $f(x) = {f}$. Find ${target}$.", ans
    if topic == "definite_integrals":
        body, ans = _integral(rng)
        return f"Evaluate ${body}$.", ans
    generators: dict[str, Callable[[random.Random], tuple[str, str]]] = {
        "combinatorics": _combinatorics,
        "probability": _probability,
    }
    return generators[topic](rng)


def builtin_eval_set(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` generated problems with exact gold answers, deterministic for ``seed``."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    exhausted: set[str] = set()
    turn = 0
    while len(items) < n:
        if len(exhausted) == len(TOPICS):
            raise ValueError(f"cannot generate {n} distinct problems")
        topic = TOPICS[turn % len(TOPICS)]
        turn += 1
        if topic in exhausted:
            continue
        # Small topics (dice sums, committees) run out of distinct questions: draw again,
        # and retire a topic that keeps repeating rather than loop forever.
        for _ in range(_MAX_REDRAWS):
            question, answer = _question(topic, rng)
            if question not in seen:
                break
        else:
            exhausted.add(topic)
            continue
        seen.add(question)
        items.append(
            {
                "id": f"builtin-{len(items):04d}",
                "topic": topic,
                "question": question,
                "answer": answer,
            }
        )
    return items


def parse_jsonl(text: str, source: str) -> list[dict[str, Any]]:
    """Items of a MATH-style JSONL file; a line without question or answer is an error."""
    items = []
    for lineno, row in json_objects(text, source):
        question = row.get("question") or row.get("problem")
        answer = row.get("answer") or row.get("solution")
        if not isinstance(question, str) or answer is None or str(answer).strip() == "":
            raise ValueError(f"{source}:{lineno}: needs 'question' and 'answer'")
        answer = str(answer)
        gold = extract_boxed(answer) if "\\boxed" in answer else None
        items.append(
            {
                "id": str(row.get("id", lineno)),
                "topic": str(row.get("topic") or row.get("type") or ""),
                "question": question,
                "answer": (gold or answer).strip(),
                "solution": answer if gold else None,
            }
        )
    return items


def eval_set_name(cfg: Any) -> str:
    """A short name of the configured set (``builtin-{seed}-{n}`` or the file name)."""
    ev = getattr(cfg, "evaluation", cfg)
    if ev.eval_set_uri:
        return basename(ev.eval_set_uri)
    return f"builtin-{ev.builtin_seed}-{ev.num_builtin}"


def load_eval_set(storage: Storage, cfg: Any) -> list[dict[str, Any]]:
    """The configured evaluation set (``cfg``: the pipeline config or its evaluation section).

    ``evaluation.max_examples`` keeps the first items only.
    """
    ev = getattr(cfg, "evaluation", cfg)
    if ev.eval_set_uri:
        items = parse_jsonl(storage.read_text(ev.eval_set_uri), ev.eval_set_uri)
    else:
        items = builtin_eval_set(ev.num_builtin, ev.builtin_seed)
    if ev.max_examples:
        items = items[: ev.max_examples]
    if not items:
        raise ValueError(f"evaluation set {eval_set_name(cfg)} is empty")
    return items
