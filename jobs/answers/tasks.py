"""Registers the ``answers`` LLM task: a reply is usable when it has a boxed final answer."""

from __future__ import annotations

from jobs.answers.parse import parse_answer
from jobs.answers.prepare import TASK as TASK_NAME
from jobs.answers.prompts import REPAIR_PREFILL, repair_prompt
from jobs.llm.tasks import LLMTask, register_task


def is_parseable(text: str) -> bool:
    """True when the reply ends in a complete, non-empty ``\\boxed{}`` answer."""
    return parse_answer(text).status == "ok"


TASK = register_task(
    LLMTask(
        TASK_NAME,
        is_parseable=is_parseable,
        repair_prompt=repair_prompt,
        repair_prefill=REPAIR_PREFILL,
    )
)
