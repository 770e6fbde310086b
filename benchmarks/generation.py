"""Generation benchmarks: the transformers engine on a GPU, and llama.cpp vs transformers on CPU.

GPU (default): for each batch size, decode throughput (generated tokens per second) of

- ``plain``: ``model.generate`` with the default dynamic KV cache (eager PyTorch), and
- ``engine``: :class:`jobs.llm.transformers_engine.TransformersEngine` on its static loop
  (:mod:`jobs.llm.static_decode`: static KV cache, the decode step compiled and captured as a
  CUDA graph), on the same loaded model,

their ratio, and each figure as a fraction of the memory-bandwidth limit: every decode step
must read all weights once plus the KV cache written so far, so at best
``tokens/s = batch * bandwidth / bytes_per_step``.

Both paths decode greedily and stop at end-of-sequence; throughput counts the tokens actually
generated. Run on a CUDA machine::

    python benchmarks/generation.py --batch-sizes 1,8,64,256 --new-tokens 128

The same comparison runs on CPU at a tiny shape, without the bandwidth columns::

    python benchmarks/generation.py --device cpu --batch-sizes 1,4 --new-tokens 16 --repeats 1

CPU (``--cpu``): the ``llamacpp`` and ``transformers`` engines as the local profile builds
them (``configs/local.toml``), first at a tiny shape (the fixed prompts at batch 1 and 8,
greedy), then end to end on the sample run's real prompts: concept-extraction and Level-1
question prompts built from maths documents of a corpus snapshot (read only), and answer
prompts for built-in evaluation questions, sampled and sent in batches of
``generation.batch_size`` exactly as the shard runner sends them::

    python benchmarks/generation.py --cpu --snapshot 2026-11-01 --num-docs 8
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
    p.add_argument("--bandwidth-gbs", type=float, default=4800.0, help="HBM GB/s (H200: 4800)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument("--threads", type=int, default=1, help="torch threads on CPU")
    cpu = p.add_argument_group("CPU comparison (--cpu)")
    cpu.add_argument("--cpu", action="store_true", help="llamacpp vs transformers on CPU")
    cpu.add_argument("--engines", default="llamacpp,transformers", help="first is the numerator")
    cpu.add_argument("--snapshot", default="2026-11-01", help="corpus snapshot for real prompts")
    cpu.add_argument("--num-docs", type=int, default=8, help="documents (and answer questions)")
    cpu.add_argument("--skip-tiny", action="store_true", help="only the real-prompt run")
    cpu.add_argument("--set", action="append", default=[], help="config override, e.g. "
                     "generation.llamacpp_n_seq=8")  # fmt: skip
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


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def time_engine(engine, reqs: list[ChatRequest]) -> tuple[float, int]:
    """The engine's own ``generate``: templating, length buckets, its decode loop, cutting."""
    _sync(engine.device)
    start = time.perf_counter()
    out = engine.generate(reqs)
    _sync(engine.device)
    errors = [r.error for r in out if r.error]
    if errors:
        raise RuntimeError(f"engine errors: {errors[:3]}")
    return time.perf_counter() - start, sum(r.completion_tokens for r in out)


def time_plain(engine, reqs: list[ChatRequest]) -> tuple[float, int]:
    """``model.generate`` with its defaults (dynamic cache), same prompts and padding."""
    encoded = [engine.encode(r) for r in reqs]
    _sync(engine.device)
    start = time.perf_counter()
    out = engine.generate_ids(reqs[0], encoded, seed=0)
    _sync(engine.device)
    elapsed = time.perf_counter() - start
    stops = set(engine.stop_ids)
    tokens = 0
    for row in out:
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


# --- CPU: llamacpp vs transformers ----------------------------------------------------------


def sample_requests(cfg, snapshot: str, num_docs: int) -> list[ChatRequest]:
    """The sample run's prompts: P-K concepts and Level-1 questions per maths document of the
    snapshot (the longest ones, as the domain filter keeps them), and answer prompts for
    ``num_docs`` built-in evaluation questions; sampling settings from ``cfg.generation``."""
    import gzip
    import json

    from jobs.answers import prompts as answer_prompts
    from jobs.concepts import prompts as concept_prompts
    from jobs.evaluation.evalset import builtin_eval_set
    from jobs.llm.shards import make_request
    from jobs.questions import prompts as question_prompts

    corpus = Path(__file__).resolve().parent.parent / "var" / "data" / "corpus" / snapshot
    docs = []
    for part in sorted(corpus.glob("part-*.jsonl.gz")):
        with gzip.open(part, "rt", encoding="utf-8") as fh:
            docs.extend(json.loads(line) for line in fh)
    maths = [d for d in docs if d.get("domain_hint") == "math" and len(d["text"]) >= 600]
    if len(maths) < num_docs:
        raise SystemExit(f"{corpus}: {len(maths)} maths documents, need {num_docs} (make setup)")
    maths = sorted(maths, key=lambda d: (-min(len(d["text"]), 4000), d["id"]))[:num_docs]
    gen, chars = cfg.generation, cfg.generation.max_prompt_chars
    # One task after another, as their shards run in the pipeline.
    reqs = [
        make_request(f"pk-{doc['id']}", concept_prompts.build_messages(doc["text"], chars), gen)
        for doc in maths
    ]
    nq = cfg.questions.num_questions_l1
    for doc in maths:
        messages = question_prompts.build_messages(doc["text"], chars, num_questions=nq)
        reqs.append(make_request(f"l1-{doc['id']}", messages, gen))
    for item in builtin_eval_set(num_docs, seed=11):
        messages = answer_prompts.build_messages(item["question"])
        reqs.append(make_request(f"ans-{item['id']}", messages, gen))
    return reqs


def timed(engine, reqs: list[ChatRequest]) -> tuple[float, int, int]:
    """Wall seconds, completion tokens and failed requests of one ``generate`` call."""
    start = time.perf_counter()
    out = engine.generate(reqs)
    elapsed = time.perf_counter() - start
    return elapsed, sum(r.completion_tokens for r in out), sum(r.error is not None for r in out)


def compare(engines: dict, batches: list[list[ChatRequest]]) -> dict[str, list[float]]:
    """``[seconds, tokens, errors]`` per engine; engines take turns batch by batch, so a load
    change on a shared machine hits both alike."""
    totals = {name: [0.0, 0, 0] for name in engines}
    for batch in batches:
        for name, engine in engines.items():
            for k, value in enumerate(timed(engine, batch)):
                totals[name][k] += value
    return totals


def main_cpu(args: argparse.Namespace) -> int:
    import os

    from jobs.config import load_config
    from jobs.llm.engine import make_engine

    cfg = load_config("local", None, [f'generation.model="{args.model}"', *args.set])
    gen = cfg.generation
    real = sample_requests(cfg, args.snapshot, args.num_docs)
    print(f"cpu: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    print(f"model: {args.model}  threads: {gen.num_threads or 'default'}", end="  ")
    print(f"llamacpp_n_seq: {gen.llamacpp_n_seq}  batch_size: {gen.batch_size}")
    engines = {}
    for name in args.engines.split(","):
        started = time.perf_counter()
        engines[name] = make_engine(gen.model_copy(update={"engine": name}))
        engines[name].generate(requests_for(1, 8))  # warm-up
        print(f"[{name}] loaded and warmed up in {time.perf_counter() - started:.1f}s")
    names = list(engines)
    print(f"\n{'shape':<32}" + "".join(f"{n + ' tok/s':>19}{'s':>7}" for n in names), end="")
    print(f"{'tok/s ratio':>12}{'wall ratio':>11}")
    shapes = [
        (f"tiny: batch {b}, {args.new_tokens} new", [requests_for(b, args.new_tokens)])
        for b in ([] if args.skip_tiny else [1, 8])
    ]
    batches = [real[i : i + gen.batch_size] for i in range(0, len(real), gen.batch_size)]
    shapes.append((f"real: {len(real)} requests, batch {gen.batch_size}", batches))
    for label, shape in shapes:
        totals = compare(engines, shape)
        line = f"{label:<32}"
        for name in names:
            seconds, tokens, errors = totals[name]
            line += f"{tokens / seconds:>19.1f}{seconds:>7.0f}" + (
                f" ({errors} err)" if errors else ""
            )
        a, b = totals[names[0]], totals[names[-1]]
        line += f"{(a[1] / a[0]) / (b[1] / b[0]):>11.2f}x{b[0] / a[0]:>10.2f}x"
        print(line, flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at end; ratios: {names[0]} over {names[-1]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cpu:
        return main_cpu(args)
    return main_engine(args)


# --- transformers: static decode loop vs plain generate ---------------------------------------


def load_pair(args: argparse.Namespace):
    """One loaded model, two engines: ``plain`` runs ``generate``, ``fast`` the static loop."""
    import copy

    import torch

    from jobs.llm.static_decode import StaticDecoder
    from jobs.llm.transformers_engine import TransformersEngine

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    plain = TransformersEngine(
        args.model, device=device, max_batch_size=1024, num_threads=args.threads, decode="generate"
    )
    fast = copy.copy(plain)
    cuda = plain.device.type == "cuda"
    fast.decoder = StaticDecoder(plain.model, plain.stop_ids, plain.pad_id, compile=cuda)
    return plain, fast


def main_engine(args: argparse.Namespace) -> int:
    """Print tok/s of both loops per batch size, their ratio and (on CUDA) the bandwidth share."""
    import os

    import torch

    plain, fast = load_pair(args)
    cuda = plain.device.type == "cuda"
    where = torch.cuda.get_device_name() if cuda else f"cpu, {torch.get_num_threads()} threads"
    print(f"device: {where}  torch {torch.__version__}  load average {os.getloadavg()[0]:.2f}")
    print(f"model: {args.model} ({plain.model.dtype})  new tokens: {args.new_tokens}", end="  ")
    print(f"bandwidth: {args.bandwidth_gbs} GB/s" if cuda else "")
    header = f"{'batch':>5} {'plain tok/s':>12} {'engine tok/s':>13} {'ratio':>7}"
    if cuda:
        header += f" {'limit tok/s':>12} {'plain/limit':>11} {'engine/limit':>12}"
    print(header)
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        reqs = requests_for(batch, args.new_tokens)
        base = measure(time_plain, plain, reqs, args.repeats)
        ours = measure(time_engine, fast, reqs, args.repeats)
        line = f"{batch:>5} {base:>12.1f} {ours:>13.1f} {ours / base:>6.2f}x"
        if cuda:
            context = max(len(plain.encode(r)) for r in reqs) + args.new_tokens // 2
            limit = batch * args.bandwidth_gbs * 1e9 / bytes_per_step(fast.model, batch, context)
            line += f" {limit:>12.0f} {base / limit:>10.1%} {ours / limit:>11.1%}"
        print(line, flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
