r"""The one chat format shared by training, generation at evaluation and held-out loss.

The user turn is the question plus the Qwen-Math instruction to reason step by step and box
the answer (the evaluation harness the paper names uses it); there is no system message, so
the tokenizer's template adds its default one. The assistant turn is the answer.

An example is encoded as ``prompt_ids + response_ids``, where ``prompt_ids`` is exactly what
the generation engine feeds the model (template with the assistant turn opened, tokenized
without extra special tokens) and ``response_ids`` the rest of the templated conversation
(the answer and the end-of-turn token). Tokenizing the two halves separately means training
sees the same prompt tokens as generation, whatever BPE would merge across the boundary.

A tokenizer without a chat template (base models such as Llama-3.2-1B) gets ChatML, the
format of the bundled SmolLM2; it is saved with the trained model, so evaluation uses it too.
"""

from __future__ import annotations

from typing import Any

INSTRUCTION = r"Please reason step by step, and put your final answer within \boxed{}."

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def user_messages(question: str) -> list[dict[str, str]]:
    """The conversation up to the model's turn for ``question``."""
    return [{"role": "user", "content": f"{question.strip()}\n{INSTRUCTION}"}]


def gold_response(answer: str) -> str:
    r"""The assistant text whose loss is measured for a gold ``answer``.

    A full solution (it already has a ``\boxed{}``) is used as is; a bare final answer gets
    the closing line the answer prompt asks the data generator for.
    """
    answer = answer.strip()
    if "\\boxed" in answer:
        return answer
    return f"The final answer is \\boxed{{{answer}}}"


def ensure_chat_template(tokenizer: Any) -> None:
    """Give a tokenizer without a chat template the ChatML one (and a pad token)."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


def prompt_text(tokenizer: Any, question: str) -> str:
    """The templated prompt with the assistant turn opened (what generation continues)."""
    return tokenizer.apply_chat_template(
        user_messages(question), tokenize=False, add_generation_prompt=True
    )


def encode_pairs(
    tokenizer: Any, questions: list[str], answers: list[str]
) -> tuple[list[list[int]], list[list[int]]]:
    """``(prompt_ids, response_ids)`` per example, batch-tokenized (the Rust fast path)."""
    prompts, responses = [], []
    for question, answer in zip(questions, answers, strict=True):
        prompt = prompt_text(tokenizer, question)
        full = tokenizer.apply_chat_template(
            [*user_messages(question), {"role": "assistant", "content": answer.strip()}],
            tokenize=False,
        )
        if not full.startswith(prompt):
            raise ValueError("chat template: the full conversation does not extend the prompt")
        prompts.append(prompt)
        responses.append(full[len(prompt) :])
    enc = tokenizer(prompts + responses, add_special_tokens=False)["input_ids"]
    return [list(x) for x in enc[: len(prompts)]], [list(x) for x in enc[len(prompts) :]]
