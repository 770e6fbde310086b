r"""Final-answer extraction: the content of the last ``\boxed{…}`` and its normal form.

Choices (the paper gives none; they follow the Qwen-Math evaluation conventions loosely):

- the LAST ``\boxed`` or ``\fbox`` counts; braces are matched with nesting, and escaped
  braces (``\{``) do not count; ``\boxed {x}`` and ``\boxed 5`` (no braces) are accepted;
- a last box cut off before its closing brace means no answer: an earlier box is usually an
  intermediate result, so falling back to it would report the wrong answer;
- normalisation removes ``$`` (and ``\$``), ``\left``/``\right``, ``\displaystyle``,
  spacing commands (``\,`` ``\!`` ``\;`` ``\quad``), one wrapping ``\( \)`` or ``\[ \]``,
  a trailing ``.`` ``,`` or ``;``; turns ``\dfrac``/``\tfrac`` into ``\frac``; deletes
  whitespace, except between a control word and a following letter (``\pi r``) and inside
  ``\text{…}``, whose content is kept (units) with its spaces collapsed;
- ``x = 3`` stays as written (stripping the left side would lose answers like ``y=2x+1``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])\s*")
_TEXT_CMD = re.compile(r"\\(?:text|textrm|textbf|mathrm|mbox)\s*\{")
_SPACING = re.compile(r"\\(?:[,!;: ]|q?quad(?![A-Za-z]))|~")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|displaystyle)(?![A-Za-z])")
_CONTROL_WORD_END = re.compile(r"\\[A-Za-z]+$")


@dataclass(frozen=True)
class AnswerResult:
    """``status`` is ``ok`` (with ``final_answer``) or ``unparseable`` (with ``error``)."""

    status: str
    final_answer: str | None = None
    error: str | None = None


def _braced(text: str, start: int) -> int | None:
    """Index of the brace closing the one at ``start``; None when the text ends first."""
    depth, i = 0, start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2  # \{ and \} are literal braces, not grouping
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def extract_boxed(text: str | None) -> str | None:
    r"""Content of the last ``\boxed``/``\fbox`` in ``text``; None if absent or unterminated."""
    matches = list(_BOX.finditer(text or ""))
    if not matches:
        return None
    m = matches[-1]
    text = text or ""
    if m.end() < len(text) and text[m.end()] == "{":
        close = _braced(text, m.end())
        return None if close is None else text[m.end() + 1 : close]
    token = re.match(r"[^\s${}]+", text[m.end() :])  # "\boxed 5": a one-token argument
    return token.group(0) if token else None


def _strip_whitespace(s: str) -> str:
    def keep_needed(m: re.Match) -> str:
        before, after = s[: m.start()], s[m.end() : m.end() + 1]
        return " " if _CONTROL_WORD_END.search(before) and after.isalpha() else ""

    return re.sub(r"\s+", keep_needed, s)


def _split_text_groups(s: str) -> list[tuple[bool, str]]:
    """Split into (is_text_group, piece) so ``\\text{…}`` content keeps its spaces."""
    pieces, pos = [], 0
    for m in _TEXT_CMD.finditer(s):
        if m.start() < pos:
            continue
        close = _braced(s, m.end() - 1)
        if close is None:
            break
        pieces.append((False, s[pos : m.start()]))
        inner = " ".join(s[m.end() : close].split())
        pieces.append((True, s[m.start() : m.end()].replace(" ", "") + inner + "}"))
        pos = close + 1
    pieces.append((False, s[pos:]))
    return pieces


def normalise_answer(answer: str) -> str:
    """The comparable form of a boxed answer (see the module docstring for the rules)."""
    s = re.sub(r"\\?\$", "", answer.strip())  # math delimiters and escaped dollar signs
    s = _LEFT_RIGHT.sub("", s)
    s = _SPACING.sub(" ", s)
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    s = s.strip()
    for left, right in (("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right):
            s = s[len(left) : -len(right)]
    s = "".join(
        piece if is_text else _strip_whitespace(piece) for is_text, piece in _split_text_groups(s)
    )
    return s.strip().rstrip(".,;").strip()


def parse_answer(text: str | None) -> AnswerResult:
    """Extract and normalise the final answer of one reply."""
    boxed = extract_boxed(text)
    if boxed is None:
        return AnswerResult("unparseable", None, "no complete \\boxed{...} answer")
    final = normalise_answer(boxed)
    if not final:
        return AnswerResult("unparseable", None, "empty \\boxed{} answer")
    return AnswerResult("ok", final, None)
