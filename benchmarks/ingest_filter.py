"""Benchmark: ingest + filter throughput at growing corpus sizes (the sample, replicated).

For each size it builds a corpus by replicating the sample snapshot (each copy gets its own
ids, so ingest keeps every row and the duplicate stage sees clusters of exact copies), then runs

- ``ours``: the real Spark jobs, ``jobs.ingest.ingest`` then ``jobs.filter.filter``
  (heuristics, exact + MinHash LSH near-dup removal, embedding + random-forest classifier);
- ``reference``: one Python process applying the same per-document rules
  (``jobs.ingest.rules.parse_line`` + ``jobs.filter.heuristics.score_text``) in a loop: the
  cost floor of the row-level work, without dedup or the classifier,

and prints documents/s of each, the time ratio ours/ref, and how wall time grows with size
(the exponent ``k`` in ``time ~ size^k`` between consecutive sizes; 1.0 is linear).

    python benchmarks/ingest_filter.py                 # 1k, 10k, 100k
    python benchmarks/ingest_filter.py --sizes 1000,10000
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.config import load_config  # noqa: E402
from jobs.corpus import build_sample  # noqa: E402
from jobs.filter import filter as filter_job  # noqa: E402
from jobs.filter.heuristics import score_text  # noqa: E402
from jobs.ingest import ingest  # noqa: E402
from jobs.ingest.rules import Fields, parse_line  # noqa: E402


def sample_lines(root: Path) -> list[bytes]:
    """The sample snapshot's JSON lines (built on the fly, reproducibly)."""
    build_sample.main(["--snapshot", "bench", "--root-uri", f"file://{root}"])
    lines: list[bytes] = []
    for part in sorted((root / "corpus" / "bench").glob("*.jsonl.gz")):
        lines.extend(gzip.decompress(part.read_bytes()).splitlines())
    return lines


def write_replicated(lines: list[bytes], size: int, folder: Path) -> None:
    """``size`` rows cycling through the sample; copy k of a row gets id ``{id}~k``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(size):
        row = json.loads(lines[i % len(lines)])
        row["id"] = f"{row['id']}~{i // len(lines)}"
        out.append(json.dumps(row, ensure_ascii=False))
    (folder / "part-00000.jsonl.gz").write_bytes(
        gzip.compress(("\n".join(out) + "\n").encode(), mtime=0)
    )


def run_reference(folder: Path) -> float:
    """Seconds for the single-process row-level rules over the same file."""
    cfg = load_config("local").filter
    fields = Fields()
    start = time.perf_counter()
    data = gzip.decompress((folder / "part-00000.jsonl.gz").read_bytes())
    uri = f"file://{folder}/part-00000.jsonl.gz"
    for line in data.splitlines():
        row = parse_line(line, uri, fields)
        if row["reason"] is None:
            score_text(row["text"], cfg)
    return time.perf_counter() - start


def run_ours(root: Path, snapshot: str) -> tuple[float, dict, dict]:
    """Seconds for the Spark ingest + filter jobs, and their _stats.json."""
    args = ["--snapshot", snapshot, "--set", f'storage.root_uri="file://{root}"']
    start = time.perf_counter()
    for job in (ingest, filter_job):
        if job.main(args) != 0:
            raise SystemExit(f"{job.__name__} failed")
    elapsed = time.perf_counter() - start
    run = root / "runs" / snapshot
    stats = [
        json.loads((run / t / "_stats.json").read_text()) for t in ("documents_raw", "documents")
    ]
    return elapsed, stats[0], stats[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="synthllm-bench-") as tmp:
        root = Path(tmp)
        lines = sample_lines(root / "sample")
        print(f"sample: {len(lines)} documents; sizes: {sizes}", flush=True)
        header = f"{'docs':>7} {'ours s':>8} {'ours doc/s':>11} {'ref s':>7} {'ref doc/s':>10}"
        header += f" {'ours/ref':>9} {'growth k':>9} {'kept':>6} {'exact-dup':>9} {'near-dup':>8}"
        print(header)
        previous: tuple[int, float] | None = None
        for size in sizes:
            snapshot = f"bench-{size}"
            write_replicated(lines, size, root / "corpus" / snapshot)
            reference = run_reference(root / "corpus" / snapshot)
            ours, raw_stats, doc_stats = run_ours(root, snapshot)
            growth = (
                f"{math.log(ours / previous[1]) / math.log(size / previous[0]):.2f}"
                if previous
                else "-"
            )
            removed = doc_stats["quarantined_by_reason"]
            exact, near = (removed.get(f"{k}_duplicate", 0) for k in ("exact", "near"))
            print(
                f"{size:>7} {ours:>8.1f} {size / ours:>11.1f} {reference:>7.2f}"
                f" {size / reference:>10.0f} {ours / reference:>8.1f}x {growth:>9}"
                f" {doc_stats['rows_out']:>6} {exact:>9} {near:>8}",
                flush=True,
            )
            assert raw_stats["rows_in"] == size
            previous = (size, ours)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
