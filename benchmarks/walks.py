"""Benchmark: Level-3 walk sampling at 10^4 .. 10^7 edges, ours vs a Python reference.

For each size it generates a synthetic co-occurrence graph (:func:`generate_graph`,
deterministic from ``--seed``), writes ``vertices`` and ``edges`` to Parquet in a temp folder,
then runs on the SAME graph and the SAME walks

- ``ours``: ``jobs.graph.walks.sample_walks`` on the local-profile Spark session, timed from
  reading the Parquet tables to the walks written back to Parquet;
- ``ref``: :func:`reference_walks`, one Python process with neighbour/weight lists per node and
  ``random.choices`` under the same rules (step counts, no revisits, dead ends), timed from
  reading the same Parquet tables (pyarrow) to the list of walks. It looks at every neighbour
  of the current node at each step (filtering visited ones, then ``choices``), so it slows
  down with the degrees of the hubs the walks meet, not only with the number of walks.

Walks per size follow the paper: every topic once per epoch, ``--epochs`` epochs (5), so the
number of walks grows with the number of topics (``3 * sqrt(edges)``: 300, 949, 3000, 9487
topics). Above ``--ref-max-edges`` (10^6) the reference is not run: its time is extrapolated
from the two largest sizes it ran (``t ~ edges^k``) and printed with a ``~`` mark. It prints
edges, walks, seconds and walks/s of each, the ours/ref speed ratio (> 1: ours faster) and the
growth exponent ``k`` of our time between consecutive sizes.

    python benchmarks/walks.py                          # 10^4, 10^5, 10^6
    python benchmarks/walks.py --sizes 10000 100000 1000000 10000000
    python benchmarks/walks.py --sizes 10000 100000 --epochs 5
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.graph.walks import WalkParams  # noqa: E402

# Share of distinct edges per kind: documents hold a few topics and many concepts, so the
# concept graph dominates (paper: ~32K topics, ~200K concepts per subset).
KIND_SHARE = {"topic_topic": 0.05, "topic_concept": 0.30, "concept_concept": 0.65}
CONCEPTS_PER_TOPIC = 6
ZIPF_EXPONENT = 1.1


def graph_size(num_edges: int) -> tuple[int, int]:
    """(topics, concepts) for a graph of ``num_edges`` edges."""
    topics = max(20, round(3 * math.sqrt(num_edges)))
    return topics, CONCEPTS_PER_TOPIC * topics


def _pairs(rng, n_a: int, n_b: int, count: int, same: bool):
    """``count`` distinct (a, b) index pairs, both ends drawn by Zipf-like popularity."""
    import numpy as np

    def draw(n: int, size: int):
        weights = 1.0 / np.arange(1, n + 1) ** ZIPF_EXPONENT
        return rng.choice(n, size=size, p=weights / weights.sum())

    capacity = n_a * (n_a - 1) // 2 if same else n_a * n_b
    if count > capacity:
        raise ValueError(f"{count} edges do not fit among {n_a} x {n_b} nodes")
    found = np.empty(0, dtype=np.int64)
    while found.size < count:
        a, b = draw(n_a, 2 * count), draw(n_b, 2 * count)
        if same:
            a, b = np.minimum(a, b), np.maximum(a, b)
            keep = a != b
            a, b = a[keep], b[keep]
        codes = np.concatenate([found, a.astype(np.int64) * n_b + b])
        # First occurrence order keeps the result deterministic for a given seed.
        _, first = np.unique(codes, return_index=True)
        found = codes[np.sort(first)]
    found = found[:count]
    return found // n_b, found % n_b


def generate_graph(num_edges: int, seed: int = 0) -> tuple[dict, dict]:
    """(vertices, edges) as column dicts in the ``build_graph`` schema, heavy-tailed degrees.

    Node popularity is Zipf(1.1) within each kind, so a few hub topics and concepts carry
    most edges; ``freq`` is 1 + a Zipf(2) draw (most pairs co-occur once, a few very often).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n_topics, n_concepts = graph_size(num_edges)
    topic_ids = [f"t:{i:06d}" for i in range(n_topics)]
    concept_ids = [f"c:{i:07d}" for i in range(n_concepts)]
    ends = {
        "topic_topic": (topic_ids, topic_ids),
        "topic_concept": (topic_ids, concept_ids),
        "concept_concept": (concept_ids, concept_ids),
    }
    counts = {k: int(num_edges * s) for k, s in KIND_SHARE.items()}
    counts["concept_concept"] += num_edges - sum(counts.values())
    edges: dict[str, list] = {"src": [], "dst": [], "kind": [], "freq": [], "weight": []}
    for kind, count in counts.items():
        src_ids, dst_ids = ends[kind]
        a, b = _pairs(rng, len(src_ids), len(dst_ids), count, kind != "topic_concept")
        freq = 1 + np.minimum(rng.zipf(2.0, size=count) - 1, 10_000)
        edges["src"] += [src_ids[i] for i in a]
        edges["dst"] += [dst_ids[i] for i in b]
        edges["kind"] += [kind] * count
        edges["freq"] += freq.tolist()
        edges["weight"] += np.log(freq + 0.01).tolist()
    ids = topic_ids + concept_ids
    vertices = {
        "id": ids,
        "name": ids,
        "kind": ["topic"] * n_topics + ["concept"] * n_concepts,
        "doc_freq": [1] * len(ids),
    }
    return vertices, edges


def _choose(rng: random.Random, options, visited: set) -> str | None:
    if options is None:
        return None
    neigh, weights = options
    keep = [i for i, n in enumerate(neigh) if n not in visited]
    if not keep:
        return None
    return rng.choices([neigh[i] for i in keep], weights=[weights[i] for i in keep])[0]


def reference_walks(edges: dict, topics: list[str], params: WalkParams) -> list[tuple]:
    """The walk rules of :mod:`jobs.graph.walks` in plain Python (``random.choices``).

    ``edges``: column dict with ``src, dst, kind, freq``; ``topics``: start topics in order.
    Returns ``(epoch, start_topic, topics, concepts, end_reason)`` per walk. Same distribution
    as ``sample_walks``, not the same draws (its randomness is a seeded ``random.Random``).
    """
    adj: dict[str, dict] = {k: defaultdict(lambda: ([], [])) for k in KIND_SHARE}
    for s, d, kind, f in zip(edges["src"], edges["dst"], edges["kind"], edges["freq"], strict=True):
        w = f + params.eps
        pairs = [(s, d), (d, s)] if kind != "topic_concept" else [(s, d)]
        for a, b in pairs:
            neigh, weights = adj[kind][a]
            neigh.append(b)
            weights.append(w)
    tt, tc, cc = (dict(adj[k]) for k in KIND_SHARE)
    rng = random.Random(params.seed)
    walks = []
    for epoch in range(params.num_epochs):
        for start in topics:
            n_topic = rng.randint(*params.topic_steps)
            n_concept = rng.randint(*params.concept_steps)
            path, reason = [start], None
            for _ in range(n_topic):
                nxt = _choose(rng, tt.get(path[-1]), set(path))
                if nxt is None:
                    reason = "topic_dead_end"
                    break
                path.append(nxt)
            origin = {"last": path[-1], "start": start}.get(params.concept_start)
            origin = origin or rng.choice(path)
            first = _choose(rng, tc.get(origin), set())
            concepts = [first] if first else []
            if first is None:
                reason = reason or "no_concept"
            for _ in range(n_concept if first else 0):
                nxt = _choose(rng, cc.get(concepts[-1]), set(concepts))
                if nxt is None:
                    reason = reason or "concept_dead_end"
                    break
                concepts.append(nxt)
            walks.append((epoch, start, path, concepts, reason or "complete"))
    return walks


def write_graph(folder: Path, vertices: dict, edges: dict) -> None:
    """``folder/vertices`` and ``folder/edges`` as single Parquet files (pyarrow)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name, table in (("vertices", vertices), ("edges", edges)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(table), folder / name / "part-00000.parquet")


def run_reference(folder: Path, params: WalkParams) -> tuple[float, int]:
    """Seconds (read Parquet -> list of walks) and number of walks of the reference."""
    import pyarrow.parquet as pq

    start = time.perf_counter()
    vertices = pq.read_table(folder / "vertices", columns=["id", "kind"]).to_pydict()
    edges = pq.read_table(folder / "edges", columns=["src", "dst", "kind", "freq"]).to_pydict()
    topics = [v for v, k in zip(vertices["id"], vertices["kind"], strict=True) if k == "topic"]
    walks = reference_walks(edges, topics, params)
    return time.perf_counter() - start, len(walks)


def run_ours(spark, folder: Path, params: WalkParams) -> tuple[float, int]:
    """Seconds (read Parquet -> walks written to Parquet) and number of walks written."""
    from jobs.graph.walks import sample_walks
    from jobs.spark import held

    start = time.perf_counter()
    vertices = spark.read.parquet(str(folder / "vertices"))
    edges = spark.read.parquet(str(folder / "edges"))
    out = str(folder / "walks")
    with held():
        sample_walks(vertices, edges, params).write.mode("overwrite").parquet(out)
    seconds = time.perf_counter() - start
    return seconds, spark.read.parquet(out).count()


def _extrapolated(rows: list[tuple], size: int) -> float | None:
    """The reference's seconds at ``size`` from its two largest measured sizes (power law)."""
    measured = [(n, ref_s) for n, _, _, ref_s, guessed in rows if not guessed]
    if len(measured) < 2:
        return None
    (n0, t0), (n1, t1) = measured[-2:]
    return t1 * (size / n1) ** (math.log(t1 / t0) / math.log(n1 / n0))


def _table(rows: list[tuple]) -> list[str]:
    head = f"{'edges':>9} {'walks':>7} {'ours s':>8} {'ours w/s':>9} {'ref s':>9} {'ref w/s':>9}"
    lines = [head + f" {'ours/ref':>9} {'k':>6}"]
    prev = None
    for size, walks, ours_s, ref_s, guessed in rows:
        k = "" if prev is None else f"{math.log(ours_s / prev[1]) / math.log(size / prev[0]):.2f}"
        mark = "~" if guessed else " "
        ref = f"{mark}{ref_s:>8.2f} {mark}{walks / ref_s:>8.0f}" if ref_s else f"{'-':>9} {'-':>9}"
        ratio = f"{mark}{ref_s / ours_s:>7.2f}x" if ref_s else f"{'-':>9}"
        lines.append(
            f"{size:>9} {walks:>7} {ours_s:>8.2f} {walks / ours_s:>9.0f} {ref} {ratio} {k:>6}"
        )
        prev = (size, ours_s)
    if any(r[4] for r in rows):
        lines.append("~: the reference was not run; its time is extrapolated (t ~ edges^k).")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ref-max-edges", type=int, default=1_000_000)
    args = parser.parse_args(argv)

    from jobs.config import load_config
    from jobs.spark import build_session

    spark = build_session(load_config("local"), "bench-walks")
    params = WalkParams(num_epochs=args.epochs)
    # Warm-up on a tiny graph: JVM start-up and code generation are not part of any size.
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-walks-") as tmp:
        warm = Path(tmp) / "warm"
        write_graph(warm, *generate_graph(1_000, args.seed))
        run_ours(spark, warm, params)
        for size in sorted(args.sizes):
            folder = Path(tmp) / str(size)
            write_graph(folder, *generate_graph(size, args.seed))
            ours_s, ours_n = run_ours(spark, folder, params)
            if size <= args.ref_max_edges:
                ref_s, ref_n = run_reference(folder, params)
                assert ours_n == ref_n, (ours_n, ref_n)
                rows.append((size, ours_n, ours_s, ref_s, False))
            else:
                rows.append((size, ours_n, ours_s, _extrapolated(rows, size), True))
            ref = f"{rows[-1][3]:.2f}s" if rows[-1][3] else "-"
            print(f"  done {size} edges: ours {ours_s:.2f}s, ref {ref}", flush=True)
            shutil.rmtree(folder)
    spark.stop()

    # The machine may be shared: the load average says how far to trust the wall times.
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("\n".join(_table(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
