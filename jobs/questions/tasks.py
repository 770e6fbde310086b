"""Registers the ``questions_l1/_l2/_l3`` LLM tasks: how the runner checks and repairs a reply.

Levels 1 and 2 ask for up to 5 questions per prompt and Level-3 for up to 3 (the paper's
prompt limits); the parser keeps at most that many, whatever the config asks for, since the
config can only lower the count.
"""

from __future__ import annotations

from jobs.llm.tasks import LLMTask, register_task
from jobs.questions import prompts
from jobs.questions.parse import ParseResult, parse_concept_questions, parse_questions

MAX_QUESTIONS = {1: 5, 2: 5, 3: 3}


def parse_for_level(level: int, text: str | None) -> ParseResult:
    """Parse one reply of the given level's prompt."""
    if level == 1:
        return parse_questions(text, prompts.EXAMPLE_KEYS, max_questions=MAX_QUESTIONS[1])
    return parse_concept_questions(
        text, prompts.EXAMPLE_KEYS_CONCEPTS, max_questions=MAX_QUESTIONS[level]
    )


def _checker(level: int):
    def is_parseable(text: str) -> bool:
        """Fine when it yields questions or is a clean NOT SUITABLE; else repair it."""
        return parse_for_level(level, text).status != "unparseable"

    return is_parseable


TASKS = {
    1: register_task(
        LLMTask(
            "questions_l1",
            is_parseable=_checker(1),
            repair_prompt=prompts.repair_prompt,
            repair_prefill=prompts.PREFILL,
        )
    ),
    **{
        level: register_task(
            LLMTask(
                f"questions_l{level}",
                is_parseable=_checker(level),
                repair_prompt=prompts.concept_repair_prompt,
                repair_prefill=prompts.CONCEPT_PREFILL,
            )
        )
        for level in (2, 3)
    },
}
TASK = TASKS[1]
