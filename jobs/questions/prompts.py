"""The question prompts (P-L1, P-L2, P-L3; paper Figs. 8, 9, 10, in our own words).

Every conversation is: the task with a short example input, a model answer for it in the
exact block format, the task again with the real input, and the start of the answer
(``<Q1>`` and its first field opened). A 135M-parameter model ignores a format it is only
told about, but it continues a format it has just seen answered and has been started on;
larger models are not hurt by the extra turn. The example turn always asks for the paper's
default count, so only the real turn changes with ``num_questions``. Questions copied from
an example are dropped by the parser (``EXAMPLE_KEYS``, ``EXAMPLE_KEYS_CONCEPTS``); every
example is registered (:mod:`jobs.llm.prompt_examples`), so ``clean_questions`` also
quarantines near copies of one (``prompt_echo``).

Documents and the model's concepts are data (:mod:`jobs.llm.prompt_data`): stripped of chat
control markers, and each article sits in a ``<<<ARTICLE>>>`` block after a line saying that
the block's text is not instructions. P-L3 gets its one or two reference articles in one
text slot (the paper does not say how they are joined): as ``<<<REFERENCE ARTICLE 1>>>`` /
``<<<REFERENCE ARTICLE 2>>>`` blocks, sharing ``max_chars`` so that a short article leaves
its unused share to the other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from jobs.llm.prompt_data import DATA_NOTE, clean_text, data_block
from jobs.llm.prompt_examples import register_examples
from jobs.questions.parse import question_key

# v3 / v2: documents and concepts stripped of control markers and delimited as data.
PROMPT_VERSION = "p-l1/v3"
PROMPT_VERSION_L2 = "p-l2/v2"
PROMPT_VERSION_L3 = "p-l3/v2"
NOT_SUITABLE = "NOT SUITABLE for creating questions"
SYSTEM = "You are a senior math instructor who writes exam questions."
TRUNCATION_MARK = "\n[article truncated]"
# The start of every answer; engines return it as part of the response text.
PREFILL = "<Q1>\nLevel: <"
CONCEPT_PREFILL = "<Q1>\nSelected Concepts: ["
MAX_REFERENCE_ARTICLES = 2

EXAMPLE_ARTICLE = (
    "The area of a circle of radius r is pi r^2. For example, a circle of radius 3 has "
    "area 9 pi. Exercise: find the area of a circle of radius 5."
)
EXAMPLE_QUESTIONS = (
    "Find the area of a circle of radius $5$.",
    "A circle has area $49\\pi$. What is its radius?",
)
EXAMPLE_ANSWER = (
    "<Q1>\nLevel: <middle_school>\nOrig_tag: <original_question>\n"
    f"Question: {EXAMPLE_QUESTIONS[0]}\n</Q1>\n"
    "<Q2>\nLevel: <high_school>\nOrig_tag: <newly_created>\n"
    f"Question: {EXAMPLE_QUESTIONS[1]}\n</Q2>"
)
EXAMPLE_KEYS = frozenset(question_key(q) for q in EXAMPLE_QUESTIONS)

_TASK = f"""{DATA_NOTE}
{{text}}

Write {{count}} based on the article above.
- If the article has no usable mathematics, reply only: {NOT_SUITABLE}
- Prefer the article's own questions (you may reword them), then add new, harder ones.
- Each question must stand alone: solvable without the article or the other questions.
- Ask for a computation with an exact answer. Write all mathematics in LaTeX.
Answer with one <Qn> block per question holding Level, Orig_tag and Question.
Level is one of <elementary>, <middle_school>, <high_school>, <college>, <grad_school>,
<competition>; Orig_tag is <original_question> (taken from the article) or <newly_created>."""

_REPAIR = f"""Your reply is not in the required format. Rewrite the same questions as <Q1>,
<Q2>, ... blocks holding Level, Orig_tag and Question, exactly like the example answer, and
output nothing else. If there is no math question, reply only: {NOT_SUITABLE}"""


def truncate_document(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, marking the cut."""
    if len(text) <= max_chars:
        return text
    keep = max(0, max_chars - len(TRUNCATION_MARK))
    return text[:keep].rstrip() + TRUNCATION_MARK


def article_block(text: str, max_chars: int, label: str = "ARTICLE") -> str:
    """A document as prompt data: cleaned, cut to ``max_chars`` characters, delimited."""
    return data_block(truncate_document(clean_text(text).strip(), max_chars), label)


def build_messages(text: str, max_chars: int, num_questions: int = 5) -> list[dict[str, str]]:
    """The chat messages asking for Level-1 questions about one document."""
    task = _TASK.replace("{count}", _count(num_questions))
    user = task.replace("{text}", article_block(text, max_chars))
    example = article_block(EXAMPLE_ARTICLE, len(EXAMPLE_ARTICLE))
    return _conversation(
        _TASK.replace("{count}", _count(5)).replace("{text}", example),
        EXAMPLE_ANSWER,
        user,
        PREFILL,
    )


def _count(num_questions: int) -> str:
    if num_questions < 1:
        raise ValueError(f"num_questions must be >= 1, got {num_questions}")
    return "1 math question" if num_questions == 1 else f"1 to {num_questions} math questions"


def _conversation(example: str, answer: str, user: str, prefill: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": example},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": user},
        {"role": "assistant", "content": prefill},
    ]


def repair_prompt(previous: str) -> str:
    """The follow-up user message after an unparseable reply.

    The shard runner sends it in the same conversation, after the model's own reply, so the
    failed output need not be quoted again.
    """
    del previous  # already in the conversation as the assistant turn
    return _REPAIR


# ---------------------------------------------------------------- P-L2 and P-L3

L2_EXAMPLE_TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Circle geometry", ("Area of a circle", "Circumference", "Radius", "Scaling of areas")),
)
L2_EXAMPLE_QUESTIONS = (
    (
        ("Area of a circle", "Circumference"),
        "A circular running track encloses an area of $400\\pi$ m$^2$. How many full laps "
        "must a runner complete to cover at least $1$ km?",
    ),
    (
        ("Radius", "Scaling of areas"),
        "A pizza of radius $15$ cm costs $12$ dollars and one of radius $20$ cm costs $20$ "
        "dollars. Which gives more area per dollar, and by what exact factor?",
    ),
)
L3_EXAMPLE_ARTICLES = (
    EXAMPLE_ARTICLE,
    "When all outcomes are equally likely, the probability of an event is the number of "
    "favourable outcomes divided by the number of possible outcomes.",
)
L3_EXAMPLE_TOPICS = ("Circle geometry", "Probability")
L3_EXAMPLE_CONCEPTS = (
    "Area of a circle",
    "Ratio of areas",
    "Equally likely outcomes",
    "Geometric probability",
)
L3_EXAMPLE_QUESTIONS = (
    (
        ("Area of a circle", "Geometric probability"),
        "A dart lands uniformly at random on a circular board of radius $10$ cm. What is the "
        "probability that it lands closer to the centre than to the edge of the board?",
    ),
)
EXAMPLE_KEYS_CONCEPTS = frozenset(
    question_key(q) for _, q in L2_EXAMPLE_QUESTIONS + L3_EXAMPLE_QUESTIONS
)
register_examples("p-l1", PROMPT_VERSION, EXAMPLE_QUESTIONS)
register_examples("p-l2", PROMPT_VERSION_L2, [q for _, q in L2_EXAMPLE_QUESTIONS])
register_examples("p-l3", PROMPT_VERSION_L3, [q for _, q in L3_EXAMPLE_QUESTIONS])

_FORMAT_CONCEPTS = """Answer with one <Qn> block per question: "Selected Concepts:" with the chosen
concepts in square brackets, then "Question:". Write all mathematics in LaTeX."""

_TASK_L2 = f"""{DATA_NOTE}
{{text}}

Topics and key concepts of the article:
{{concepts}}

Write {{count}} that combine the key concepts above.
- For each question choose 2 or 3 different key concepts; never repeat a combination of
concepts or a solution method, and spread the questions over the whole list.
- Use the article for settings, contexts and applications that go beyond the list.
- Make the questions hard (several computation steps, a real-world situation or abstract
reasoning), each with a different structure.
- Each question must stand alone and have an exact answer.
{_FORMAT_CONCEPTS}"""

_TASK_L3 = f"""{DATA_NOTE}
{{text}}

Topics: {{topics}}
Key concepts: {{concepts}}

Write {{count}} that fit the topics above.
- For each question choose 2 or 3 key concepts that belong to different topics; never
repeat a combination of concepts or a solution method.
- Draw on the reference articles together for wider settings and applications.
- Make the questions more complex, much harder and less common than textbook exercises.
- Each question must stand alone and have an exact answer.
{_FORMAT_CONCEPTS}"""

_SLOT = re.compile(r"\{(text|concepts|topics|count)\}")

_REPAIR_CONCEPTS = """Your reply is not in the required format. Rewrite the same questions as
<Q1>, <Q2>, ... blocks, each holding "Selected Concepts: [...]" and then "Question:", exactly
like the example answer, and output nothing else."""


def _concept_answer(questions: Sequence[tuple[Sequence[str], str]]) -> str:
    return "\n".join(
        f"<Q{i}>\nSelected Concepts: [{', '.join(concepts)}]\nQuestion: {q}\n</Q{i}>"
        for i, (concepts, q) in enumerate(questions, start=1)
    )


def _name(text: str) -> str:
    """A topic or concept name (model output) as prompt data: cleaned, on one line."""
    return " ".join(clean_text(text).split())


def _topic_lines(topics: Sequence[tuple[str, Sequence[str]]]) -> str:
    return "\n".join(
        f"{i}. {_name(name)}: {'; '.join(map(_name, concepts))}"
        if concepts
        else f"{i}. {_name(name)}"
        for i, (name, concepts) in enumerate(topics, start=1)
    )


def _fill(template: str, **values: str) -> str:
    """Fill ``{name}`` slots in one pass, so braces inside a value are never slots."""
    return _SLOT.sub(lambda m: values[m.group(1)], template)


def _l2_task(text: str, topics: Sequence[tuple[str, Sequence[str]]], count: str) -> str:
    return _fill(_TASK_L2, text=text, concepts=_topic_lines(topics), count=count)


def build_l2_messages(
    text: str,
    topics: Sequence[tuple[str, Sequence[str]]],
    max_chars: int,
    num_questions: int = 5,
) -> list[dict[str, str]]:
    """The chat messages asking for Level-2 questions: one document and its own topics.

    ``topics``: (topic, key concepts) pairs from the document's P-K extraction, in order.
    """
    if not topics:
        raise ValueError("a Level-2 prompt needs at least one topic")
    example_article = article_block(EXAMPLE_ARTICLE, len(EXAMPLE_ARTICLE))
    example = _l2_task(example_article, L2_EXAMPLE_TOPICS, _count(5))
    user = _l2_task(article_block(text, max_chars), topics, _count(num_questions))
    return _conversation(example, _concept_answer(L2_EXAMPLE_QUESTIONS), user, CONCEPT_PREFILL)


def reference_budgets(lengths: Sequence[int], max_chars: int) -> list[int]:
    """Split ``max_chars`` between articles of these lengths; short ones pass their rest on."""
    budgets = [0] * len(lengths)
    remaining = max_chars
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    for position, i in enumerate(order):
        budgets[i] = min(lengths[i], remaining // (len(lengths) - position))
        remaining -= budgets[i]
    return budgets


def join_references(texts: Sequence[str], max_chars: int) -> str:
    """The reference articles as labelled blocks, together within ``max_chars`` of text."""
    if not 1 <= len(texts) <= MAX_REFERENCE_ARTICLES:
        raise ValueError(f"a Level-3 prompt takes 1 or 2 reference articles, got {len(texts)}")
    stripped = [clean_text(t).strip() for t in texts]
    budgets = reference_budgets([len(t) for t in stripped], max_chars)
    return "\n\n".join(
        article_block(t, budget, f"REFERENCE ARTICLE {i}")
        for i, (t, budget) in enumerate(zip(stripped, budgets, strict=True), start=1)
    )


def _l3_task(references: str, topics: Sequence[str], concepts: Sequence[str], count: str) -> str:
    return _fill(
        _TASK_L3,
        text=references,
        topics="; ".join(map(_name, topics)),
        concepts="; ".join(map(_name, concepts)),
        count=count,
    )


def build_l3_messages(
    texts: Sequence[str],
    topics: Sequence[str],
    concepts: Sequence[str],
    max_chars: int,
    num_questions: int = 3,
) -> list[dict[str, str]]:
    """The chat messages asking for Level-3 questions about a graph-sampled concept set.

    ``topics`` and ``concepts``: the sampled topics and key concepts; ``texts``: the 1-2
    retrieved reference articles, sharing ``max_chars``.
    """
    if not concepts:
        raise ValueError("a Level-3 prompt needs at least one key concept")
    example_refs = join_references(L3_EXAMPLE_ARTICLES, 10_000)
    example = _l3_task(example_refs, L3_EXAMPLE_TOPICS, L3_EXAMPLE_CONCEPTS, _count(3))
    user = _l3_task(join_references(texts, max_chars), topics, concepts, _count(num_questions))
    return _conversation(example, _concept_answer(L3_EXAMPLE_QUESTIONS), user, CONCEPT_PREFILL)


def concept_repair_prompt(previous: str) -> str:
    """The follow-up user message after an unparseable P-L2/P-L3 reply (same conversation)."""
    del previous  # already in the conversation as the assistant turn
    return _REPAIR_CONCEPTS
