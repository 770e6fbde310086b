"""Maths notation in names, written one way: LaTeX becomes the Unicode a model also writes.

``node_key`` must tell "x ≤ 0" from "x ≥ 0" but treat "$x \\le 0$" and "x ≤ 0" as one name,
and "$x^2$" as "x²". So math spans (``$…$``, ``\\(…\\)``, ``\\[…\\]``) lose their delimiters,
commands with a Unicode symbol become it (``\\alpha`` → α, ``\\le`` → ≤, ``\\cdot`` → ⋅),
wrappers (``\\mathrm{d}``) and spacing go, other commands become their name (``\\sin`` →
"sin"), and simple super- and subscripts become Unicode ones ("x^{2}" → "x²", "a_n" → "aₙ").
A script with a character Unicode has no script form for stays a "^" before its content.
NFKC would fold "x²" into "x2", a different name, so :func:`nfkc` keeps scripts.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

_GREEK_NAMES = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho"
    " varsigma sigma tau upsilon phi chi psi omega"
)
_GREEK = {
    **{name: chr(0x3B1 + i) for i, name in enumerate(_GREEK_NAMES.split(" "))},  # α … ω
    **{"varepsilon": "ε", "vartheta": "θ", "varpi": "π", "varrho": "ρ", "varphi": "φ"},
    **{"Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π"},
    **{"Sigma": "Σ", "Upsilon": "Υ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω"},
}
_SYMBOLS = {
    **dict.fromkeys(("le", "leq", "leqslant"), "≤"),
    **dict.fromkeys(("ge", "geq", "geqslant"), "≥"),
    **dict.fromkeys(("ne", "neq"), "≠"),
    **dict.fromkeys(("mid", "vert", "lvert", "rvert"), "|"),
    **dict.fromkeys(("emptyset", "varnothing"), "∅"),
    **dict.fromkeys(("neg", "lnot"), "¬"),
    **dict.fromkeys(("land", "wedge"), "∧"),
    **dict.fromkeys(("lor", "vee"), "∨"),
    **dict.fromkeys(("to", "rightarrow"), "→"),
    **dict.fromkeys(("Rightarrow", "implies"), "⇒"),
    **dict.fromkeys(("Leftrightarrow", "iff"), "⇔"),
    **{"lt": "<", "gt": ">", "approx": "≈", "equiv": "≡", "sim": "∼", "simeq": "≃"},
    **{"cong": "≅", "propto": "∝", "cdot": "⋅", "times": "×", "div": "÷", "pm": "±"},
    **{"mp": "∓", "circ": "∘", "infty": "∞", "partial": "∂", "nabla": "∇", "sum": "∑"},
    **{"prod": "∏", "int": "∫", "oint": "∮", "sqrt": "√", "in": "∈", "notin": "∉"},
    **{"subset": "⊂", "subseteq": "⊆", "supset": "⊃", "supseteq": "⊇", "cup": "∪"},
    **{"cap": "∩", "setminus": "∖", "forall": "∀", "exists": "∃", "leftarrow": "←"},
    **{"leftrightarrow": "↔", "mapsto": "↦", "perp": "⊥", "parallel": "∥", "angle": "∠"},
    **{"prime": "′", "oplus": "⊕", "otimes": "⊗", "aleph": "ℵ", "hbar": "ℏ", "ell": "ℓ"},
    **{"percent": "%"},
}
_DROPPED = frozenset(
    ("left", "right", "big", "Big", "bigg", "Bigg", "displaystyle", "textstyle", "limits")
    + ("nolimits", "quad", "qquad")
)
_WRAPPERS = re.compile(
    r"\\(?:math(?:bb|rm|bf|it|cal|sf|frak)|boldsymbol|bm|text(?:rm|bf|it)?|operatorname|mbox)"
    r"\s*\{([^{}]*)\}"
)
_COMMAND = re.compile(r"\\([A-Za-z]+)|\\([,;:! %{}|$\\])")
_MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_SCRIPT = re.compile(r"([\^_])(?:\{([^{}]*)\}|([+\-−]?\d+|′+|[^\W_]))")
_ASCII_RELATIONS = (("<=", "≤"), (">=", "≥"), ("!=", "≠"), ("->", "→"), ("=>", "⇒"))
_SUP = dict(
    zip(
        "0123456789+-−=()abcdefghijklmnoprstuvwxyzT",
        "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻᵀ",
        strict=True,
    )
)
_SUB = dict(
    zip("0123456789+-−=()aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉₊₋₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ", strict=True)
)
# Outside maths a hyphen is a minus only before a number that follows a space, a bracket,
# an operator or a one-letter name ("x = -1", "n-1"); "COVID-19" and "2-3 trees" keep it.
_MINUS = re.compile(r"(?:(?<=^)|(?<=[\s(\[{=<>+])|(?<=(?<![^\W\d_])[^\W\d_]))-(?=\d)")


@cache
def is_script(ch: str) -> bool:
    """Whether ``ch`` is a superscript or subscript character ("²", "ⁿ", "₁")."""
    return unicodedata.decomposition(ch).startswith(("<super>", "<sub>"))


def nfkc(text: str) -> str:
    """Unicode NFKC, except that super- and subscripts stay: "x²" is not "x2"."""
    if text.isascii() or not any(is_script(ch) for ch in text):
        return unicodedata.normalize("NFKC", text)
    parts, start = [], 0
    for i, ch in enumerate(text):
        if is_script(ch):
            parts += [unicodedata.normalize("NFKC", text[start:i]), ch]
            start = i + 1
    parts.append(unicodedata.normalize("NFKC", text[start:]))
    return "".join(parts)


def to_unicode(text: str) -> str:
    """``text`` with its LaTeX written in Unicode (see the module docstring), then NFKC."""
    if not any(ch in text for ch in "\\$^_-<>=!·∣"):
        return nfkc(text)
    out, pos = [], 0
    for m in _MATH.finditer(text):
        out += [_convert(text[pos : m.start()], math=False), " "]
        out += [_convert(next(g for g in m.groups() if g is not None), math=True), " "]
        pos = m.end()
    out.append(_convert(text[pos:], math=False))
    return nfkc("".join(out).replace("$", " "))


def _convert(text: str, math: bool) -> str:
    previous = None
    while text != previous:
        previous, text = text, _WRAPPERS.sub(r"\1", text)
    text = _COMMAND.sub(_command, text)
    for ascii_form, symbol in _ASCII_RELATIONS:
        text = text.replace(ascii_form, symbol)
    text = text.replace("·", "⋅").replace("∣", "|")
    text = text.replace("-", "−") if math else _MINUS.sub("−", text)
    return _SCRIPT.sub(lambda m: _script(m, math), text)


def _command(match: re.Match) -> str:
    name, escaped = match.groups()
    if escaped is not None:
        return escaped if escaped in "%{}|" else " "
    if name in _DROPPED:
        return " "
    return _GREEK.get(name) or _SYMBOLS.get(name) or f" {name} "


def _script(match: re.Match, math: bool) -> str:
    mark, body = match.group(1), match.group(2) if match.group(2) is not None else match.group(3)
    text = match.string
    if mark == "_" and not math and not _after_one_letter(text, match.start()):
        return match.group(0)  # "cross_section": an underscore between words
    body = body.strip()
    if body and set(body) <= {"′"}:
        return body  # f^{\prime} is f′
    table = _SUP if mark == "^" else _SUB
    if body and all(ch in table for ch in body):
        return "".join(table[ch] for ch in body)
    return f" ^ {body} " if mark == "^" else f" {body} "


def _after_one_letter(text: str, i: int) -> bool:
    return i > 0 and text[i - 1].isalpha() and (i == 1 or not text[i - 2].isalpha())
