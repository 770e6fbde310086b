"""Registers the ``concepts`` LLM task: a reply is usable when a topic has key concepts.

Small models often list topics until they run out of tokens and never reach the key
concepts. Such a reply is repaired by asking for the key concepts of the topics it named,
with the answer started at the ``<key_concept>`` block; the collector then parses the first
reply and the repair together (:func:`reply_text`), so the level, subject and topics of the
first reply and the concepts of the second make one extraction.
"""

from __future__ import annotations

from jobs.concepts.parse import ConceptResult, parse_concepts
from jobs.concepts.prepare import TASK as TASK_NAME
from jobs.concepts.prompts import EXAMPLE_KEYS
from jobs.llm.batchfile import ResponseLine
from jobs.llm.tasks import LLMTask, register_task

# How many of the first reply's topics the repair asks about (the paper allows 1-5).
REPAIR_TOPICS = 3
REPAIR_PREFILL = "<key_concept>Key Concepts:\n1."
_LAYOUT = (
    "Write one <key_concept> block: each topic's number and name with a colon, then its "
    "concepts numbered 1.1, 1.2, and so on. Output nothing else."
)


def has_concepts(result: ConceptResult) -> bool:
    """True when the extraction found at least one topic with key concepts."""
    return result.status == "ok" and any(t.concepts for t in result.topics)


def is_parseable(text: str) -> bool:
    """True when the reply yields a topic with key concepts that is not the prompt's example."""
    return has_concepts(parse_concepts(text, EXAMPLE_KEYS))


def concepts_repair(previous: str) -> str:
    """Ask for the key concepts of the topics named, else for topics with their concepts.

    Either way the answer is started at the ``<key_concept>`` block (:data:`REPAIR_PREFILL`),
    whose topic headers the parser also takes as topics.
    """
    result = parse_concepts(previous, EXAMPLE_KEYS)
    topics = [t.name for t in result.topics][:REPAIR_TOPICS] if result.status == "ok" else []
    if not topics:
        return (
            "Your reply is not in the required format. Name 1 to 3 topics of the article "
            f"and give 5 key concepts for each. {_LAYOUT}"
        )
    listed = "\n".join(f"{i}. {name}" for i, name in enumerate(topics, start=1))
    return (
        "Your reply lists topics but no key concepts. Give 5 key concepts for each of these "
        f"topics:\n{listed}\n{_LAYOUT}"
    )


def reply_text(line: ResponseLine) -> str:
    """What the collector parses: the first reply and its repair together, when repaired."""
    if line.attempts > 1 and line.first_attempt:
        return f"{line.first_attempt}\n{line.text}"
    return line.text or ""


TASK = register_task(
    LLMTask(
        TASK_NAME,
        is_parseable=is_parseable,
        repair_prompt=concepts_repair,
        repair_prefill=REPAIR_PREFILL,
    )
)
