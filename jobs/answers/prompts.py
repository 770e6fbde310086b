r"""The answer prompt (the paper publishes none) and its repair follow-up.

The model solves step by step and ends with ``\boxed{…}``, the convention of the Qwen-Math
models the paper used and of its evaluation code. A reply without a box gets one follow-up
in the same conversation asking only for the boxed final answer: that keeps the first reply's
reasoning, which the collector joins with the follow-up into one answer text. The question is
model output: it is stripped of chat control markers (:mod:`jobs.llm.prompt_data`) first.
"""

from __future__ import annotations

from jobs.llm.prompt_data import clean_text
from jobs.llm.prompt_examples import register_examples

# v3: the question stripped of chat control markers.
PROMPT_VERSION = "answer/v3"
SYSTEM = "You are a careful math tutor. You solve problems step by step."

_USER = r"""Solve the following problem. Reason step by step, then write the final answer as
\boxed{{answer}} on the last line.

Problem: {question}"""

_REPAIR = r"""You did not give the final answer in the required form. Reply with one line only:
The final answer is \boxed{...}"""


# One short worked exchange first: small models copy the shape of an answer they have seen,
# including the closing \boxed{} line, far more reliably than they follow a description.
EXAMPLE_QUESTION = "A shop sells pens at $3$ dollars each. How much do $7$ pens cost?"
EXAMPLE_ANSWER = r"""Each pen costs $3$ dollars, so $7$ pens cost $7 \times 3 = 21$ dollars.
The final answer is \boxed{21}"""
# The start of a repaired answer: the model only has to close the box.
REPAIR_PREFILL = r"The final answer is \boxed{"
register_examples("answer", PROMPT_VERSION, [EXAMPLE_QUESTION])


def build_messages(question: str) -> list[dict[str, str]]:
    """The chat messages asking for a worked solution of ``question``."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": _USER.format(question=EXAMPLE_QUESTION)},
        {"role": "assistant", "content": EXAMPLE_ANSWER},
        {"role": "user", "content": _USER.format(question=clean_text(question).strip())},
    ]


def repair_prompt(previous: str) -> str:
    """The follow-up user message after a reply without a complete ``\\boxed{}`` answer."""
    del previous  # the runner sends it after the model's own reply, in the same conversation
    return _REPAIR
