"""Parse P-L1 outputs into questions, tolerating the ways real models garble the format.

The expected output is one ``<Qn>…</Qn>`` block per question with ``Question:``,
``Orig_tag:`` and ``Level:`` fields, or the fixed NOT SUITABLE string. Small models drop
closing tags, bold the labels, wrap the answer in markdown fences, write levels as words
("High School") or copy the template verbatim; all of that is handled here. A block is kept
only when all three fields are usable: the questions table allows exactly two orig tags and six
levels, and inventing a value would misreport provenance. Skipped blocks are counted by reason.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

LEVELS = ("elementary", "middle_school", "high_school", "college", "grad_school", "competition")
ORIG_TAGS = ("original_question", "newly_created")
MAX_QUESTIONS = 5
# Shorter than "What is 2+3?" is a fragment or a placeholder, not a question.
MIN_QUESTION_CHARS = 10
# A "question" longer than this is a model stuck in a loop, not a self-contained problem.
MAX_QUESTION_CHARS = 2000

_NOT_SUITABLE = re.compile(r"not[\s_*]*suitable", re.I)
_FENCE = re.compile(r"^[ \t]*```[\w-]*[ \t]*$", re.M)
_CLOSE = re.compile(r"<\s*/\s*Q\s*\d*\s*(?:>|$)|\[\s*/\s*Q\s*\d*\s*\]", re.I)
_OPEN = re.compile(
    r"<\s*Q\s*\d+\s*>|\[\s*Q\s*\d+\s*\]"
    r"|^[ \t]*(?:#+[ \t]*)?(?:\*\*)?(?-i:Q)[ \t]*\d+[ \t]*(?:\*\*)?[ \t]*[>:.)]?(?:\*\*)?(?=\s|$)",
    re.I | re.M,
)
_LABEL = re.compile(
    r"(?:\*\*|__)?\b(?P<name>question|orig(?:inal)?[ \t_-]*tag|"
    r"(?:edu(?:cation(?:al)?)?[ \t_-]*)?level)\b(?:\*\*|__)?[ \t]*[:：](?:\*\*|__)?",
    re.I,
)
_LINE_START = re.compile(r"(?:^|\n)[ \t>*#\-]*$")
_LEVEL_WORDS = {
    "elementary": r"\b(?:elementary|primary)\b",
    "middle_school": r"\b(?:middle|junior[ ]high)\b",
    "high_school": r"(?<!junior )\bhigh\b|\bsecondary\b",
    "college": r"\b(?:college|undergrad(?:uate)?|university)\b",
    "grad_school": r"\b(?:grad|graduate|postgrad(?:uate)?|phd)\b",
    "competition": r"\b(?:competition|olympiad|contest)\b",
}
_LEVEL_RES = {level: re.compile(rx) for level, rx in _LEVEL_WORDS.items()}
# Mid-line "Level:" counts as a label only when a level word follows (no \b: "high_school").
_ANY_LEVEL = re.compile(
    r"[ \t<*\[]*(?:elementary|primary|middle|junior|high|secondary|college|undergrad|university"
    r"|grad|postgrad|phd|competition|olympiad|contest)",
    re.I,
)
_ALTERNATIVES = re.compile(r"\||/|\bor\b")
_END = "\x1e"  # marks where a closing </Qn> tag stood


@dataclass(frozen=True)
class ParsedQuestion:
    """One usable question from a P-L1 output."""

    question: str
    orig_tag: str
    edu_level: str


@dataclass(frozen=True)
class ParseResult:
    """``status``: ``ok``, ``not_suitable`` or ``unparseable``; ``skipped``: dropped blocks."""

    status: str
    questions: tuple[ParsedQuestion, ...] = ()
    error: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = _FENCE.sub("", text.replace(_END, ""))
    # A closing tag ends the block's last field: text after it is not part of the question.
    return _CLOSE.sub("\n" + _END + "\n", text)


def _segments(text: str) -> list[tuple[bool, str]]:
    """Split at block openers; the flag says whether the segment followed an opener."""
    out: list[tuple[bool, str]] = []
    pos, marked = 0, False
    for m in _OPEN.finditer(text):
        out.append((marked, text[pos : m.start()]))
        pos, marked = m.end(), True
    out.append((marked, text[pos:]))
    return out


def _labels(segment: str) -> list[tuple[str, int, int]]:
    """Field labels as (kind, start, end); filters out words that merely look like labels."""
    found = []
    for m in _LABEL.finditer(segment):
        name = m.group("name").lower()
        at_line_start = bool(_LINE_START.search(segment, 0, m.start()))
        if name == "question":
            # "Answer this question: ..." inside a question must not start a new block.
            if not at_line_start:
                continue
            kind = "question"
        elif "tag" in name:
            kind = "orig_tag"
        else:
            # "the water level: 5 m" is text; a mid-line Level label must name a level.
            if not at_line_start and not _ANY_LEVEL.match(segment, m.end()):
                continue
            kind = "level"
        found.append((kind, m.start(), m.end()))
    return found


def _first_line(value: str) -> str:
    for line in value.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _norm_words(value: str) -> str:
    value = re.sub(r"[<>*\[\]\"'`]", " ", value.lower())
    return re.sub(r"[\s_-]+", " ", value).strip()


def normalise_level(value: str) -> str | None:
    """Map "High School", "<high_school>", "undergraduate" … to a level; None if unclear."""
    words = _norm_words(_first_line(value))
    hits = sorted((m.start(), level) for level, rx in _LEVEL_RES.items() if (m := rx.search(words)))
    if not hits:
        return None
    if len({lvl for _, lvl in hits}) > 1 and _ALTERNATIVES.search(words):
        return None  # the template's "<elementary>|<middle_school>|…" copied verbatim
    return hits[0][1]


def normalise_orig_tag(value: str) -> str | None:
    """Map "<original_question>", "is_original", "Newly created" … to a tag; None if unclear."""
    words = _norm_words(_first_line(value))
    original = bool(re.search(r"\borig|\boriginal|\bextracted\b", words))
    new = bool(re.search(r"\bnew|\bcreated\b|\bcreate\b", words))
    if original == new:
        return None
    return "original_question" if original else "newly_created"


def _clean_question(value: str) -> str:
    lines = [line.rstrip() for line in value.strip().splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return re.sub(r"^(?:\*\*|__)\s*|\s*(?:\*\*|__)$", "", text).strip()


def _block(fields: dict[str, str]) -> tuple[ParsedQuestion | None, str | None]:
    question = _clean_question(fields.get("question", ""))
    if not re.search(r"\w", question):
        return None, "empty_question"
    if len(question) < MIN_QUESTION_CHARS:
        return None, "too_short"
    if len(question) > MAX_QUESTION_CHARS:
        return None, "too_long"
    if "orig_tag" not in fields:
        return None, "missing_orig_tag"
    tag = normalise_orig_tag(fields["orig_tag"])
    if tag is None:
        return None, "bad_orig_tag"
    if "level" not in fields:
        return None, "missing_level"
    level = normalise_level(fields["level"])
    if level is None:
        return None, "bad_level"
    return ParsedQuestion(question, tag, level), None


def _blocks(text: str, skipped: Counter) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    for marked, segment in _segments(text):
        labels = _labels(segment)
        if not any(kind == "question" for kind, _, _ in labels):
            if marked and segment.strip():
                skipped["missing_question"] += 1
            continue
        # Fields may come before or after the Question line (the prompt puts Level and
        # Orig_tag first); a field already set on the current block starts the next one.
        current: dict[str, str] | None = None
        pending: dict[str, str] = {}
        for i, (kind, _, end) in enumerate(labels):
            value = segment[end : labels[i + 1][1] if i + 1 < len(labels) else len(segment)]
            value = value.split(_END, 1)[0]
            if kind == "question":
                current = pending
                pending = {}
                blocks.append(current)
                current["question"] = value
            elif current is not None and kind not in current and not pending:
                current[kind] = value
            elif kind not in pending:
                pending[kind] = value
    return blocks


def parse_questions(text: str | None, exclude: frozenset[str] = frozenset()) -> ParseResult:
    """Parse one P-L1 output; ``exclude`` holds question keys to drop (the prompt's example)."""
    cleaned = _clean(str(text or ""))
    skipped: Counter = Counter()
    kept: list[ParsedQuestion] = []
    seen: set[str] = set()
    for fields in _blocks(cleaned, skipped):
        parsed, reason = _block(fields)
        if parsed is None:
            skipped[reason] += 1
            continue
        key = question_key(parsed.question)
        if key in exclude:
            skipped["copied_example"] += 1
        elif key in seen:
            skipped["duplicate"] += 1
        elif len(kept) >= MAX_QUESTIONS:
            skipped["over_limit"] += 1
        else:
            seen.add(key)
            kept.append(parsed)
    counts = dict(sorted(skipped.items()))
    if kept:
        return ParseResult("ok", tuple(kept), None, counts)
    # Usable questions win over a stray "not suitable"; only an output without any is one.
    if _NOT_SUITABLE.search(cleaned):
        return ParseResult("not_suitable", (), None, counts)
    if counts:
        detail = ", ".join(f"{k}={v}" for k, v in counts.items())
        return ParseResult("unparseable", (), f"no usable question block ({detail})", counts)
    return ParseResult("unparseable", (), "no <Qn> block with a Question field", counts)


def question_key(question: str) -> str:
    """The duplicate-detection key: case- and whitespace-insensitive."""
    return re.sub(r"\s+", " ", question).strip().casefold()
