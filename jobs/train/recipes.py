"""Named training recipes: the model, the optimiser, the schedule and the batch shape.

A recipe is a frozen dataclass, looked up by name (``cfg.train.recipe``) and adjusted only
through the typed overrides of :class:`jobs.train.config.TrainConfig`. The paper (section
1.4) gives AdamW, lr 1e-5, batch 512, a linear schedule and 3 epochs; it does not give
warm-up, weight decay, sequence length, packing, masking or precision. Our choices for
those: no warm-up and no weight decay in ``paper`` (the literal recipe), answer-only loss,
length-bucketed batches, 2,048 tokens, bf16 autocast with fp32 master weights on GPU (pure
bf16 weights would lose most lr-1e-5 updates to rounding).

``batch_size`` counts sequences per optimizer step over all ranks; ``micro_batch_size`` is
what one forward pass holds. Gradient accumulation fills the gap.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from jobs.train.config import TrainConfig

SMOLLM2_135M = "smollm2-135m-instruct"  # the packaged GGUF (jobs.llm.transformers_engine)


@dataclass(frozen=True)
class Shape:
    """A Llama-architecture model shape, for models built from scratch."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    max_position_embeddings: int = 2048
    rope_theta: float = 10_000.0
    tie_embeddings: bool = True

    def num_params(self, vocab_size: int) -> int:
        """Parameter count of the shape (tied or untied embeddings, RMSNorm weights)."""
        head_dim = self.hidden_size // self.num_heads
        attn = self.hidden_size * head_dim * (2 * self.num_heads + 2 * self.num_kv_heads)
        mlp = 3 * self.hidden_size * self.intermediate_size
        per_layer = attn + mlp + 2 * self.hidden_size
        embed = vocab_size * self.hidden_size * (1 if self.tie_embeddings else 2)
        return self.num_layers * per_layer + embed + self.hidden_size


# Shapes of public checkpoints, for from-scratch runs and the benchmark.
SMOLLM2_135M_SHAPE = Shape(576, 1536, 30, 9, 3, 8192, 100_000.0)
SMOLLM2_360M_SHAPE = Shape(960, 2560, 32, 15, 5, 8192, 100_000.0)
LLAMA32_1B_SHAPE = Shape(2048, 8192, 16, 32, 8, 131_072, 500_000.0)
TINY_SHAPE = Shape(64, 256, 2, 4, 2, 1024, 10_000.0)


@dataclass(frozen=True)
class Recipe:
    """Everything that defines one training run besides the data and the seed."""

    name: str
    description: str
    # Pretrained weights (packaged name, .gguf or HF directory); None: ``shape`` from scratch
    # unless train.model_path names weights.
    model_source: str | None
    shape: Shape | None
    tokenizer: str = SMOLLM2_135M  # used when the weights bring no tokenizer
    max_seq_len: int = 2048
    batch_size: int = 64
    micro_batch_size: int = 8
    num_epochs: int = 3
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    adam_betas: tuple[float, float] = (0.9, 0.95)
    adam_eps: float = 1e-8
    grad_clip: float | None = 1.0
    precision: Literal["fp32", "bf16"] = "bf16"  # bf16: autocast on CUDA; CPU stays fp32
    compile: bool = True  # torch.compile on CUDA only
    # Length bucketing: examples are sorted by length within windows of this many batches.
    bucket_batches: int = 32
    requires_model_path: bool = False

    def __post_init__(self) -> None:
        if self.model_source is None and self.shape is None and not self.requires_model_path:
            raise ValueError(f"recipe {self.name}: needs model_source, shape or a model path")
        if self.micro_batch_size > self.batch_size:
            raise ValueError(f"recipe {self.name}: micro_batch_size exceeds batch_size")


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="tiny_cpu",
            description="2-layer Llama from scratch with the SmolLM2 tokenizer; seconds on CPU",
            model_source=None,
            shape=TINY_SHAPE,
            max_seq_len=256,
            batch_size=8,
            micro_batch_size=4,
            num_epochs=1,
            learning_rate=3e-3,
            warmup_ratio=0.1,
            schedule="cosine",
            precision="fp32",
            compile=False,
            bucket_batches=8,
        ),
        Recipe(
            name="smollm2_135m",
            description="fine-tune the bundled SmolLM2-135M-Instruct (dequantised Q4_1 GGUF)",
            model_source=SMOLLM2_135M,
            shape=None,
            max_seq_len=1024,
            batch_size=32,
            micro_batch_size=4,
            learning_rate=2e-5,
            warmup_ratio=0.03,
        ),
        Recipe(
            name="gpu_135m",
            description="SmolLM2-135M fine-tune on one or more GPUs, bf16 + torch.compile",
            model_source=SMOLLM2_135M,
            shape=None,
            batch_size=128,
            micro_batch_size=16,
            learning_rate=2e-5,
            warmup_ratio=0.03,
        ),
        Recipe(
            name="gpu_360m",
            description="SmolLM2-360M shape from scratch (or weights via train.model_path)",
            model_source=None,
            shape=SMOLLM2_360M_SHAPE,
            batch_size=128,
            micro_batch_size=16,
            # From scratch needs a pre-training lr; set train.learning_rate=1e-5 with weights.
            learning_rate=3e-4,
            weight_decay=0.1,
            warmup_ratio=0.05,
            schedule="cosine",
        ),
        Recipe(
            name="gpu_1b",
            description="Llama-3.2-1B via train.model_path (else its shape from scratch)",
            model_source=None,
            shape=LLAMA32_1B_SHAPE,
            batch_size=128,
            micro_batch_size=8,
            learning_rate=1e-5,
            warmup_ratio=0.03,
        ),
        Recipe(
            name="paper",
            description="SynthLLM section 1.4: AdamW, lr 1e-5, batch 512, linear, 3 epochs",
            model_source=None,
            shape=None,
            batch_size=512,
            micro_batch_size=8,
            learning_rate=1e-5,
            requires_model_path=True,
        ),
    )
}

_OVERRIDES = (
    "num_epochs",
    "learning_rate",
    "batch_size",
    "micro_batch_size",
    "max_seq_len",
    "warmup_ratio",
)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; KeyError lists the known names."""
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r} (known: {', '.join(sorted(RECIPES))})")
    return RECIPES[name]


def resolve_recipe(train: TrainConfig) -> Recipe:
    """``train.recipe`` with the config's non-None overrides and model path applied."""
    recipe = get_recipe(train.recipe)
    changes = {k: getattr(train, k) for k in _OVERRIDES if getattr(train, k) is not None}
    if train.model_path:
        changes["model_source"] = train.model_path
    elif recipe.requires_model_path:
        raise ValueError(f"recipe {recipe.name} needs --set train.model_path=... (weights)")
    if "batch_size" in changes and "micro_batch_size" not in changes:
        changes["micro_batch_size"] = min(recipe.micro_batch_size, changes["batch_size"])
    return replace(recipe, **changes)


def recipe_dict(recipe: Recipe) -> dict:
    """A JSON-ready view of a recipe (for manifests and metrics)."""
    out = {}
    for f in fields(recipe):
        value = getattr(recipe, f.name)
        out[f.name] = value.__dict__.copy() if isinstance(value, Shape) else value
    return out
