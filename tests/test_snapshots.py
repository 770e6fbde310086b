"""Two snapshots are two independent, complete partitions; rerunning one leaves the other."""

from __future__ import annotations

import hashlib
from pathlib import Path

from jobs.corpus import build_sample
from jobs.ingest import ingest


def _fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under a folder: content hash and modification time (ns)."""
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_two_snapshots_independent_and_rerun_safe(spark, tmp_path):
    root = tmp_path / "data"
    for snap in ("2026-11-01", "2026-11-02"):
        assert (
            build_sample.main(
                ["--snapshot", snap, "--root-uri", f"file://{root}", "--num-docs", "40"]
            )
            == 0
        )
    args = ["--set", f'storage.root_uri="file://{root}"']
    for snap in ("2026-11-01", "2026-11-02"):
        assert ingest.main(["--snapshot", snap, *args]) == 0

    runs = root / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["2026-11-01", "2026-11-02"]
    for snap in ("2026-11-01", "2026-11-02"):
        out = runs / snap / "documents_raw"
        assert (out / "_SUCCESS").exists()
        manifest = (out / "_manifest.json").read_text()
        assert f'"snapshot": "{snap}"' in manifest
        rows = spark.read.parquet(str(out)).select("snapshot").distinct().collect()
        assert [r.snapshot for r in rows] == [snap]

    before = _fingerprint(runs / "2026-11-02")
    first = _fingerprint(runs / "2026-11-01" / "documents_raw")
    assert ingest.main(["--snapshot", "2026-11-01", "--attempt", "2", *args]) == 0
    assert _fingerprint(runs / "2026-11-02") == before
    rerun = _fingerprint(runs / "2026-11-01" / "documents_raw")
    assert (runs / "2026-11-01" / "documents_raw" / "_SUCCESS").exists()
    assert rerun != first  # rewritten by the rerun, not left as it was
    assert not (runs / "2026-11-01" / "documents_raw" / "_tmp").exists()
    count = spark.read.parquet(str(runs / "2026-11-01" / "documents_raw")).count()
    stats = (runs / "2026-11-01" / "documents_raw" / "_stats.json").read_text()
    assert f'"rows_out": {count}' in stats
