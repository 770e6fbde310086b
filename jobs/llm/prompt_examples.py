"""Every worked example question of every prompt: what the dataset must never contain.

The question and answer prompts show the model a worked example, and a small model copies
it, verbatim or with other numbers. Each prompt module registers its example questions at
import (:func:`register_examples`); :func:`prompt_examples` imports every module of
``PROMPT_MODULES`` and returns them all, so an example added to a prompt is checked by
``clean_questions`` (``prompt_echo``) without further wiring. An example that a new prompt
version drops stays registered under the version that used it (register it from a
``RETIRED_EXAMPLES`` tuple in its module): questions generated with that version may still
be in the tables.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass

# Prompt modules whose prompts carry worked example questions.
PROMPT_MODULES = ("jobs.questions.prompts", "jobs.answers.prompts")


@dataclass(frozen=True)
class PromptExample:
    """One example question; ``name`` (``p-l2:2``) says which prompt and which example."""

    name: str
    prompt_version: str
    text: str


_REGISTRY: dict[str, PromptExample] = {}


def register_examples(prompt: str, prompt_version: str, texts: Iterable[str]) -> None:
    """Register the example questions of ``prompt``, named ``{prompt}:{1, 2, ...}``."""
    for i, text in enumerate(texts, start=1):
        example = PromptExample(f"{prompt}:{i}", prompt_version, text)
        known = _REGISTRY.get(example.name)
        if known is not None and known != example:
            raise ValueError(f"prompt example {example.name} registered twice, differently")
        _REGISTRY[example.name] = example


def prompt_examples() -> tuple[PromptExample, ...]:
    """Every registered example, in name order (importing the prompt modules first)."""
    for module in PROMPT_MODULES:
        importlib.import_module(module)
    return tuple(_REGISTRY[name] for name in sorted(_REGISTRY))
