"""Pure-Python parts of the filter stage: quality heuristics and shingling."""

from __future__ import annotations

import pytest

from jobs.config import ConfigError, FilterConfig, load_config
from jobs.filter import heuristics as h
from jobs.filter.dedup import jaccard, shingles, word_shingles


def test_ratios_exact_values():
    text = "ab1 !\n c"  # visible: a b 1 ! c
    assert h.num_chars(text) == 8
    assert h.alpha_ratio(text) == pytest.approx(3 / 5)
    assert h.symbol_ratio(text) == pytest.approx(1 / 5)


def test_ratios_of_blank_text_are_zero():
    for fn in (h.alpha_ratio, h.symbol_ratio, h.dup_line_fraction):
        assert fn("") == 0.0
        assert fn(" \n\t ") == 0.0


def test_dup_line_fraction_counts_repeats_of_earlier_lines():
    # non-empty stripped lines: a, b, a, b, c -> the 3rd and 4th repeat earlier lines
    assert h.dup_line_fraction("a\nb\n  a\n\nb\nc") == pytest.approx(2 / 5)
    assert h.dup_line_fraction("one\ntwo\nthree") == 0.0


def test_latex_heavy_math_passes_the_default_symbol_threshold():
    text = (
        "Let $f(x) = \\frac{1}{1+x^2}$. Then $\\int_0^1 f(x)\\,dx = \\arctan 1 = \\pi/4$, "
        "so the series $\\sum_{n\\ge 0} (-1)^n/(2n+1)$ converges to $\\pi/4$ as well."
    )
    cfg = FilterConfig()
    assert h.symbol_ratio(text) < cfg.max_symbol_ratio
    assert h.alpha_ratio(text) >= cfg.min_alpha_ratio


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("x" * 10, "too_short"),
        ("word " * 50, "too_long"),
        ("12345 67890 " * 10, "low_alpha_ratio"),
        ("abcd{}[]<> " * 10, "high_symbol_ratio"),  # alpha 0.4, symbols 0.6
        ("same line here\n" * 10, "repetitive"),
        ("a perfectly ordinary sentence about sets and maps. " * 3, None),
    ],
)
def test_score_text_reasons(text, reason):
    cfg = FilterConfig(min_chars=20, max_chars=200)
    scores = h.score_text(text, cfg)
    assert scores["reason"] == reason
    assert scores["num_chars"] == len(text)


def test_reasons_are_checked_in_order():
    cfg = FilterConfig(min_chars=50)
    # too short AND all symbols: the first reason in REASONS wins
    assert h.score_text("{}{}{}", cfg)["reason"] == "too_short"
    assert h.score_text(None, cfg)["reason"] == "too_short"
    assert h.REASONS[0] == "too_short"


def test_char_shingles_normalise_case_and_whitespace():
    assert shingles("Ab  c", 3) == ["ab ", "b c"]
    assert shingles("AB\nC", 3) == shingles("ab c", 3)
    assert shingles("ab", 3) == []


def test_word_shingles():
    assert word_shingles("A b c d e f", 5) == ["a b c d e", "b c d e f"]
    assert word_shingles("only three words", 5) == ["only three words"]
    assert word_shingles("   ", 5) == []


def test_jaccard():
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert jaccard(set(), set()) == 1.0


def test_filter_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="filter.num_folds"):
        load_config("local", None, ["filter.num_folds=1"])
    with pytest.raises(ConfigError, match="filter.minhash_shingle"):
        load_config("local", None, ["filter.minhash_shingle=bytes"])
    with pytest.raises(ConfigError, match="min_chars .500. exceeds max_chars .400."):
        load_config("local", None, ["filter.min_chars=500", "filter.max_chars=400"])
