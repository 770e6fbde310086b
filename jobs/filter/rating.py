"""The LLM's 1-10 rating of a document (paper section 1.1, the fine-grained filter's labels).

The prompt asks for three whole numbers: relevance to mathematics, clarity and language
quality; the answer is started at ``Relevance:`` (prefill), which small models follow far
more reliably than a format described in words. :func:`parse_rating` reads the usual
variants (``8``, ``8/10``, ``8 out of 10``, ``eight``, markdown bold, other separators, or
three bare numbers in order); a value outside 1-10 or a missing criterion makes the answer
unparseable. :func:`rate` asks once more with :func:`repair_prompt` when the first answer
cannot be read (the same contract as the shard runner's repair, run in-process here because
the fine-grained rounds need each round's ratings before drawing the next). The document is
data: stripped of chat control markers and shown in a ``<<<DOCUMENT>>>`` block
(:mod:`jobs.llm.prompt_data`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from jobs.llm.engine import ChatRequest, ChatResponse, Engine
from jobs.llm.prompt_data import DATA_NOTE, clean_text, data_block
from jobs.llm.tasks import LLMTask, register_task

TASK_NAME = "doc_ratings"
# v2: the document stripped of control markers and delimited as data.
PROMPT_VERSION = "rating-v2"
PREFILL = "Relevance:"
CRITERIA = ("relevance", "clarity", "language")
LOW, HIGH = 1.0, 10.0

_SYSTEM = "You are a strict reviewer who selects documents for a mathematics textbook corpus."
_USER = """Rate the document below with three whole numbers from 1 (worst) to 10 (best).
Relevance: how much the document is about mathematics (1 = not at all, 10 = entirely).
Clarity: how clear and well organised the explanation is.
Language: the quality of the writing (grammar, spelling, no boilerplate).

Reply with three lines, Relevance, Clarity and Language, each followed by a colon and
your number, and nothing else.

{note}
{document}"""
_REPAIR = (
    "Your answer could not be read. Give your own three ratings, each one whole number "
    "from 1 to 10 (not a range): Relevance, Clarity and Language, one per line."
)

_WORDS = {
    w: float(i)
    for i, w in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    )
}
# A number followed by a dash is a copied range ("1-10"), not a rating.
_NUMBER = r"(?P<num>\d+(?:\.\d+)?|" + "|".join(_WORDS) + r")(?!\s*[-–]\s*(?:\d|$|\n))"
# An optional "/10" or "out of 10"; any other denominator is captured and refused.
_SCALE = r"(?:\s*(?:/|out\s+of)\s*(?P<den>\d+))?"
_LABELS = {
    "relevance": r"(?:domain\s+)?relevan(?:ce|t)",
    "clarity": r"clarity|clear(?:ness)?",
    "language": r"language(?:\s+quality)?|writing(?:\s+quality)?",
}
_SEP = r"[\s*_:=\-–—]*(?:score|rating)?[\s*_:=\-–—]*(?:is\s+|of\s+)?"
_LABELLED = {
    name: re.compile(rf"\b(?:{label}){_SEP}{_NUMBER}{_SCALE}", re.IGNORECASE)
    for name, label in _LABELS.items()
}
_RANGE = re.compile(r"\d\s*[-–]\s*(?:\d|$)", re.MULTILINE)
_BARE = re.compile(rf"(?<![\w.\-–]){_NUMBER}{_SCALE}(?![\w.])", re.IGNORECASE)


@dataclass(frozen=True)
class Rating:
    """One document's three criteria (1-10 each); ``score`` is their mean."""

    relevance: float
    clarity: float
    language: float

    @property
    def score(self) -> float:
        return round((self.relevance + self.clarity + self.language) / 3, 4)


@dataclass(frozen=True)
class ParsedRating:
    """A rating, or the reason the answer could not be read."""

    rating: Rating | None
    error: str | None = None


def _value(match: re.Match[str]) -> float | None:
    """The number a match names on the 1-10 scale; None when out of range or rescaled."""
    raw, den = match.group("num").lower(), match.group("den")
    value = _WORDS[raw] if raw in _WORDS else float(raw)
    if den is not None and int(den) != 10:
        return None
    return value if LOW <= value <= HIGH else None


def parse_rating(text: str | None) -> ParsedRating:
    """Read relevance, clarity and language from a reply (see the module docstring)."""
    if not text or not text.strip():
        return ParsedRating(None, "empty reply")
    found: dict[str, float] = {}
    for name, pattern in _LABELLED.items():
        match = pattern.search(text)
        if match is not None:
            value = _value(match)
            if value is None:
                return ParsedRating(None, f"{name} out of range: {match.group(0)!r}")
            found[name] = value
    if len(found) < len(CRITERIA):
        # "Relevance: 8, 7, 9": the prefilled label, then three numbers in order.
        if _RANGE.search(text):
            return ParsedRating(None, f"a range, not a rating: {text.strip()[:80]!r}")
        bare = list(_BARE.finditer(text))
        if len(bare) != len(CRITERIA):
            missing = [c for c in CRITERIA if c not in found]
            return ParsedRating(None, f"missing {', '.join(missing)}")
        values = [_value(m) for m in bare]
        if any(v is None for v in values):
            return ParsedRating(None, f"a value out of range in {text.strip()[:80]!r}")
        found = dict(zip(CRITERIA, values, strict=True))  # type: ignore[arg-type]
    return ParsedRating(Rating(**found))


def is_parseable(text: str) -> bool:
    """True when :func:`parse_rating` reads all three criteria."""
    return parse_rating(text).rating is not None


def repair_prompt(previous: str) -> str:
    """The follow-up turn after an unreadable answer (the answer restarts at the prefill)."""
    return _REPAIR


TASK = register_task(
    LLMTask(
        TASK_NAME, is_parseable=is_parseable, repair_prompt=repair_prompt, repair_prefill=PREFILL
    )
)


def _document(text: str | None, max_chars: int) -> str:
    """The document block: cleaned, then cut to ``max_chars`` characters."""
    return data_block(clean_text(text)[:max_chars])


def build_messages(text: str, max_chars: int) -> tuple[dict[str, str], ...]:
    """System, user (the document cut to ``max_chars``) and the prefilled assistant turn."""
    return (
        {"role": "system", "content": _SYSTEM},
        {
            "role": "user",
            "content": _USER.format(note=DATA_NOTE, document=_document(text, max_chars)),
        },
        {"role": "assistant", "content": PREFILL},
    )


def rating_request(custom_id: str, text: str, max_chars: int, max_tokens: int, seed: int):
    """A greedy request (ratings should not depend on sampling luck)."""
    digest = hashlib.sha256(f"{seed}:{custom_id}".encode()).digest()
    return ChatRequest(
        custom_id=custom_id,
        messages=build_messages(text, max_chars),
        temperature=0.0,
        max_tokens=max_tokens,
        seed=int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF,
    )


@dataclass(frozen=True)
class Outcome:
    """What one rating request gave: the final reply, the first one when repaired."""

    custom_id: str
    parsed: ParsedRating
    response: ChatResponse
    first: ChatResponse | None = None

    @property
    def attempts(self) -> int:
        return 1 if self.first is None else 2


def _generate(engine: Engine, batch: Sequence[ChatRequest]) -> list[ChatResponse]:
    out = engine.generate(batch)
    if [r.custom_id for r in out] != [r.custom_id for r in batch]:
        raise RuntimeError(f"engine {engine.model_name} broke the contract: responses out of order")
    return out


def _repair(req: ChatRequest, bad_text: str) -> ChatRequest:
    history = req.messages[:-1] if req.prefill is not None else req.messages
    turns = (
        *history,
        {"role": "assistant", "content": clean_text(bad_text)},
        {"role": "user", "content": repair_prompt(bad_text)},
        {"role": "assistant", "content": PREFILL},
    )
    return dataclasses.replace(req, messages=turns)


def rate(engine: Engine, requests: Sequence[ChatRequest], batch_size: int) -> list[Outcome]:
    """Rate every request, repairing an unreadable answer once; one outcome per request."""
    outcomes: list[Outcome] = []
    for start in range(0, len(requests), batch_size):
        batch = list(requests[start : start + batch_size])
        firsts = _generate(engine, batch)
        parsed = [parse_rating(r.text) if not r.error else None for r in firsts]
        bad = [i for i, p in enumerate(parsed) if p is not None and p.rating is None]
        repaired: dict[int, ChatResponse] = {}
        if bad:
            again = _generate(engine, [_repair(batch[i], firsts[i].text) for i in bad])
            repaired = dict(zip(bad, again, strict=True))
        for i, (req, first) in enumerate(zip(batch, firsts, strict=True)):
            if first.error:
                outcomes.append(Outcome(req.custom_id, ParsedRating(None, first.error), first))
            elif i in repaired:
                final = repaired[i]
                result = parse_rating(final.text) if not final.error else None
                result = result or ParsedRating(None, final.error)
                outcomes.append(Outcome(req.custom_id, result, final, first))
            else:
                outcomes.append(Outcome(req.custom_id, parsed[i], first))  # type: ignore[arg-type]
    return outcomes
