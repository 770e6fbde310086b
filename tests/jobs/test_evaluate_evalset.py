"""The built-in evaluation set: deterministic, every topic, gold answers re-derived here."""

from __future__ import annotations

import math
import re
from collections import Counter
from fractions import Fraction

import pytest
import sympy
from latex2sympy2_extended import latex2sympy

from jobs.evaluation import builtin_eval_set, load_eval_set
from jobs.evaluation.evalset import TOPICS, eval_set_name
from jobs.storage import Storage

X = sympy.Symbol("x")


def test_same_seed_same_set_and_prefixes_agree():
    a, b = builtin_eval_set(40, seed=7), builtin_eval_set(40, seed=7)
    assert a == b
    assert builtin_eval_set(16, seed=7) == a[:16]
    assert builtin_eval_set(40, seed=8) != a
    assert Counter(item["topic"] for item in a) == {t: 5 for t in TOPICS}
    assert len({item["id"] for item in a}) == len({item["question"] for item in a}) == 40
    assert all(set(item) == {"id", "topic", "question", "answer"} for item in a)


def _math(question: str) -> str:
    """The LaTeX of the question's last ``$...$`` span."""
    return re.findall(r"\$([^$]+)\$", question)[-1]


def _expected(item: dict) -> object:
    """The answer, recomputed from the question text alone (sympy, math, fractions)."""
    q, topic = item["question"], item["topic"]
    nums = [int(n) for n in re.findall(r"\d+", q)]
    if topic in ("arithmetic", "fractions", "definite_integrals"):
        return sympy.nsimplify(latex2sympy(_math(q)).doit())
    if topic in ("linear_equations", "quadratic_equations"):
        eq = latex2sympy(re.findall(r"\$([^$]+)\$", q)[-1])
        return sorted(sympy.solve(eq, X))
    if topic == "derivatives":
        f = latex2sympy(re.search(r"\$f\(x\) = (.+?)\$", q).group(1))
        target = _math(q)
        derivative = sympy.diff(f, X)
        return derivative if target == "f'(x)" else derivative.subs(X, 0)
    if topic == "combinatorics":
        if "committee" in q:
            return math.comb(nums[1], nums[0])
        if "books" in q:
            return math.perm(nums[1], nums[0])
        word = re.search(r"word ([A-Z]+)", q).group(1)
        count = math.factorial(len(word))
        for repeats in Counter(word).values():
            count //= math.factorial(repeats)
        return count
    if "dice" in q:
        return Fraction(sum(a + b == nums[-1] for a in range(1, 7) for b in range(1, 7)), 36)
    if "coin" in q:
        n, k = nums
        return Fraction(math.comb(n, k), 2**n)
    red, blue = nums[0], nums[1]
    return Fraction(red, red + blue) * Fraction(red - 1, red + blue - 1)


def _gold(item: dict) -> object:
    answer = item["answer"]
    if item["topic"] in ("linear_equations", "quadratic_equations"):
        return sorted(sympy.nsimplify(latex2sympy(p)) for p in answer.split(", "))
    value = latex2sympy(answer)
    return value if item["topic"] == "derivatives" else sympy.nsimplify(value)


@pytest.mark.parametrize("item", builtin_eval_set(48, seed=11), ids=lambda item: item["id"])
def test_gold_answers_are_right(item):
    expected, gold = _expected(item), _gold(item)
    if isinstance(expected, list):
        assert [sympy.simplify(e - g) for e, g in zip(expected, gold, strict=True)] == [0] * len(
            gold
        )
    else:
        assert sympy.simplify(sympy.sympify(expected) - gold) == 0, (expected, gold)


def test_a_users_jsonl_set_is_read_with_aliases_and_boxed_solutions(make_config, tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(
        '{"id": "a", "question": "1+1?", "answer": "2"}\n'
        "\n"
        '{"problem": "Half of 1?", "solution": "It is \\\\boxed{\\\\frac{1}{2}}.", "type": "Alg"}\n'
    )
    cfg = make_config(f'evaluation.eval_set_uri="file://{path}"')
    items = load_eval_set(Storage(cfg.storage), cfg)
    assert [i["id"] for i in items] == ["a", "3"]
    assert items[1]["answer"] == "\\frac{1}{2}" and items[1]["topic"] == "Alg"
    assert items[1]["solution"].startswith("It is")
    assert eval_set_name(cfg) == "mine.jsonl"

    path.write_text('{"question": "no answer"}\n')
    with pytest.raises(ValueError, match="mine.jsonl:1"):
        load_eval_set(Storage(cfg.storage), cfg)


def test_the_builtin_set_is_the_default_and_max_examples_cuts_it(make_config):
    cfg = make_config("evaluation.num_builtin=12", "evaluation.max_examples=5")
    items = load_eval_set(Storage(cfg.storage), cfg)
    assert items == builtin_eval_set(12, cfg.evaluation.builtin_seed)[:5]
    assert eval_set_name(cfg) == f"builtin-{cfg.evaluation.builtin_seed}-12"
