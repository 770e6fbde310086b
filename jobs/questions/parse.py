"""Parse P-L1, P-L2 and P-L3 outputs into questions, tolerating garbled formats.

The expected P-L1 output is one ``<Qn>…</Qn>`` block per question with ``Question:``,
``Orig_tag:`` and ``Level:`` fields, or the fixed NOT SUITABLE string. P-L2/P-L3 blocks
hold ``Selected Concepts:`` and ``Question:`` instead (:func:`parse_concept_questions`); both
share the block splitting, the question checks and the duplicate/example rules. Small models
drop closing tags, bold the labels, wrap the answer in markdown fences, write levels as words
("High School") or copy the template verbatim; all of that is handled here. A P-L1 block is kept
only when all three fields are usable: the questions table allows exactly two orig tags and six
levels, and inventing a value would misreport provenance. Skipped blocks are counted by reason.
A concept question without a usable concept list is kept (the question is still grounded in
its documents) and counted as ``missing_concepts``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from jobs.concepts.normalise import MAX_NAME_CHARS, display_name, node_key, split_names

LEVELS = ("elementary", "middle_school", "high_school", "college", "grad_school", "competition")
ORIG_TAGS = ("original_question", "newly_created")
MAX_QUESTIONS = 5
# Shorter than "What is 2+3?" is a fragment or a placeholder, not a question.
MIN_QUESTION_CHARS = 10
# A "question" longer than this is a model stuck in a loop, not a self-contained problem.
MAX_QUESTION_CHARS = 2000
# P-L2/P-L3 ask for 2-3 concepts per question; a longer list is cut (counted).
MAX_SELECTED_CONCEPTS = 6

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
    r"(?:edu(?:cation(?:al)?)?[ \t_-]*)?level|"
    r"(?:(?:selected|chosen|key)[ \t_-]*)?concepts?|topics?)\b(?:\*\*|__)?[ \t]*[:：](?:\*\*|__)?",
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
_BRACKETED = re.compile(r"\[(?P<inner>[^\]]*)")
# "1. a 2. b" in a concept list: split at list numbers, but only in a list that starts with
# "1." or "1)", so "radius 2. Then" stays text.
_NUMBERED_LIST = re.compile(r"(?:^\s*|(?<=\s))\(?\d{1,2}[.)](?=\s)")
_END = "\x1e"  # marks where a closing </Qn> tag stood


@dataclass(frozen=True)
class ParsedQuestion:
    """One usable question; P-L2/P-L3 questions are ``newly_created`` with ``edu_level`` "".

    ``selected_concepts`` (last, defaulted, so older constructors still work): the concepts
    the model says it combined, cleaned for display; empty for P-L1.
    """

    question: str
    orig_tag: str
    edu_level: str
    selected_concepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParseResult:
    """``status``: ``ok``, ``not_suitable`` or ``unparseable``; ``skipped``: counts by reason.

    The reasons count dropped blocks, except ``missing_concepts`` and ``concepts_cut``, which
    count kept concept questions with no usable concept list or a cut one.
    """

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


def _labels(segment: str, concepts: bool) -> list[tuple[str, int, int]]:
    """Field labels as (kind, start, end); filters out words that merely look like labels.

    ``concepts``: also find concept-list labels ("Selected Concepts:") and line-start
    "Topics:" (a model echoing the prompt; the field is ignored but ends the question). P-L1
    ignores both, so they stay part of whatever field they appear in, as before.
    """
    found = []
    for m in _LABEL.finditer(segment):
        name = m.group("name").lower()
        at_line_start = bool(_LINE_START.search(segment, 0, m.start()))
        if "concept" in name:
            # "using these concepts: …" inside a question is text; "Selected Concepts:" is not.
            if not concepts or not (at_line_start or name.startswith(("selected", "chosen"))):
                continue
            kind = "concepts"
        elif name.startswith("topic"):
            if not concepts or not at_line_start:
                continue
            kind = "topics"
        elif name == "question":
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


def _question(fields: dict[str, str]) -> tuple[str, str | None]:
    """The cleaned question text and why it is unusable (None when usable)."""
    question = _clean_question(fields.get("question", ""))
    if not re.search(r"\w", question):
        return question, "empty_question"
    if len(question) < MIN_QUESTION_CHARS:
        return question, "too_short"
    if len(question) > MAX_QUESTION_CHARS:
        return question, "too_long"
    return question, None


def _block(fields: dict[str, str]) -> tuple[ParsedQuestion | None, str | None]:
    question, reason = _question(fields)
    if reason is not None:
        return None, reason
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


def _concept_block(fields: dict[str, str]) -> tuple[ParsedQuestion | None, str | None]:
    question, reason = _question(fields)
    if reason is not None:
        return None, reason
    concepts = parse_selected_concepts(fields.get("concepts", ""))
    return ParsedQuestion(question, "newly_created", "", concepts), None


def parse_selected_concepts(value: str) -> tuple[str, ...]:
    """The names in a "Selected Concepts:" value: ``[a, b]``, ``a; b``, one per line, quoted.

    Cleaned for display and de-duplicated by ``node_key``; ``()`` when none is usable.
    """
    value = value.split(_END, 1)[0]
    bracketed = _BRACKETED.search(value)
    if bracketed and not value[: bracketed.start()].strip(" \t\n*_\"'`"):
        value = bracketed.group("inner")
    names: list[str] = []
    seen: set[str] = set()
    for line in value.splitlines():
        if re.match(r"\s*\(?1[.)]\s", line):
            line = _NUMBERED_LIST.sub(";", line)
        for raw in split_names(line):
            name = display_name(raw)
            key = node_key(name)
            if key and key not in seen and len(name) <= MAX_NAME_CHARS:
                seen.add(key)
                names.append(name)
    return tuple(names)


def _blocks(text: str, skipped: Counter, concepts: bool) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    for marked, segment in _segments(text):
        labels = _labels(segment, concepts)
        if not any(kind == "question" for kind, _, _ in labels):
            if marked and segment.strip():
                skipped["missing_question"] += 1
            continue
        # Fields may come before or after the Question line (the prompts put Level and
        # Orig_tag, or Selected Concepts, first); a field already set on the current block
        # starts the next one.
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


def parse_questions(
    text: str | None, exclude: frozenset[str] = frozenset(), max_questions: int = MAX_QUESTIONS
) -> ParseResult:
    """Parse one P-L1 output; ``exclude`` holds question keys to drop (the prompt's example)."""
    return _parse(text, exclude, max_questions, concepts=False)


def parse_concept_questions(
    text: str | None, exclude: frozenset[str] = frozenset(), max_questions: int = MAX_QUESTIONS
) -> ParseResult:
    """Parse one P-L2 or P-L3 output (``Selected Concepts:`` + ``Question:`` blocks).

    Pass ``max_questions=3`` for P-L3. Questions are ``newly_created`` with ``edu_level`` "".
    """
    return _parse(text, exclude, max_questions, concepts=True)


def _parse(
    text: str | None, exclude: frozenset[str], max_questions: int, concepts: bool
) -> ParseResult:
    cleaned = _clean(str(text or ""))
    skipped: Counter = Counter()
    kept: list[ParsedQuestion] = []
    seen: set[str] = set()
    make: Callable[[dict[str, str]], tuple[ParsedQuestion | None, str | None]]
    make = _concept_block if concepts else _block
    for fields in _blocks(cleaned, skipped, concepts):
        parsed, reason = make(fields)
        if parsed is None:
            skipped[reason] += 1
            continue
        key = question_key(parsed.question)
        if key in exclude:
            skipped["copied_example"] += 1
        elif key in seen:
            skipped["duplicate"] += 1
        elif len(kept) >= max_questions:
            skipped["over_limit"] += 1
        else:
            seen.add(key)
            if concepts and not parsed.selected_concepts:
                skipped["missing_concepts"] += 1
            elif len(parsed.selected_concepts) > MAX_SELECTED_CONCEPTS:
                skipped["concepts_cut"] += 1
                cut = parsed.selected_concepts[:MAX_SELECTED_CONCEPTS]
                parsed = ParsedQuestion(parsed.question, parsed.orig_tag, parsed.edu_level, cut)
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
