"""Print where a snapshot's published dataset and report are, and whether they are complete.

``python -m jobs.publish.where --snapshot 2026-11-01`` ends the README's main command.
"""

from __future__ import annotations

import sys

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import SUCCESS
from jobs.storage import Storage, join


def run(ctx: JobContext) -> int:
    storage = Storage(ctx.cfg.storage)
    dataset, reports = ctx.layout.dataset, ctx.layout.reports
    committed = storage.exists(join(dataset, SUCCESS))
    manifest = storage.read_json(join(dataset, "manifest.json")) if committed else {}
    rows = manifest.get("row_counts", {}).get("qa", "?")
    print(
        f"dataset:   {dataset}  ({'published' if committed else 'NOT published'}; qa rows: {rows})"
    )
    print(f"card:      {join(dataset, 'README.md')}")
    print(f"report:    {join(reports, 'index.html')}")
    print(f"data docs: {join(reports, 'data_docs', 'index.html')}")
    if not committed:
        raise SystemExit(1)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job("where", argv, run, base_parser("Show the published dataset of a snapshot."))


if __name__ == "__main__":
    sys.exit(main())
