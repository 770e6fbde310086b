"""Parse P-K outputs (level, subject, topics, key concepts), tolerating garbled formats.

The expected output is ``<level>``, ``<subject>``, ``<topic>Topics: 1. …</topic>`` and
``<key_concept>Key Concepts: 1. Topic: 1.1 … 2. Topic: 2.1 …</key_concept>``. Small models
drop tags, drop the labels, number lists in every style, bold the topic headers, put the
concepts of a topic on one comma-separated line, or write the whole answer without tags.

Decisions the paper leaves open:
- A key-concept group is matched to a listed topic by ``node_key``; a group whose header
  names no listed topic takes the listed topic with the same number ("2. Integrals" → the
  second topic) when no other group claimed that topic, and otherwise is added as a new
  topic after the listed ones. Concepts under no header go, in order, to listed topics that
  no group claimed. A topic without concepts is kept.
- Duplicates are dropped by ``node_key``: topics across the answer, concepts within their
  topic (the same concept under two topics is a real co-occurrence and is kept).
- Everything past ``MAX_TOPICS`` topics or ``MAX_CONCEPTS_PER_TOPIC`` concepts is dropped.
- ``exclude`` (the prompt example's keys) drops items only when the answer repeats at least
  ``MIN_EXAMPLE_MATCHES`` of them: one shared name is a coincidence (a real article may be
  about the example's subject), two or more are a copied example.
- A bare "1.5" starting a line is an outline number only where the list shows that style of
  numbering (another line starts with "1.4" or "2.1", or "1. Sets:" heads a lone "1.1 …");
  elsewhere it is part of the name ("1.5 times rule"). "1.", "1)", "1.1." are always markers.
Every dropped item is counted in ``skipped`` by reason; the parser never raises.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from jobs.concepts.normalise import MAX_NAME_CHARS, display_name, node_key, split_names
from jobs.concepts.prompts import EXAMPLE_KEYS
from jobs.questions.parse import normalise_level

EDU_LEVELS = (
    "primary_school",
    "middle_school",
    "high_school",
    "college",
    "graduate_school",
    "competition",
    "other",
)
MAX_TOPICS = 5
MAX_CONCEPTS_PER_TOPIC = 20
MIN_EXAMPLE_MATCHES = 2
# 5 topics of 20 concepts fit in far less; the rest of a longer reply is a loop.
MAX_INPUT_CHARS = 60_000

_LEVEL_FROM_L1 = {"elementary": "primary_school", "grad_school": "graduate_school"}
_SECTION_NAMES = (
    r"(?P<level>(?:edu(?:cation(?:al)?)?[ \t_-]*)?level)|(?P<subject>subject(?:[ \t_-]*area)?)"
    r"|(?P<topic>topics?)|(?P<key_concept>(?:key[ \t_-]*)?concepts?)"
)
# "<topic>:" is the template's placeholder inside a list, not a section tag.
_TAG = re.compile(rf"<\s*(?P<close>/)?\s*(?:{_SECTION_NAMES})\s*>(?![ \t]*:)", re.I)
_LABEL = re.compile(
    r"^[ \t>#*-]*(?:\*\*|__)?(?:(?P<level>(?:edu(?:cation(?:al)?)?[ \t_-]*)?level)"
    r"|(?P<subject>subject(?:[ \t_-]*area)?)|(?P<topic>topics)"
    r"|(?P<key_concept>key[ \t_-]*concepts?|concepts))(?:\*\*|__)?[ \t]*[:：](?:\*\*|__)?",
    re.I | re.M,
)
_KINDS = ("level", "subject", "topic", "key_concept")
# A label repeated right after its tag: "<topic>Topics: 1. …".
_LEAD_LABEL = re.compile(
    r"^[ \t\n>#*-]*(?:\*\*|__)?(?:(?:edu(?:cation(?:al)?)?[ \t_-]*)?level|subject(?:[ \t_-]*area)?"
    r"|topics?|key[ \t_-]*concepts?|concepts?)(?:\*\*|__)?[ \t]*[:：](?:\*\*|__)?",
    re.I,
)
_FENCE = re.compile(r"^[ \t]*```[\w-]*[ \t]*$", re.M)
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_BOLD = re.compile(r"\*\*|__")
# The list marker at the start of a line, with the bold a model may wrap around it.
_MARKER = re.compile(
    r"^(?:\*\*|__)?[ \t]*(?:"
    r"(?P<topic>topic)(?:[ \t]*(?P<tnum>\d{1,3})[ \t]*[:.)\-–—]?|[ \t]*[:\-–—])"
    r"|(?P<subopen>\()?(?P<sub>\d{1,3}(?:\.\d{1,3})+)(?P<subend>[.):]?\)?)(?=\s|$|\*)"
    r"|\(?(?P<num>\d{1,3})(?:[.):]\)?|\))(?=\s|$|\*)"
    r"|(?P<bullet>[-*+•·‣◦▪●○■□➢➤►–—]|\(?(?:[a-z]|[ivx]{1,4})[.)])(?=\s|$))"
    r"[ \t]*(?:\*\*|__)?",
    re.I,
)
# Numbers inside a line that start a new item: "1. A 2. B", "1.1 x 1.2 y", "• a • b".
_INLINE = re.compile(r"(?<!\S)(?:(?P<sub>\d{1,3}(?:\.\d{1,3})+)[.)]?|(?P<num>\d{1,3})[.)]|•)(?=\s)")
_HEADER_END = re.compile(r"(?:[:：]|\s[-–—])\s*$")
_SEPARATOR = re.compile(r"[:：]\s+|\s[-–—]\s+")
_WORD = re.compile(r"[^\W\d_]{2}")
_CHATTER = re.compile(r"^(?:here (?:is|are)|sure|okay|certainly|note|i )\b|\?$", re.I)
_PLACEHOLDER = re.compile(r"^<[^<>]*>$|^(?:topic|concept|key concept)s?$", re.I)


@dataclass(frozen=True)
class ParsedTopic:
    """A topic and its key concepts, as cleaned display strings (original wording and case)."""

    name: str
    concepts: tuple[str, ...]


@dataclass(frozen=True)
class ConceptResult:
    """``status``: ``ok`` (at least one topic) or ``unparseable``; ``skipped``: dropped items."""

    status: str
    edu_level: str | None
    subject: str | None
    topics: tuple[ParsedTopic, ...] = ()
    error: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class _Item:
    kind: str  # "topic" ("Topic 2:"), "num" ("2."), "sub" ("2.1"), "bullet", "plain"
    number: int | None
    indent: int
    text: str
    emphasised: bool = False


@dataclass
class _Group:
    name: str | None
    number: int | None
    concepts: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- sections


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
    if text.isascii():  # the only "C" characters in ASCII are the controls
        text = _ASCII_CONTROL.sub("", text)
    else:
        text = "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch)[0] != "C")
    return _FENCE.sub("", text)


def _kind(match: re.Match) -> str:
    return next(k for k in _KINDS if match.group(k) is not None)


def _sections(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """Section texts by kind, and the text outside every section.

    A tag opens or closes a section. A line-start label ("Topics:") opens one when no tag is
    open, after a level or subject tag, or (for key concepts) after an unclosed topic tag;
    inside an open list tag it is text. Level and subject keep one line; the rest is loose.
    """
    events = [(m.start(), m.end(), m.group("close") is None, _kind(m)) for m in _TAG.finditer(text)]
    events += [(m.start(), m.end(), None, _kind(m)) for m in _LABEL.finditer(text)]
    events.sort(key=lambda e: (e[0], e[2] is None))
    found: dict[str, list[str]] = {k: [] for k in _KINDS}
    loose: list[str] = []
    current: tuple[str, int, bool] | None = None  # kind, content start, opened by a tag
    pos = 0

    def emit(end: int) -> None:
        if current is None:
            loose.append(text[pos:end])
            return
        kind, start, _ = current
        body = _LEAD_LABEL.sub("", text[start:end], count=1)
        if kind in ("level", "subject"):
            first, _, rest = body.lstrip(" \t\n").partition("\n")
            body = first
            loose.append(rest)
        found[kind].append(body)

    for start, end, opens, kind in events:
        if start < pos:
            continue  # overlaps the previous event
        in_list_tag = current is not None and current[2] and current[0] in ("topic", "key_concept")
        if opens is None and in_list_tag and (current[0], kind) != ("topic", "key_concept"):
            continue
        emit(start)
        current = None if opens is False else (kind, end, opens is True)
        pos = end
    emit(len(text))
    return found, loose


def _first_line(parts: list[str]) -> str:
    for part in parts:
        for line in part.splitlines():
            if line.strip(" \t*_#>-"):
                return line.strip()
    return ""


def _level(parts: list[str]) -> str | None:
    value = _first_line(parts)
    level = normalise_level(value)
    if level is not None:
        return _LEVEL_FROM_L1.get(level, level)
    return "other" if re.match(r"[\s<>*_\"'`]*other\b", value, re.I) else None


# ---------------------------------------------------------------- list items


def _accept_inline(match: re.Match, state: dict[str, tuple[int, ...]]) -> bool:
    """An inline number starts an item only if it continues the list's numbering."""
    if match.group("sub"):
        number = tuple(int(x) for x in match.group("sub").split("."))
        last = state.get("sub")
        ok = number[-1] == 1 or (
            last is not None and number[:-1] == last[:-1] and number[-1] == last[-1] + 1
        )
        if ok:
            state["sub"] = number
        return ok
    if match.group("num"):
        number = int(match.group("num"))
        ok = number == 1 or number == state.get("num", (0,))[0] + 1
        if ok:
            state["num"] = (number,)
        return ok
    return True


def _bare_sub(marker: re.Match | None) -> tuple[int, ...] | None:
    """The number of a "1.5" marker without "." / ")" / "(" around it, else None."""
    if (
        marker is None
        or not marker.group("sub")
        or marker.group("subopen")
        or marker.group("subend")
    ):
        return None
    return tuple(int(x) for x in marker.group("sub").split("."))


def _outline_numbers(markers: list[re.Match | None]) -> frozenset[tuple[int, ...]]:
    """The bare "1.5" line starts that the list's own numbering shows to be outline numbers.

    "1.1." or "(1.1)" is always a marker, but a bare "1.5 times rule" may be a name. It is a
    marker when another line of the list starts with a sub-number as deep ("1.4", "2.1"), or
    when it opens the sub-list of a numbered line ("1. Sets:" then a lone "1.1 Union").
    """
    subs: list[tuple[int, ...]] = []
    nums: set[int] = set()
    for marker in markers:
        if marker and marker.group("sub"):
            subs.append(tuple(int(x) for x in marker.group("sub").split(".")))
        elif marker and (marker.group("num") or marker.group("tnum")):
            nums.add(int(marker.group("num") or marker.group("tnum")))
    depths = Counter(len(number) for number in subs)
    return frozenset(
        number
        for number in subs
        if depths[len(number)] > 1 or (len(number) == 2 and number[1] == 1 and number[0] in nums)
    )


def _line(raw: str) -> tuple[int, bool, str, re.Match | None]:
    """A list line's indent, whether it is a markdown heading, its text and its list marker."""
    body = raw.expandtabs(4)
    indent = len(body) - len(body.lstrip())
    body = body.strip()
    heading = body.startswith("#")
    body = body.lstrip("#").strip()
    return indent, heading, body, _MARKER.match(body)


def _items(section: str) -> list[_Item]:
    items: list[_Item] = []
    state: dict[str, tuple[int, ...]] = {}
    lines = [_line(raw) for raw in section.split("\n")]
    outline = _outline_numbers([marker for *_, marker in lines])
    for indent, heading, body, marker in lines:
        if not body.strip("*_ "):
            continue
        starts_bold = body.startswith(("**", "__"))
        bare = _bare_sub(marker)
        if bare is not None and bare not in outline:
            marker = None  # "1.5 times rule": the number is part of the name
        kind, number, rest = "plain", None, body
        if marker:
            rest = body[marker.end() :]
            kind = next(k for k in ("topic", "sub", "num", "bullet") if marker.group(k) is not None)
            if marker.group("sub"):
                state["sub"] = tuple(int(x) for x in marker.group("sub").split("."))
            elif marker.group("num"):
                number = int(marker.group("num"))
                state["num"] = (number,)
            elif marker.group("tnum"):
                number = int(marker.group("tnum"))
        bare = rest.rstrip().rstrip(":：").rstrip()
        emphasised = heading or (
            (starts_bold or rest.startswith(("**", "__"))) and bare.endswith(("**", "__"))
        )
        rest = _BOLD.sub("", rest)
        cuts = [m for m in _INLINE.finditer(rest) if m.start() > 0 and _accept_inline(m, state)]
        first = rest[: cuts[0].start()] if cuts else rest
        items.append(_Item(kind, number, indent, first.strip(), emphasised))
        for i, m in enumerate(cuts):
            end = cuts[i + 1].start() if i + 1 < len(cuts) else len(rest)
            sub_kind = "sub" if m.group("sub") else "num" if m.group("num") else "bullet"
            sub_number = int(m.group("num")) if m.group("num") else None
            items.append(_Item(sub_kind, sub_number, indent, rest[m.end() : end].strip()))
    return [it for it in items if it.text or it.kind == "topic"]


def _header_kind(items: list[_Item]) -> str | None:
    """Which numbered kind marks topic headers when a list mixes two levels."""
    kinds = [it.kind for it in items]
    if "num" in kinds and "sub" in kinds:
        return "num"
    if "num" in kinds and "bullet" in kinds:
        return "num" if kinds.index("num") < kinds.index("bullet") else "bullet"
    return None


def _split_description(text: str) -> tuple[str, str]:
    """Split "Name: text" or "Name - text" into both parts; not "f: A → B" or "I + B/2 - 1"."""
    for m in _SEPARATOR.finditer(text):
        head, rest = text[: m.start()], text[m.end() :]
        if _WORD.search(head) and rest[:1] and not rest[0].isdigit():
            return head, rest
    return text, ""


def _groups(
    items: list[_Item], known: frozenset[str], plain_headers: bool = True, colons: bool = True
) -> list[_Group]:
    """Group list items under their topic headers; concepts before any header are unnamed.

    An item is a header when it says so ("Topic 2:", a trailing colon or dash, bold or a
    markdown heading), when it has the outer numbering of a two-level list, when the next
    item is indented under it, when it is a plain line followed by a list, when it names a
    known topic, or when it is "Name: a, b, c" (a topic with its concepts on one line).
    ``plain_headers=False`` (the topic list): a plain line before a list is an item, since
    there it is usually the subject written as a heading. ``colons=False``: a trailing colon
    does not make a header (for lists where the model ended every line with one).
    """
    header_kind = _header_kind(items)
    groups: list[_Group] = []
    for i, item in enumerate(items):
        nxt = items[i + 1] if i + 1 < len(items) else None
        ends_open = bool(_HEADER_END.search(item.text))
        head, rest = item.text, ""
        if ends_open:
            head = _HEADER_END.sub("", item.text)
        else:
            head, rest = _split_description(item.text)
        inline = split_names(rest, commas=True)
        may_head = item.kind != "sub" and (
            header_kind in (None, item.kind) or item.kind in ("topic", "plain")
        )
        header = may_head and (
            item.kind in ("topic", header_kind)
            or item.emphasised
            or (ends_open and colons)
            or (nxt is not None and nxt.indent > item.indent)
            or (
                plain_headers
                and item.kind == "plain"
                and nxt is not None
                and nxt.kind not in ("plain", "topic")
            )
            or node_key(head) in known
            or len(inline) >= 2
        )
        if header:
            groups.append(_Group(head.strip() or None, item.number, inline))
            continue
        if not groups:
            groups.append(_Group(None, None))
        # A "Name: description" concept keeps its name; plain lines may be comma lists.
        groups[-1].concepts.extend(split_names(head, commas=item.kind == "plain"))
    return groups


def _key_groups(section: str, known: frozenset[str]) -> list[_Group]:
    items = _items(section)
    groups = _groups(items, known)
    if len(groups) > 1 and 2 * sum(not g.concepts for g in groups) > len(groups):
        # Mostly headers without concepts: the colons end concept lines, not topic headers.
        groups = _groups(items, known, colons=False)
    return groups


# ---------------------------------------------------------------- assembly


@dataclass
class _Topic:
    name: str
    key: str
    concepts: list[str] = field(default_factory=list)
    claimed: bool = False


def _name_problem(name: str, key: str) -> str | None:
    if not any(ch.isalpha() for ch in key):
        return "empty_name"  # nothing, or only a number: a cut-off list marker
    if len(name) > MAX_NAME_CHARS:
        return "too_long"
    if _CHATTER.search(name):
        return "chatter"
    if _PLACEHOLDER.search(name):
        return "placeholder"
    return None


def _topic_list(found: dict[str, list[str]], skipped: Counter) -> tuple[list[_Topic], list[_Group]]:
    """The listed topics, plus any topic-with-concepts groups written inside the list."""
    topics: dict[str, _Topic] = {}
    extra: list[_Group] = []
    for part in found["topic"]:
        for group in _groups(_items(part), frozenset(), plain_headers=False):
            names = [group.name] if group.name is not None else group.concepts
            if group.name is not None:
                extra.append(group)
            for raw in names:
                name = display_name(raw)
                key = node_key(name)
                problem = _name_problem(name, key)
                if problem:
                    skipped[problem] += 1
                elif key in topics:
                    skipped["duplicate"] += 1
                else:
                    topics[key] = _Topic(name, key)
    return list(topics.values()), extra


def _attach(topics: list[_Topic], groups: list[_Group], skipped: Counter) -> None:
    """Give every key-concept group a topic (see the module docstring for the rules)."""
    by_key = {t.key: t for t in topics}
    listed = list(topics)
    pending: list[_Group] = []
    for group in groups:
        key = node_key(display_name(group.name or ""))
        if key and key in by_key:
            by_key[key].concepts.extend(group.concepts)
            by_key[key].claimed = True
        else:
            pending.append(group)
    unnamed: list[_Group] = []
    for group in pending:
        number = group.number
        if group.name is None and number is None:
            unnamed.append(group)
            continue
        if number is not None and 0 < number <= len(listed) and not listed[number - 1].claimed:
            listed[number - 1].concepts.extend(group.concepts)
            listed[number - 1].claimed = True
            continue
        name = display_name(group.name or "")
        key = node_key(name)
        problem = _name_problem(name, key)
        if problem:
            skipped[problem] += 1
            unnamed.append(_Group(None, None, group.concepts))
            continue
        if key in by_key:  # a second group for a topic added above
            by_key[key].concepts.extend(group.concepts)
            continue
        by_key[key] = _Topic(name, key, list(group.concepts), claimed=True)
        topics.append(by_key[key])
    free = [t for t in listed if not t.claimed]
    for group in unnamed:
        if free:
            free.pop(0).concepts.extend(group.concepts)
        elif group.concepts:
            skipped["orphan_concept"] += len(group.concepts)


def _drop_keys(topics: list[_Topic], exclude: frozenset[str]) -> frozenset[str]:
    if not exclude:
        return frozenset()
    keys = {t.key for t in topics} | {node_key(c) for t in topics for c in t.concepts}
    matches = frozenset(keys & exclude)
    return matches if len(matches) >= min(MIN_EXAMPLE_MATCHES, len(exclude)) else frozenset()


def _finish(
    topics: list[_Topic], drop: frozenset[str], skipped: Counter
) -> tuple[ParsedTopic, ...]:
    out: list[ParsedTopic] = []
    for topic in topics:
        if topic.key in drop:
            skipped["copied_example"] += 1 + len(topic.concepts)
            continue
        if len(out) >= MAX_TOPICS:
            skipped["over_limit"] += 1 + len(topic.concepts)
            continue
        kept: list[str] = []
        seen: set[str] = set()
        for raw in topic.concepts:
            name = display_name(raw)
            key = node_key(name)
            reason = _name_problem(name, key)
            if reason is None and key in drop:
                reason = "copied_example"
            elif reason is None and key in seen:
                reason = "duplicate"
            elif reason is None and len(kept) >= MAX_CONCEPTS_PER_TOPIC:
                reason = "over_limit"
            if reason:
                skipped[reason] += 1
                continue
            seen.add(key)
            kept.append(name)
        out.append(ParsedTopic(topic.name, tuple(kept)))
    return tuple(out)


def parse_concepts(text: str | None, exclude: frozenset[str] = frozenset()) -> ConceptResult:
    """Parse one P-K output; ``exclude`` holds ``node_key``s of the prompt's example."""
    skipped: Counter = Counter()
    cleaned = _clean(str(text or ""))
    if len(cleaned) > MAX_INPUT_CHARS:
        cleaned = cleaned[:MAX_INPUT_CHARS]
        skipped["input_truncated"] += 1
    found, loose = _sections(cleaned)
    if not found["topic"] and not found["key_concept"]:
        # No list section at all: read whatever is outside level/subject as key concepts.
        found["key_concept"] = loose
    topics, extra = _topic_list(found, skipped)
    known = frozenset(t.key for t in topics)
    groups = extra + [g for part in found["key_concept"] for g in _key_groups(part, known)]
    _attach(topics, groups, skipped)
    parsed = _finish(topics, _drop_keys(topics, exclude), skipped)
    counts = dict(sorted(skipped.items()))
    level = _level(found["level"])
    subject = display_name(_first_line(found["subject"])) or None
    if subject is not None and len(subject) > MAX_NAME_CHARS:
        subject = None
    if parsed:
        return ConceptResult("ok", level, subject, parsed, None, counts)
    if counts.get("copied_example") and set(counts) <= {"copied_example", "duplicate"}:
        error = "only the prompt's example topics and concepts"
    elif counts:
        error = "no usable topic (" + ", ".join(f"{k}={v}" for k, v in counts.items()) + ")"
    else:
        error = "no topic or key concept found"
    return ConceptResult("unparseable", level, subject, (), error, counts)


def is_parseable(text: str | None) -> bool:
    """Whether a P-K reply yields a topic that is not the prompt's example (else repair it)."""
    return parse_concepts(text, EXAMPLE_KEYS).status == "ok"
