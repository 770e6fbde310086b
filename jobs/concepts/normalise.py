"""Node identity for topics and key concepts: ``node_key`` and ``display_name``.

The paper does not say how concept strings become graph nodes (§1.2, "Node identity"). We use
exact match on a normalised key, so the same concept written "**1. Derivatives**",
"derivative", "The derivatives" or "Derivative." is one node, while different wordings stay
different nodes (merging by embedding would be a separate, later decision). The key is
Unicode NFKC + casefold, without list markers, markdown, a leading article or a trailing
"(GCD)" that spells the name's initials, with LaTeX written as Unicode ("$x^2$" is "x²",
``\\le`` is "≤"), "non-"/"semi-"/… prefixes joined to their word, other punctuation removed,
and each English word reduced to a simple singular. Maths keeps its meaning: relation and
operator symbols ("> 0" vs "< 0", "A|B" vs "A∩B"), primes ("f′(x)"), the case of Greek
letters ("Φ" vs "φ"), super- and subscripts and decimal points ("1.5") stay in the key.
It is only an identity: show ``display_name`` to people.

A bare leading "1.5" is part of the name here; only the parser, which sees the list, knows
when such a number is an outline number ("1.1 …, 1.2 …") and strips it.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from jobs.concepts.notation import is_script, nfkc, to_unicode

# A longer "name" is a sentence or a model stuck in a loop, not a topic or concept.
MAX_NAME_CHARS = 150
# List markers a model puts in front of a name: bullets, "1.", "1)", "1.1.", "(a)", "iv.".
# A bare "1.5 " is not one: it may start the name ("1.5 times rule").
_LEAD = re.compile(
    r"^\s*(?:[-*+]+\s+|[•·‣◦▪●○■□➢➤►»>#]+\s*"
    r"|\(?\d{1,3}(?:\.\d{1,3})*[.):](?=\s|$)\)?\s*"
    r"|\(?(?:[a-z]|[ivx]{1,5})[.)](?=\s)\s*)",
    re.I,
)
_APOSTROPHES = re.compile(r"[’‘ʼ`´']")
# "Euler's", "Bayes'" and "Bayes's": a possessive after a word of two or more letters.
_POSSESSIVE = re.compile(r"(?<=[^\W\d_]{2})[’‘ʼ`´'](?:s\b)?(?![^\W\d_])")
# An apostrophe after a one-letter name and before no letter is a prime: f'(x), y''.
_PRIME = re.compile(r"(?<![^\W\d_])([^\W\d_])([’ʼ']+)(?![^\W\d_])")
_SPACE = re.compile(r"\s+")
_EMPHASIS = re.compile(r"\*\*|__|`+")
_QUOTE_PAIRS = ('""', "''", "“”", "‘’", "«»", "„“", "**", "__")
_TRAILING = " \t:;,.-–—"
# A leading "the", "a" or "an" before a word goes: "The chain rule" is "chain rule", but
# "A ∪ B", "A B testing" and "a priori" keep their "a".
_ARTICLES = frozenset({"the", "a", "an"})
_NOT_AFTER_ARTICLE = frozenset({"priori", "posteriori", "fortiori", "level", "levels"})
# Tokens display_name would strip as a bullet at the start of a key ("$+1$" → "+ 1").
_LEAD_TOKENS = frozenset({"+", ">"})
# A trailing "(GCD)"/"(PDEs)" that spells the initials of the words before it.
_ACRONYM = re.compile(r"^(?P<name>.*?[^\W_].*?)\s*\((?P<abbr>[^\W\d_]{2,})\)$")
_INITIAL_WORDS = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_SMALL_WORDS = frozenset({"of", "and", "the", "a", "an", "in", "on", "for", "to", "with", "by"})
# "non-negative" is "nonnegative": these prefixes join their word instead of separating it.
_PREFIX = re.compile(
    r"(?<![^\W\d_])(non|anti|semi|multi|sub|super|co|pre|post|bi|tri|quasi|pseudo|inter|intra"
    r"|counter|self)[-‐‑](?=[^\W\d_])",
    re.I,
)
_GREEK = re.compile("[\u0370-\u03ff\u1f00-\u1fff]")
# _tokens on ASCII text: words ("1.5" keeps its point) and the ASCII symbols it keeps.
_ASCII_TOKEN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|(?<=[0-9])\.(?=[0-9]))*|[+<=>|~^%!]")
# Kept as one-character tokens of the key besides maths symbols (Unicode category Sm).
_SYMBOL_CHARS = frozenset("^%!")

# Irregular plurals seen in mathematics, and "-s" plurals of words that end in "s" already.
# Every value is a fixed point of the rules below.
_IRREGULAR = {
    "vertices": "vertex",
    "matrices": "matrix",
    "indices": "index",
    "simplices": "simplex",
    "apices": "apex",
    "appendices": "appendix",
    "axes": "axis",
    "analyses": "analysis",
    "hypotheses": "hypothesis",
    "theses": "thesis",
    "syntheses": "synthesis",
    "parentheses": "parenthesis",
    "radii": "radius",
    "foci": "focus",
    "loci": "locus",
    "tori": "torus",
    "moduli": "modulus",
    "annuli": "annulus",
    "calculi": "calculus",
    "nuclei": "nucleus",
    "formulae": "formula",
    "lemmata": "lemma",
    "criteria": "criterion",
    "phenomena": "phenomenon",
    "polyhedra": "polyhedron",
    "tetrahedra": "tetrahedron",
    "octahedra": "octahedron",
    "automata": "automaton",
    "maxima": "maximum",
    "minima": "minimum",
    "extrema": "extremum",
    "optima": "optimum",
    "spectra": "spectrum",
    "halves": "half",
    "leaves": "leaf",
    "biases": "bias",
    "gases": "gas",
    "buses": "bus",
    "radiuses": "radius",
    "rhombuses": "rhombus",
    "statuses": "status",
    "focuses": "focus",
}
# Singular words ending in "s" that the suffix rules would otherwise clip: names ("Jones",
# also "Jones's" once the possessive is gone), "odds", and "bases", which is the plural of
# both "base" and "basis": it stays "bases" rather than join the wrong one of them.
_KEEP = frozenset(
    {
        "series",
        "species",
        "bayes",
        "stokes",
        "descartes",
        "archimedes",
        "lens",
        "chaos",
        "cosmos",
        "ethos",
        "logos",
        "atlas",
        "odds",
        "bases",
        "news",
    }
    | {"bias", "alias", "canvas", "pythagoras", "christmas", "whereas", "always", "perhaps"}
    | {"jones", "lucas", "gibbs", "wilks", "hawkes", "hastings", "matthews", "adams", "james"}
    | {"huygens", "reynolds", "hodges", "williams", "hughes", "roberts", "thales", "socrates"}
    | {"eratosthenes"}
)
# "times" after a number or before "table" multiplies ("1.5 times rule", "times tables").
_TIMES_NEXT = frozenset({"table", "tables"})


def _singular_once(word: str) -> str:
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word in _KEEP or not word.endswith("s") or word.endswith(("ss", "us", "is", "ics")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "ches", "shes", "xes", "oes")):
        return word[:-2]
    return word[:-1]


def singular(word: str) -> str:
    """A simple English singular of one lower-case word; other words pass through.

    Rule-based, not a dictionary: "derivatives"→"derivative", "probabilities"→"probability",
    "matrices"→"matrix"; words ending in -ss, -us, -is or -ics (and the _KEEP list) are left
    alone, so "analysis", "calculus" and "mathematics" keep their "s". Applied until nothing
    changes, so ``singular(singular(w)) == singular(w)``.
    """
    if not (word.isascii() and word.isalpha()):
        return word
    while len(word) >= 4:
        shorter = _singular_once(word)
        if shorter == word:
            break
        word = shorter
    return word


def _strip_lead(text: str) -> str:
    while True:
        stripped = _LEAD.sub("", text, count=1)
        if stripped == text:
            return text
        text = stripped


def _visible(text: str) -> str:
    """NFKC (scripts kept) with control and format characters (zero-width spaces) removed."""
    text = nfkc(text)
    if text.isascii() and text.isprintable():
        return text
    return "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch)[0] != "C")


# Names repeat across documents ("Derivative" in thousands); a key costs ~0.1 ms.
@lru_cache(maxsize=1 << 16)
def node_key(raw: str) -> str:
    """The identity of a topic or concept name; ``""`` when no letter or digit is left.

    Deterministic and idempotent. Works on ``display_name(raw)``: drops a trailing acronym of
    the name's initials ("(GCD)"), writes LaTeX as Unicode, joins prefixes ("non-negative"
    → "nonnegative"), casefolds all but Greek letters (a Greek word of two or more letters
    is folded), drops possessives ("Euler's" → "euler") and other apostrophes but keeps
    primes ("f'" → "f′"), keeps maths symbols (category Sm), "^", "%" and "!" as tokens of
    their own, turns every other character that is not a letter, digit, mark or script
    character (any script) into a space, so "-", "_" and "/" separate words, drops a leading
    "the"/"a"/"an" and reduces each English word to a simple singular.
    """
    return _key(display_name(raw))


def _key(text: str) -> str:
    text = _PREFIX.sub(r"\1", to_unicode(_drop_acronym(text)))
    text = _POSSESSIVE.sub("", _fold(text))
    text = _PRIME.sub(lambda m: m.group(1) + "′" * len(m.group(2)), text)
    words = _tokens(_APOSTROPHES.sub("", text))
    while words and (
        words[0] in _LEAD_TOKENS
        or (len(words) > 1 and words[0] in _ARTICLES and _is_plain_word(words[1]))
    ):
        del words[0]
    out = []
    for i, word in enumerate(words):
        times = word == "times" and (
            (i > 0 and _is_number(words[i - 1]))
            or (i + 1 < len(words) and words[i + 1] in _TIMES_NEXT)
        )
        out.append(word if times else singular(word))
    key = " ".join(out)
    # "$\\le$" has letters, its key "≤" none: like display_name, no letter or digit is no name.
    return key if any(unicodedata.category(ch)[0] in "LN" for ch in key) else ""


def _is_plain_word(word: str) -> bool:
    return len(word) >= 2 and word.isalpha() and word not in _NOT_AFTER_ARTICLE


def _drop_acronym(text: str) -> str:
    match = _ACRONYM.match(text)
    if not match:
        return text
    words = _INITIAL_WORDS.findall(match.group("name"))
    initials = {
        "".join(w[0] for w in words).casefold(),
        "".join(w[0] for w in words if w.casefold() not in _SMALL_WORDS).casefold(),
    }
    abbr = match.group("abbr").casefold()
    spelled = abbr in initials or (abbr.endswith("s") and abbr[:-1] in initials)
    return match.group("name") if spelled and len(words) >= 2 else text


def _is_greek(ch: str) -> bool:
    return bool(_GREEK.match(ch))


def _fold_word(match: re.Match) -> str:
    word = match.group(0)
    if len(word) >= 2 and all(_is_greek(ch) for ch in word):
        return word.casefold()  # a Greek word, not a symbol
    return "".join(ch if _is_greek(ch) else ch.casefold() for ch in word)


def _fold(text: str) -> str:
    """Casefold, except that Greek letters used as symbols keep their case ("Φ" ≠ "φ")."""
    if not _GREEK.search(text):
        return nfkc(text.casefold())
    return nfkc(re.sub(r"[^\W\d_]+", _fold_word, text))


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LNM" or ch == "′" or is_script(ch)


def _tokens(text: str) -> list[str]:
    """Words (letters, digits, marks, primes, scripts; "1.5" keeps its point) and symbols."""
    if text.isascii():
        return _ASCII_TOKEN.findall(text)
    tokens, word = [], []
    for i, ch in enumerate(text):
        decimal = ch == "." and word and word[-1].isdecimal() and text[i + 1 : i + 2].isdecimal()
        if _is_word_char(ch) or decimal:
            word.append(ch)
            continue
        if word:
            tokens.append("".join(word))
            word = []
        if ch in _SYMBOL_CHARS or unicodedata.category(ch) == "Sm":
            tokens.append(ch)
    if word:
        tokens.append("".join(word))
    return tokens


def _is_number(word: str) -> bool:
    return word.replace(".", "", 1).isdecimal()


def merge_rate(names: Iterable[str]) -> float:
    """Share of the distinct raw names whose key another distinct raw name also has.

    Names without a key are left out; ``0.0`` when none is left. "Chain rule" and "chain
    rules" count as two merged names: the rate says how much the key folds, not whether it
    folds rightly.
    """
    keys = [k for k in (node_key(n) for n in set(names)) if k]
    counts = Counter(keys)
    return sum(c for c in counts.values() if c > 1) / len(keys) if keys else 0.0


def display_name(raw: str) -> str:
    """``raw`` cleaned for display: markers, markdown, wrapping quotes, trailing colon removed.

    Keeps the original wording and case; ``""`` when no letter or digit is left.
    """
    return _display_name(str(raw))


# Cached like node_key: a reply's parse meets each name more than once, a corpus thousands.
@lru_cache(maxsize=1 << 16)
def _display_name(raw: str) -> str:
    text = _SPACE.sub(" ", _visible(raw)).strip()
    previous = None
    while text != previous:
        previous = text
        text = _SPACE.sub(" ", _EMPHASIS.sub("", _strip_lead(text))).strip().rstrip(_TRAILING)
        for pair in _QUOTE_PAIRS:
            if len(text) >= 2 and text[0] == pair[0] and text[-1] == pair[1]:
                text = text[1:-1].strip()
        text = text.lstrip("#").strip()
    if not any(unicodedata.category(ch)[0] in "LN" for ch in text):
        return ""
    return text


def split_names(text: str, commas: bool = True) -> list[str]:
    """Split a one-line list of names on ";" (and "," when ``commas``), stripped, non-empty.

    Separators inside brackets, quotes or $…$ maths and commas between digits ("1,000") do
    not split: "Sum of $a, b$" and "Points (x, y)" stay one name. An unclosed quote or "$"
    is ignored rather than swallowing the rest of the list.
    """
    return list(_split_cached(text, commas))


@lru_cache(maxsize=1 << 16)
def _split_cached(text: str, commas: bool) -> tuple[str, ...]:
    return tuple(_split(text, commas, quotes=True))


_SPANS = {"$": "$", '"': '"', "“": "”"}


def _split(text: str, commas: bool, quotes: bool) -> list[str]:
    out, depth, closing, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if closing:
            closing = "" if ch == closing else closing
        elif quotes and ch in _SPANS:
            closing = _SPANS[ch]
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif not depth and (ch == ";" or (commas and ch == "," and not _digit_comma(text, i))):
            out.append(text[start:i])
            start = i + 1
    if closing:
        return _split(text, commas, quotes=False)
    out.append(text[start:])
    return [piece.strip() for piece in out if piece.strip()]


def _digit_comma(text: str, i: int) -> bool:
    return 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
