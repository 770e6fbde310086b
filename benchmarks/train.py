"""Benchmark: the trainer vs a plain training loop at SmolLM2-135M and SmolLM2-360M shapes.

For each shape it trains, on the SAME random token batches (sequence ``--seq``, ``--batch``
sequences per step, one micro-batch per step):

- ``trainer``: :class:`jobs.train.trainer.Trainer`, the job's loop (collation and transfer of
  each batch, answer-only loss on the last three quarters of each sequence, bf16 autocast,
  gradient clipping, the schedule; ``torch.compile`` on CUDA);
- ``plain``: the textbook loop: ``torch.compile``d ``LlamaForCausalLM`` (CUDA), fused AdamW,
  bf16 autocast, ``model(input_ids, labels=input_ids).loss`` on every token, batches already
  on the device.

Both count every (non-padding) token processed. It prints tokens/s after ``--warmup`` steps,
MFU (``6 * params * tokens/s`` over 989 TFLOP/s, the H100/H200 dense bf16 peak) and the
trainer/plain ratio per shape (> 1: the trainer is faster).

    python benchmarks/train.py                       # GPU: seq 2048, bf16, both shapes
    python benchmarks/train.py --tiny --steps 3 --threads 1   # CPU: tiny shapes

Without CUDA it always runs the tiny shapes (fp32, no compile); those numbers only show the
harness works. The GPU figures (H200, seq 2048) are still to be taken: no GPU was available
when this was written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.train.recipes import (  # noqa: E402
    SMOLLM2_135M_SHAPE,
    SMOLLM2_360M_SHAPE,
    Recipe,
    Shape,
)

VOCAB = 49152
TINY_VOCAB = 2048
TINY_SHAPES = {
    "135m-tiny": Shape(64, 160, 2, 4, 2, 512),
    "360m-tiny": Shape(96, 256, 3, 6, 2, 512),
}
FULL_SHAPES = {"135m": SMOLLM2_135M_SHAPE, "360m": SMOLLM2_360M_SHAPE}


def make_model(shape: Shape, vocab: int, seed: int):
    import torch
    from transformers import LlamaForCausalLM

    from jobs.train.modeling import llama_config

    torch.manual_seed(seed)
    config = llama_config(shape, vocab)
    return LlamaForCausalLM(config)


def random_set(num_seqs: int, seq: int, vocab: int, seed: int):
    """Token sequences of one length; the first quarter is 'prompt' (no loss)."""
    import numpy as np

    from jobs.train.data import TokenizedSet

    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, vocab, size=num_seqs * seq, dtype=np.int32)
    offsets = np.arange(num_seqs + 1, dtype=np.int64) * seq
    return TokenizedSet(tokens, offsets, np.full(num_seqs, seq // 4, dtype=np.int32))


def bench_trainer(shape, vocab, args, device) -> float:
    from jobs.train.trainer import RunSettings, Trainer

    steps = args.warmup + args.steps
    data = random_set(args.batch * steps, args.seq, vocab, args.seed)
    recipe = Recipe(
        name="bench",
        description="benchmark",
        model_source=None,
        shape=shape,
        max_seq_len=args.seq,
        batch_size=args.batch,
        micro_batch_size=args.batch,
        num_epochs=1,
        learning_rate=1e-5,
        warmup_ratio=0.0,
        precision="bf16" if device.type == "cuda" else "fp32",
        compile=device.type == "cuda",
        bucket_batches=1,
    )
    model = make_model(shape, vocab, args.seed)
    settings = RunSettings(seed=args.seed, checkpoint_every=10**9, log_every=10**9, progress=False)
    result = Trainer(model, data, recipe, settings, device, pad_id=0).train()
    # Steady rate: drop the first ``warmup`` steps (compilation, allocator warm-up).
    tokens = sum(result.step_tokens[args.warmup :])
    return tokens / sum(result.step_seconds[args.warmup :])


def bench_plain(shape, vocab, args, device) -> float:
    import torch

    model = make_model(shape, vocab, args.seed).to(device)
    cuda = device.type == "cuda"
    runner = torch.compile(model) if cuda else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=cuda)
    gen = torch.Generator().manual_seed(args.seed)
    batches = [
        torch.randint(3, vocab, (args.batch, args.seq), generator=gen).to(device)
        for _ in range(args.warmup + args.steps)
    ]
    elapsed = 0.0
    for i, ids in enumerate(batches):
        if cuda:
            torch.cuda.synchronize()
        began = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = runner(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if i >= args.warmup:
            elapsed += time.perf_counter() - began
    return args.steps * args.batch * args.seq / elapsed


def main(argv: list[str] | None = None) -> int:
    import torch

    from jobs.train.meter import mfu

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (default without CUDA)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per loop")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps")
    parser.add_argument("--seq", type=int, default=None, help="sequence length")
    parser.add_argument("--batch", type=int, default=None, help="sequences per step")
    parser.add_argument("--seed", type=int, default=0)
    # On a small shared CPU, torch's default thread count can be 30x slower than one thread
    # (OpenMP threads spin waiting for each other).
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    tiny = args.tiny or not cuda
    args.seq = args.seq or (64 if tiny else 2048)
    args.batch = args.batch or (4 if tiny else 16)
    shapes, vocab = (TINY_SHAPES, TINY_VOCAB) if tiny else (FULL_SHAPES, VOCAB)
    device = torch.device("cuda" if cuda and not args.tiny else "cpu")
    precision = "bf16" if device.type == "cuda" else "fp32"
    print(f"device {device}, {precision}, seq {args.seq}, batch {args.batch}, steps {args.steps}")
    print(f"{'shape':<10} {'params':>9} {'loop':<8} {'tokens/s':>12} {'MFU':>8}")
    ratios = {}
    for name, shape in shapes.items():
        params = shape.num_params(vocab)
        rates = {
            "trainer": bench_trainer(shape, vocab, args, device),
            "plain": bench_plain(shape, vocab, args, device),
        }
        for loop, rate in rates.items():
            print(
                f"{name:<10} {params / 1e6:>8.1f}M {loop:<8} {rate:>12,.0f} "
                f"{100 * mfu(params, rate):>7.3f}%"
            )
        ratios[name] = rates["trainer"] / rates["plain"]
    for name, ratio in ratios.items():
        print(f"ratio trainer/plain {name}: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
