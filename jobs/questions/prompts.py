"""The Level-1 question prompt (P-L1, paper Fig. 8, in our own words) and its repair prompt.

The conversation is: the task with a short example article, a model answer for it in the
exact block format, the task again with the real article, and the start of the answer
(``<Q1>`` and the ``Level`` tag opened). A 135M-parameter model ignores a format it is only
told about, but it continues a format it has just seen answered and has been started on;
larger models are not hurt by the extra turn. Questions copied from the example are dropped
by the parser (``EXAMPLE_KEYS``).
"""

from __future__ import annotations

from jobs.questions.parse import question_key

PROMPT_VERSION = "p-l1/v2"
NOT_SUITABLE = "NOT SUITABLE for creating questions"
SYSTEM = "You are a senior math instructor who writes exam questions."
TRUNCATION_MARK = "\n[article truncated]"
# The start of every answer; engines return it as part of the response text.
PREFILL = "<Q1>\nLevel: <"

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

_TASK = f"""Article:
{{text}}

Write 1 to 5 math questions based on the article above.
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


def build_messages(text: str, max_chars: int) -> list[dict[str, str]]:
    """The chat messages asking for Level-1 questions about one document."""
    user = _TASK.replace("{text}", truncate_document(text.strip(), max_chars))
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": _TASK.replace("{text}", EXAMPLE_ARTICLE)},
        {"role": "assistant", "content": EXAMPLE_ANSWER},
        {"role": "user", "content": user},
        {"role": "assistant", "content": PREFILL},
    ]


def repair_prompt(previous: str) -> str:
    """The follow-up user message after an unparseable reply.

    The shard runner sends it in the same conversation, after the model's own reply, so the
    failed output need not be quoted again.
    """
    del previous  # already in the conversation as the assistant turn
    return _REPAIR
