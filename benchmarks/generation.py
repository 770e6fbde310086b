"""GPU benchmark: the transformers engine versus plain ``model.generate`` on the same prompts.

For each batch size it prints decode throughput (generated tokens per second) of

- ``plain``: ``model.generate`` with the default dynamic KV cache (eager PyTorch), and
- ``engine``: :class:`jobs.llm.transformers_engine.TransformersEngine` with ``compile=True``
  (static KV cache; transformers compiles the decode step with CUDA graphs),

their ratio, and each figure as a fraction of the memory-bandwidth limit: every decode step
must read all weights once plus the KV cache written so far, so at best
``tokens/s = batch * bandwidth / bytes_per_step``.

Both paths decode greedily and stop at end-of-sequence; throughput counts the tokens actually
generated. Run on a CUDA machine::

    python benchmarks/generation.py --batch-sizes 1,8,64,256 --new-tokens 128
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.llm.engine import ChatRequest  # noqa: E402

# A fixed prompt set: maths-flavoured instructions of varied length, cycled to fill a batch.
PROMPTS = [
    "Explain why the sum of the first n odd numbers is n squared.",
    "Solve 3x + 7 = 22 and check the answer.",
    "What is the derivative of x^3 sin(x)? Show each step.",
    "A fair die is rolled twice. What is the probability the total is 8?",
    "Find the area of a triangle with sides 5, 12 and 13.",
    "Write a short proof that the square root of 2 is irrational.",
    "How many ways can 5 books be arranged on a shelf if two must stay together?",
    "Compute the integral of 1/(1+x^2) from 0 to 1.",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--batch-sizes", default="1,2,4,8,16,32,64,128,256")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2, help="timed runs per point (median)")
    p.add_argument("--bandwidth-gbs", type=float, default=3350.0, help="HBM bandwidth, GB/s")
    return p.parse_args(argv)


def requests_for(batch: int, new_tokens: int) -> list[ChatRequest]:
    return [
        ChatRequest(
            custom_id=f"bench-{i}",
            messages=({"role": "user", "content": PROMPTS[i % len(PROMPTS)]},),
            temperature=0.0,
            max_tokens=new_tokens,
        )
        for i in range(batch)
    ]


def bytes_per_step(model, batch: int, context: int) -> float:
    """Weights read once per step plus the KV cache of every row (bf16)."""
    cfg = model.config
    weights = sum(p.numel() for p in model.parameters()) * 2
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * 2 * context * batch
    return weights + kv


def time_engine(engine, reqs: list[ChatRequest]) -> tuple[float, int]:
    import torch

    torch.cuda.synchronize()
    start = time.perf_counter()
    out = engine.generate(reqs)
    torch.cuda.synchronize()
    errors = [r.error for r in out if r.error]
    if errors:
        raise RuntimeError(f"engine errors: {errors[:3]}")
    return time.perf_counter() - start, sum(r.completion_tokens for r in out)


def time_plain(engine, reqs: list[ChatRequest]) -> tuple[float, int]:
    """``model.generate`` with its defaults (dynamic cache), same prompts and padding."""
    import torch

    encoded = [engine.encode(r) for r in reqs]
    width = max(map(len, encoded))
    ids = torch.full((len(reqs), width), engine.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, toks in enumerate(encoded):
        ids[row, width - len(toks) :] = torch.tensor(toks)
        mask[row, width - len(toks) :] = 1
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        out = engine.model.generate(
            input_ids=ids.cuda(),
            attention_mask=mask.cuda(),
            max_new_tokens=reqs[0].max_tokens,
            do_sample=False,
            eos_token_id=engine.stop_ids,
            pad_token_id=engine.pad_id,
        )
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    stops = set(engine.stop_ids)
    tokens = 0
    for row in out[:, width:].tolist():
        end = next((i for i, t in enumerate(row) if t in stops), None)
        tokens += len(row) if end is None else end + 1
    return elapsed, tokens


def measure(fn, engine, reqs, repeats: int) -> float:
    fn(engine, reqs)  # warm-up: compilation / CUDA graph capture for this shape
    rates = []
    for _ in range(repeats):
        elapsed, tokens = fn(engine, reqs)
        rates.append(tokens / elapsed)
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("benchmarks/generation.py needs a CUDA GPU", file=sys.stderr)
        return 2
    from jobs.llm.transformers_engine import TransformersEngine

    plain = TransformersEngine(args.model, device="cuda", max_batch_size=1024, compile=False)
    fast = TransformersEngine(args.model, device="cuda", max_batch_size=1024, compile=True)
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    print(f"model: {args.model}  new tokens: {args.new_tokens}", end="  ")
    print(f"bandwidth: {args.bandwidth_gbs} GB/s")
    header = f"{'batch':>5} {'plain tok/s':>12} {'engine tok/s':>13} {'ratio':>7}"
    print(header + f" {'limit tok/s':>12} {'plain/limit':>11} {'engine/limit':>12}")
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        reqs = requests_for(batch, args.new_tokens)
        base = measure(time_plain, plain, reqs, args.repeats)
        ours = measure(time_engine, fast, reqs, args.repeats)
        context = max(len(plain.encode(r)) for r in reqs) + args.new_tokens // 2
        limit = batch * args.bandwidth_gbs * 1e9 / bytes_per_step(fast.model, batch, context)
        print(
            f"{batch:>5} {base:>12.0f} {ours:>13.0f} {ours / base:>6.1f}x"
            f" {limit:>12.0f} {base / limit:>10.1%} {ours / limit:>11.1%}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
