"""Build a reproducible sample corpus snapshot from docstrings of installed packages.

    python -m jobs.corpus.build_sample --snapshot 2026-11-01 [--root-uri URI] [--num-docs N]

Writes ``{root}/corpus/{snapshot}/part-0000{0,1}.jsonl.gz`` and ``_corpus.json``. The same
snapshot name, seed, document count and installed package versions always give the same
bytes (sorted pools, a seeded sampler, gzip with mtime 0), so rerunning is safe. Different
snapshot names draw different (overlapping) selections, so two snapshots are distinguishable.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import platform
import random
import sys
from importlib import metadata
from typing import Any

from jobs.config import ConfigError, load_config
from jobs.corpus.sources import MIN_DOC_CHARS, SOURCES, Doc, Source, collect
from jobs.layout import Layout, check_snapshot
from jobs.storage import Storage, basename, join

log = logging.getLogger(__name__)

NUM_PARTS = 2
CORPUS_META = "_corpus.json"


def sampler_seed(snapshot: str, seed: int) -> int:
    """A seed that depends on the snapshot name: ``hash()`` is salted per process, sha256 isn't."""
    digest = hashlib.sha256(f"{snapshot}\x00{seed}".encode()).hexdigest()
    return int(digest[:16], 16)


def sample_docs(
    pools: dict[str, tuple[Doc, ...]], num_docs: int, math_fraction: float, rng: random.Random
) -> list[Doc]:
    """Draw ``num_docs`` documents, ``math_fraction`` of them math, in a seeded mixed order."""
    math_pool = [d for s in SOURCES if s.domain_hint == "math" for d in pools[s.name]]
    general_pool = [d for s in SOURCES if s.domain_hint == "general" for d in pools[s.name]]
    num_math = min(len(math_pool), round(num_docs * math_fraction))
    num_general = min(len(general_pool), num_docs - num_math)
    if num_math + num_general < num_docs:
        log.warning("asked for %d documents, only %d available", num_docs, num_math + num_general)
    chosen = rng.sample(math_pool, num_math) + rng.sample(general_pool, num_general)
    rng.shuffle(chosen)
    return chosen


def to_record(doc: Doc) -> dict[str, str]:
    """The JSON line of one document (field names are the corpus contract)."""
    return {
        "id": doc.obj,
        "text": doc.text,
        "url": f"pydoc://{doc.obj}",
        "source": doc.source.name,
        "package": doc.package,
        "object": doc.obj,
        "licence": doc.source.licence,
        "domain_hint": doc.source.domain_hint,
    }


def encode_part(records: list[dict[str, str]]) -> bytes:
    """JSON lines, gzip-compressed with a fixed header (mtime 0, no file name)."""
    body = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    return gzip.compress(body.encode("utf-8"), compresslevel=9, mtime=0)


def source_version(source: Source) -> str:
    if source.name == "python-stdlib":
        return platform.python_version()
    return metadata.version(source.name)


def _provenance(
    snapshot: str,
    seed: int,
    docs: list[Doc],
    pools: dict[str, tuple[Doc, ...]],
    parts: dict[str, Any],
) -> dict[str, Any]:
    by_source = {s.name: sum(d.source is s for d in docs) for s in SOURCES}
    return {
        "snapshot": snapshot,
        "builder": "jobs.corpus.build_sample",
        "method": f"own docstrings (inspect.getdoc) of public objects, >= {MIN_DOC_CHARS} chars, "
        "unique text; seeded sample from pools sorted by object name",
        "seed": seed,
        "sampler_seed": sampler_seed(snapshot, seed),
        "num_docs": len(docs),
        "by_domain_hint": {
            h: sum(d.source.domain_hint == h for d in docs) for h in ("math", "general")
        },
        "by_source": by_source,
        "pool_sizes": {name: len(pool) for name, pool in pools.items()},
        "sources": [
            {
                "name": s.name,
                "version": source_version(s),
                "licence": s.licence,
                "domain_hint": s.domain_hint,
            }
            for s in SOURCES
        ],
        "files": parts,
    }


def build(storage: Storage, layout: Layout, num_docs: int, seed: int, math_fraction: float = 0.6):
    """Collect, sample and write one snapshot; returns the ``_corpus.json`` body."""
    pools = {s.name: collect(s) for s in SOURCES}
    log.info("pools: %s", {k: len(v) for k, v in pools.items()})
    rng = random.Random(sampler_seed(layout.snapshot, seed))
    docs = sample_docs(pools, num_docs, math_fraction, rng)
    parts: dict[str, Any] = {}
    step = -(-len(docs) // NUM_PARTS)
    for i in range(NUM_PARTS):
        chunk = docs[i * step : (i + 1) * step]
        data = encode_part([to_record(d) for d in chunk])
        name = f"part-{i:05d}.jsonl.gz"
        storage.write_bytes(join(layout.corpus, name), data, "application/gzip")
        parts[name] = {"num_docs": len(chunk), "sha256": hashlib.sha256(data).hexdigest()}
    for stale in storage.list(layout.corpus):  # parts left by an earlier build with more parts
        name = basename(stale)
        if name.startswith("part-") and name not in parts:
            storage.delete(stale)
    meta = _provenance(layout.snapshot, seed, docs, pools, parts)
    storage.write_json(join(layout.corpus, CORPUS_META), meta)
    log.info("wrote %d documents to %s %s", len(docs), layout.corpus, meta["by_domain_hint"])
    return meta


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="build a sample corpus snapshot from docstrings")
    p.add_argument("--snapshot", required=True, help="snapshot name, e.g. 2026-11-01")
    p.add_argument("--root-uri", default=None, help="storage root (default: config's root_uri)")
    p.add_argument("--num-docs", type=int, default=2000, help="documents to draw")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (mixed with the snapshot)")
    p.add_argument("--math-fraction", type=float, default=0.6, help="share of math documents")
    p.add_argument("--profile", default=None, help="config profile: local or kubernetes")
    p.add_argument("--config", default=None, help="TOML file overlaid on the profile")
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    from jobs.cli import EXIT_CONFIG, setup_logging

    args = _parser().parse_args(argv)
    setup_logging()
    overrides = [f"storage.root_uri={json.dumps(args.root_uri)}"] if args.root_uri else []
    try:
        if args.num_docs < 1 or not 0 <= args.math_fraction <= 1:
            raise ConfigError("--num-docs must be >= 1 and --math-fraction within [0, 1]")
        cfg = load_config(args.profile, args.config, overrides)
        layout = Layout(cfg.storage.root_uri, check_snapshot(args.snapshot))
    except (ConfigError, ValueError) as exc:
        print(f"build_sample: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    build(Storage(cfg.storage), layout, args.num_docs, args.seed, args.math_fraction)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
