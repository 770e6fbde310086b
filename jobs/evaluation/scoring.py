r"""Greedy answers, their verdicts, the held-out answer loss, and the metrics they add up to.

Generation goes through the pipeline's own engine (:class:`jobs.llm.transformers_engine.
TransformersEngine`): greedy, one user turn from :func:`jobs.train.chat.user_messages`, the
format the model was trained on. The predicted answer is the last complete ``\boxed{}``
(:func:`jobs.answers.parse.extract_boxed`); a reply without one is wrong (``no_answer``),
as in the Qwen-Math harness.

Held-out loss is the token-weighted mean NLL of the gold response given the question,
through the training chat template and the training loss module: the gold solution when the
set has one, else ``The final answer is \boxed{gold}``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from jobs.answers.parse import extract_boxed
from jobs.evaluation.verify import NO_ANSWER, TIMEOUT, Verifier
from jobs.llm.engine import ChatRequest, ChatResponse
from jobs.train.chat import gold_response, user_messages


def requests_for(items: Sequence[dict[str, Any]], max_new_tokens: int) -> list[ChatRequest]:
    """One greedy chat request per evaluation item."""
    return [
        ChatRequest(
            custom_id=str(item["id"]),
            messages=tuple(user_messages(item["question"])),
            temperature=0.0,
            top_p=1.0,
            max_tokens=max_new_tokens,
        )
        for item in items
    ]


def judge(
    items: Sequence[dict[str, Any]], responses: Sequence[ChatResponse], verifier: Verifier
) -> list[dict[str, Any]]:
    """One prediction row per item: the reply, the extracted answer and its verdict."""
    rows = []
    for item, resp in zip(items, responses, strict=True):
        predicted = None if resp.error else extract_boxed(resp.text)
        verdict = verifier.check(predicted, item["answer"])
        rows.append(
            {
                "id": str(item["id"]),
                "topic": item.get("topic", ""),
                "question": item["question"],
                "gold": item["answer"],
                "response": resp.text,
                "predicted": predicted,
                "correct": verdict.correct,
                "verdict": verdict.status,
                "detail": verdict.detail or resp.error,
                "finish_reason": resp.finish_reason,
                "completion_tokens": resp.completion_tokens,
            }
        )
    return rows


def heldout_loss(
    model: Any, tokenizer: Any, items: Sequence[dict[str, Any]], batch_size: int
) -> tuple[float, int]:
    """``(mean NLL per gold-response token, tokens)`` over the items."""
    import torch

    from jobs.train.data import collate, tokenize_examples
    from jobs.train.loss import answer_nll_module

    questions = [item["question"] for item in items]
    responses = [gold_response(item.get("solution") or item["answer"]) for item in items]
    max_len = int(getattr(model.config, "max_position_embeddings", 0) or 4096)
    data = tokenize_examples(tokenizer, questions, responses, max_len)
    device = next(model.parameters()).device
    loss_module = answer_nll_module(model)
    order = np.argsort(data.lengths, kind="stable")  # similar lengths together: less padding
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total = 0.0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = collate(data, order[start : start + batch_size], pad_id)
            total += float(loss_module(**{k: v.to(device) for k, v in batch.items()}).item())
    tokens = int(data.answer_lens.sum())
    return total / max(tokens, 1), tokens


def summarize(
    rows: Sequence[dict[str, Any]], loss: float, loss_tokens: int, eval_set: str
) -> dict[str, Any]:
    """The error rate (in %), the held-out loss and per-topic counts."""
    n = len(rows)
    correct = sum(r["correct"] for r in rows)
    verdicts = Counter(r["verdict"] for r in rows)
    by_topic: dict[str, dict[str, Any]] = defaultdict(lambda: {"num_examples": 0, "num_correct": 0})
    for r in rows:
        topic = by_topic[r["topic"] or "all"]
        topic["num_examples"] += 1
        topic["num_correct"] += bool(r["correct"])
    for topic in by_topic.values():
        topic["error_rate"] = 100.0 * (1 - topic["num_correct"] / topic["num_examples"])
    return {
        "error_rate": 100.0 * (1 - correct / n) if n else None,
        "heldout_loss": loss,
        "heldout_tokens": loss_tokens,
        "num_examples": n,
        "num_correct": correct,
        "num_no_answer": verdicts.get(NO_ANSWER, 0),
        "num_timeouts": verdicts.get(TIMEOUT, 0),
        "verdicts": dict(sorted(verdicts.items())),
        "by_topic": dict(sorted(by_topic.items())),
        "eval_set": eval_set,
    }
