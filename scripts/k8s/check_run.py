"""Check a snapshot's run on the cluster: every stage balanced, the dataset published.

    python scripts/k8s/check_run.py --snapshot 2026-11-01 [--like file://var/data]

Reads the run's committed outputs under $SYNTHLLM_ROOT_URI (the S3 API of the local cluster):
every ``_stats.json`` must hold rows in = rows out + rows quarantined; the dataset, its card,
the report and the Data Docs must be published. With ``--like`` (a local profile's root
holding a run of the same snapshot) it also checks that both runs have the same stages and
the published tables the same columns, and prints both runs' row counts side by side. Exit 1
names every problem found.
"""

from __future__ import annotations

import argparse
import sys

from jobs.commit import SUCCESS
from jobs.config import StorageConfig, load_config
from jobs.layout import Layout
from jobs.storage import Storage, join

STATS = "_stats.json"


def stage_stats(storage: Storage, layout: Layout) -> dict[str, dict]:
    """``{stage prefix relative to runs/{snapshot}: stats}`` of every committed output."""
    base = layout.run.rstrip("/") + "/"
    found = {}
    for uri in storage.walk_files(layout.run):
        if uri.endswith("/" + STATS) and "/_tmp/" not in uri:
            prefix = uri[: -len(STATS) - 1]
            if storage.exists(join(prefix, SUCCESS)):
                found[prefix[len(base) :]] = storage.read_json(uri)
    return found


def published_columns(storage: Storage, layout: Layout) -> list[tuple[str, str]]:
    """(column, type) of the published dataset's first Parquet file."""
    import io

    import pyarrow.parquet as pq

    manifest = storage.read_json(join(layout.dataset, "manifest.json"))
    name = sorted(n for n in manifest["files"] if n.endswith(".parquet"))[0]
    schema = pq.read_schema(io.BytesIO(storage.read_bytes(join(layout.dataset, name))))
    return [(field.name, str(field.type)) for field in schema]


def check(storage: Storage, layout: Layout) -> tuple[list[str], dict[str, dict]]:
    problems = []
    stats = stage_stats(storage, layout)
    if not stats:
        problems.append(f"no committed stage output under {layout.run}")
    for stage, s in sorted(stats.items()):
        if s.get("rows_in") != s.get("rows_out", 0) + s.get("rows_quarantined", 0):
            problems.append(f"{stage}: rows in {s.get('rows_in')} != out + quarantined")
    for what, uri in (
        ("dataset", join(layout.dataset, SUCCESS)),
        ("dataset card", join(layout.dataset, "README.md")),
        ("report", join(layout.reports, "index.html")),
        ("Data Docs", join(layout.reports, "data_docs", "index.html")),
    ):
        if not storage.exists(uri):
            problems.append(f"{what} missing: {uri}")
    return problems, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshot", required=True)
    parser.add_argument("--like", help="root URI of a local-profile run to compare with")
    args = parser.parse_args(argv)
    cfg = load_config("kubernetes")
    storage = Storage(cfg.storage)
    layout = Layout(cfg.storage.root_uri, args.snapshot)
    problems, stats = check(storage, layout)
    other: dict[str, dict] = {}
    if args.like:
        local = Storage(StorageConfig(root_uri=args.like))
        local_layout = Layout(args.like, args.snapshot)
        other = stage_stats(local, local_layout)
        if set(other) != set(stats):
            problems.append(f"stages differ from {args.like}: {sorted(set(other) ^ set(stats))}")
        if not problems and published_columns(storage, layout) != published_columns(
            local, local_layout
        ):
            problems.append(f"published columns differ from {args.like}")
    head = f"{'stage output':<44} {'in':>7} {'out':>7} {'quar.':>6}"
    print(head + ("  local in/out" if other else ""))
    for stage, s in sorted(stats.items()):
        line = f"{stage:<44} {s['rows_in']:>7} {s['rows_out']:>7} {s['rows_quarantined']:>6}"
        if stage in other:
            line += f"  {other[stage]['rows_in']}/{other[stage]['rows_out']}"
        print(line)
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    print(f"dataset: {layout.dataset}\nreport:  {join(layout.reports, 'index.html')}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
