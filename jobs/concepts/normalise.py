"""Node identity for topics and key concepts: ``node_key`` and ``display_name``.

The paper does not say how concept strings become graph nodes (§1.2, "Node identity"). We use
exact match on a normalised key, so the same concept written "**1.1 Derivatives**",
"derivative" or "Derivative." is one node, while different wordings stay different nodes
(merging by embedding would be a separate, later decision). The key is Unicode NFKC +
casefold, without list markers, markdown or punctuation, with each English word reduced to a
simple singular. It is only an identity: show ``display_name`` to people.
"""

from __future__ import annotations

import re
import unicodedata

# A longer "name" is a sentence or a model stuck in a loop, not a topic or concept.
MAX_NAME_CHARS = 150
# List markers a model puts in front of a name: bullets, "1.", "1)", "1.1", "(a)", "iv.".
_LEAD = re.compile(
    r"^\s*(?:[-*+]+\s+|[•·‣◦▪●○■□➢➤►»>#]+\s*"
    r"|\(?\d{1,3}(?:\.\d{1,3})*[.):](?=\s|$)\)?\s*|\d{1,3}(?:\.\d{1,3})+(?=\s)\s*"
    r"|\(?(?:[a-z]|[ivx]{1,5})[.)](?=\s)\s*)",
    re.I,
)
_APOSTROPHES = re.compile(r"[’‘ʼ`´']")
# "Bayes's" and "Bayes'" are the same possessive; both become "Bayes".
_POSSESSIVE_AFTER_S = re.compile(r"(?<=s)[’‘ʼ`´'](?:s\b)?")
_SPACE = re.compile(r"\s+")
_EMPHASIS = re.compile(r"\*\*|__|`+")
_QUOTE_PAIRS = ('""', "''", "“”", "‘’", "«»", "„“", "**", "__")
_TRAILING = " \t:;,.-–—"

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
# Singular words ending in "s" that the suffix rules would otherwise clip.
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
    }
    | {"bias", "alias", "canvas", "pythagoras", "christmas", "whereas", "always", "perhaps"}
)


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
    """NFKC with control and format characters (zero-width spaces, BOMs) removed."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch)[0] != "C")


def node_key(raw: str) -> str:
    """The identity of a topic or concept name; ``""`` when no letter or digit is left.

    Deterministic and idempotent. Works on ``display_name(raw)``, then casefolds, drops
    apostrophes ("Euler's" → "euler"), turns every other character that is not a letter,
    digit or combining mark (any script) into a space, so "-", "_" and "/" separate words,
    and reduces each word to a simple singular.
    """
    text = unicodedata.normalize("NFKC", display_name(raw).casefold())
    text = _APOSTROPHES.sub("", _POSSESSIVE_AFTER_S.sub("", text))
    text = "".join(ch if unicodedata.category(ch)[0] in "LNM" else " " for ch in text)
    return " ".join(singular(word) for word in text.split())


def display_name(raw: str) -> str:
    """``raw`` cleaned for display: markers, markdown, wrapping quotes, trailing colon removed.

    Keeps the original wording and case; ``""`` when no letter or digit is left.
    """
    text = _SPACE.sub(" ", _visible(str(raw))).strip()
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
    return _split(text, commas, quotes=True)


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
