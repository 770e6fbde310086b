"""LLM task registry: what the shard runner needs to know about a task's outputs.

A stage that owns a task (concepts, questions, answers) registers an :class:`LLMTask` in its own
``tasks`` module; :func:`get_task` imports that module by task name on first use, so the
runner never imports stage code it does not need. :func:`generation_for` says which engine
settings a task runs with.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.config import GenerationConfig, PipelineConfig

log = logging.getLogger(__name__)

# Tasks whose config section may name an engine of their own (``<section>.engine``); every
# other task uses ``generation``. "refine" is the in-process rater (jobs.filter.refine and
# jobs.filter.positives), not a sharded task, but its engine is chosen the same way.
ENGINE_SECTIONS: dict[str, str] = {"answers": "answers", "refine": "refine"}

# Which module registers which task; imported lazily by get_task.
TASK_MODULES: dict[str, str] = {
    "concepts": "jobs.concepts.tasks",
    "questions_l1": "jobs.questions.tasks",
    "questions_l2": "jobs.questions.tasks",
    "questions_l3": "jobs.questions.tasks",
    "answers": "jobs.answers.tasks",
}

_REGISTRY: dict[str, LLMTask] = {}


def generation_for(cfg: PipelineConfig, task: str) -> GenerationConfig:
    """The engine settings ``task`` runs with: its section's ``engine``, else ``generation``.

    The one place that decides it: the engine a shard builds, its model fingerprint (the
    shard key), the sampling defaults and the model recorded with its requests all come
    from this one GenerationConfig, so they cannot disagree.
    """
    section = ENGINE_SECTIONS.get(task)
    own = getattr(getattr(cfg, section), "engine", None) if section else None
    return own or cfg.generation


def generation_key(cfg: PipelineConfig, task: str) -> str:
    """Where :func:`generation_for`'s settings live in the config, for messages."""
    own = generation_for(cfg, task) is not cfg.generation
    return f"{ENGINE_SECTIONS[task]}.engine" if own else "generation"


@dataclass(frozen=True)
class LLMTask:
    """A named generation task.

    ``is_parseable(text)`` says whether the stage can parse an answer; when it says no, the
    runner asks once more with ``repair_prompt(bad_text)`` as a follow-up user message.
    Tasks without a parser are generated once and never repaired.
    """

    name: str
    is_parseable: Callable[[str], bool] | None = None
    repair_prompt: Callable[[str], str] | None = None
    # The start of the repaired answer (see ChatRequest.prefill), e.g. "The answer is \\boxed{".
    repair_prefill: str | None = None

    def __post_init__(self) -> None:
        if (self.is_parseable is None) != (self.repair_prompt is None):
            raise ValueError(
                f"task {self.name!r}: is_parseable and repair_prompt go together (both or none)"
            )

    @property
    def repairs(self) -> bool:
        return self.is_parseable is not None


def register_task(task: LLMTask) -> LLMTask:
    """Register (or replace, e.g. on module reload) a task under its name."""
    _REGISTRY[task.name] = task
    return task


def unregister_task(name: str) -> None:
    """Forget a task (tests)."""
    _REGISTRY.pop(name, None)


def get_task(name: str) -> LLMTask:
    """The registered task, importing its owning module first if needed.

    A task in :data:`TASK_MODULES` must be registered by its module (a missing module or
    registration is an error, since running it without its parser would skip repairs).
    Any other name is a plain task without parser or repair.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    module = TASK_MODULES.get(name)
    if module is None:
        log.info("task %r has no registered parser: generating without repair", name)
        return LLMTask(name)
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            raise KeyError(f"task {name!r}: its module {module} is not installed") from exc
        raise
    if name not in _REGISTRY:
        raise KeyError(f"task {name!r}: module {module} did not register it")
    return _REGISTRY[name]
