"""Registers the ``questions_l1`` LLM task: how the shard runner checks and repairs a reply."""

from __future__ import annotations

from jobs.llm.tasks import LLMTask, register_task
from jobs.questions.parse import parse_questions
from jobs.questions.prepare import TASK as TASK_NAME
from jobs.questions.prompts import EXAMPLE_KEYS, PREFILL, repair_prompt


def is_parseable(text: str) -> bool:
    """A reply is fine when it yields questions or is a clean NOT SUITABLE; else repair it."""
    return parse_questions(text, EXAMPLE_KEYS).status != "unparseable"


TASK = register_task(
    LLMTask(
        TASK_NAME, is_parseable=is_parseable, repair_prompt=repair_prompt, repair_prefill=PREFILL
    )
)
