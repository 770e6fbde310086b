"""The answer-token NLL as one module, so DDP and torch.compile wrap exactly what trains.

For models whose logits are just ``lm_head(hidden)`` (the Llama family and its close
relatives), the vocabulary projection runs only at labelled positions: prompt tokens need no
logits. With a 49K-128K vocabulary that projection is most of a small model's work and most
of the activation memory (fp32 logits of 16 x 2,048 tokens x 128K vocab are 16 GB). Other
architectures (logit soft-capping, scaled heads) take the full-logits path.
"""

from __future__ import annotations

from typing import Any

from jobs.train.data import IGNORE_INDEX

# Model types whose forward is backbone -> lm_head with nothing in between.
PLAIN_HEAD_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "olmo2", "smollm3"})


def answer_nll_module(model: Any, compile: bool = False) -> Any:
    """A module ``(input_ids, attention_mask, labels) -> summed NLL`` of the labelled tokens.

    Labels are aligned with the inputs (``labels[t]`` is the token at ``t``); position ``t``
    predicts ``labels[t + 1]``. ``compile`` compiles the transformer in place (state-dict
    keys unchanged, so checkpoints load into an uncompiled model).
    """
    import torch
    import torch.nn.functional as F

    class AnswerNLL(torch.nn.Module):
        def __init__(self, lm: Any) -> None:
            super().__init__()
            self.lm = lm
            self.fast = (
                getattr(lm.config, "model_type", None) in PLAIN_HEAD_TYPES
                and hasattr(lm, "model")
                and hasattr(lm, "lm_head")
            )

        def forward(self, input_ids: Any, attention_mask: Any, labels: Any) -> Any:
            targets = labels[:, 1:]
            if self.fast:
                hidden = self.lm.model(
                    input_ids=input_ids, attention_mask=attention_mask
                ).last_hidden_state[:, :-1]
                keep = targets != IGNORE_INDEX
                logits = self.lm.lm_head(hidden[keep]).float()
                return F.cross_entropy(logits, targets[keep], reduction="sum")
            logits = self.lm(input_ids=input_ids, attention_mask=attention_mask).logits
            logits = logits[:, :-1].float()
            return F.cross_entropy(
                logits.reshape(-1, logits.size(-1)),
                targets.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            )

    module = AnswerNLL(model)
    if compile:
        (model.model if module.fast else model).compile()
    return module
