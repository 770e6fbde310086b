"""The topic and key-concept extraction prompt (P-K, paper Fig. 11, in our own words).

Same shape as the Level-1 prompt: the task with a short example article, a model answer for it
in the exact block layout, the task again with the real article, and the start of the answer
(``<level>``) for the model to continue. The example is about a narrow subject (Pick's
theorem) so that a copied example is easy to tell from a real answer; the parser drops it
using ``EXAMPLE_KEYS``. It has 2 topics of 5 concepts (the paper asks for 5-20 per topic)
to keep the prompt cheap to prefill on CPU. The article is data, in a ``<<<ARTICLE>>>`` block
stripped of chat control markers (:func:`jobs.questions.prompts.article_block`).
"""

from __future__ import annotations

from jobs.concepts.normalise import node_key
from jobs.llm.prompt_data import DATA_NOTE
from jobs.questions.prompts import article_block

# v2: the article stripped of control markers and delimited as data.
PROMPT_VERSION = "p-k/v2"
SYSTEM = "You are a senior math instructor who prepares teaching material."
# The start of every answer; engines return it as part of the response text.
PREFILL = "<level>"

EXAMPLE_ARTICLE = (
    "A lattice polygon has every vertex on a point with integer coordinates. Pick's theorem "
    "gives its area as I + B/2 - 1, where I counts the lattice points inside it and B those "
    "on its boundary. The shoelace formula finds the same area from the vertex coordinates."
)
EXAMPLE_LEVEL = "High School"
EXAMPLE_SUBJECT = "Geometry"
EXAMPLE_TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Pick's theorem",
        (
            "Lattice polygon",
            "Interior lattice points",
            "Boundary lattice points",
            "Area as I + B/2 - 1",
            "Lattice points on a segment via the gcd",
        ),
    ),
    (
        "Shoelace formula",
        (
            "Vertices listed in cyclic order",
            "Signed area of a polygon",
            "Cross terms of consecutive vertices",
            "Orientation of a polygon",
            "Absolute value of the signed sum",
        ),
    ),
)


def _answer(level: str, subject: str, topics: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    listed = "".join(f"{i}. {name}\n" for i, (name, _) in enumerate(topics, start=1))
    grouped = "".join(
        f"{i}. {name}:\n" + "".join(f"{i}.{j} {c}\n" for j, c in enumerate(concepts, start=1))
        for i, (name, concepts) in enumerate(topics, start=1)
    )
    return (
        f"<level>{level}</level>\n<subject>{subject}</subject>\n"
        f"<topic>Topics:\n{listed}</topic>\n<key_concept>Key Concepts:\n{grouped}</key_concept>"
    )


EXAMPLE_ANSWER = _answer(EXAMPLE_LEVEL, EXAMPLE_SUBJECT, EXAMPLE_TOPICS)
EXAMPLE_KEYS = frozenset(
    node_key(name) for topic, concepts in EXAMPLE_TOPICS for name in (topic, *concepts)
)

_TASK = f"""{DATA_NOTE}
{{text}}

Extract teaching material from the article above; include concepts that are uncommon but
important.
1. Level: one of Primary School, Middle School, High School, College, Graduate School,
Competition, Other.
2. Subject: the area of mathematics, for example Calculus.
3. Topics: 1 to 5 topics, named with standard academic terms.
4. Key concepts: 5 to 20 for each topic.
Answer with four blocks: <level>, <subject>, <topic> holding "Topics:" and a numbered list,
and <key_concept> holding "Key Concepts:" and, for each topic, its number and name with a
colon, then its concepts numbered 1.1, 1.2, and so on."""


def build_messages(text: str, max_chars: int) -> list[dict[str, str]]:
    """The chat messages asking for the topics and key concepts of one document."""
    user = _TASK.replace("{text}", article_block(text, max_chars))
    example = _TASK.replace("{text}", article_block(EXAMPLE_ARTICLE, len(EXAMPLE_ARTICLE)))
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": example},
        {"role": "assistant", "content": EXAMPLE_ANSWER},
        {"role": "user", "content": user},
        {"role": "assistant", "content": PREFILL},
    ]
