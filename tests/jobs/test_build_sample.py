"""Sample corpus builder: real docstrings, byte-identical rebuilds, distinct snapshots."""

from __future__ import annotations

import gzip
import importlib
import inspect
import json
import subprocess
import sys
import warnings
from pathlib import Path

from jobs.corpus import build_sample
from jobs.corpus.sources import MIN_DOC_CHARS

REPO = Path(__file__).resolve().parent.parent.parent
FIELDS = {"id", "text", "url", "source", "package", "object", "licence", "domain_hint"}


def _build(root: Path, snapshot: str, num_docs: int = 50) -> Path:
    argv = ["--snapshot", snapshot, "--root-uri", f"file://{root}", "--num-docs", str(num_docs)]
    assert build_sample.main(argv) == 0
    return root / "corpus" / snapshot


def _records(folder: Path) -> list[dict]:
    return [
        json.loads(line)
        for part in sorted(folder.glob("part-*.jsonl.gz"))
        for line in gzip.decompress(part.read_bytes()).decode("utf-8").splitlines()
    ]


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_sample_is_real_deterministic_and_mixed(tmp_path):
    first = _build(tmp_path / "a", "2026-11-01")
    # Rebuilt in a fresh process (fresh hash seeds, fresh imports): the same bytes.
    other = tmp_path / "b"
    cmd = [
        sys.executable,
        "-m",
        "jobs.corpus.build_sample",
        "--snapshot",
        "2026-11-01",
        "--root-uri",
        f"file://{other}",
        "--num-docs",
        "50",
    ]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=300)
    assert _bytes(first) == _bytes(other / "corpus" / "2026-11-01")
    assert sorted(_bytes(first)) == ["_corpus.json", "part-00000.jsonl.gz", "part-00001.jsonl.gz"]
    assert (first / "part-00000.jsonl.gz").read_bytes()[4:8] == b"\0\0\0\0"  # mtime 0

    records = _records(first)
    assert len(records) == 50 and len({r["id"] for r in records}) == 50
    assert all(set(r) == FIELDS for r in records)
    hints = [r["domain_hint"] for r in records]
    assert hints.count("math") == 30 and hints.count("general") == 20
    assert {r["source"] for r in records if r["domain_hint"] == "general"} == {"python-stdlib"}
    assert {r["licence"] for r in records if r["domain_hint"] == "math"} == {"BSD-3-Clause"}
    assert all(len(r["text"]) >= MIN_DOC_CHARS for r in records)
    assert all(r["url"] == f"pydoc://{r['object']}" for r in records)

    meta = json.loads((first / "_corpus.json").read_text())
    assert meta["num_docs"] == 50 and meta["by_domain_hint"] == {"math": 30, "general": 20}
    assert {s["name"] for s in meta["sources"]} == {"sympy", "mpmath", "scipy", "python-stdlib"}
    assert all(s["version"] for s in meta["sources"])
    assert sum(f["num_docs"] for f in meta["files"].values()) == 50


def _resolve(dotted: str):
    """The object behind a dotted name: longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecated sympy modules warn on import
                obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise LookupError(dotted)


def test_text_is_the_objects_own_docstring(tmp_path):
    records = _records(_build(tmp_path, "2026-11-01", num_docs=20))
    for r in records:
        assert r["text"] == inspect.getdoc(_resolve(r["object"])), r["object"]


def test_snapshots_differ_and_rebuild_overwrites(tmp_path):
    one = {r["id"] for r in _records(_build(tmp_path, "2026-11-01"))}
    two = {r["id"] for r in _records(_build(tmp_path, "2026-12-01"))}
    assert one != two
    folder = _build(tmp_path, "2026-11-01", num_docs=10)
    assert len(_records(folder)) == 10  # rebuilt in place, nothing of the 50-doc build left
    assert sorted(p.name for p in folder.iterdir()) == [
        "_corpus.json",
        "part-00000.jsonl.gz",
        "part-00001.jsonl.gz",
    ]


def test_bad_arguments_exit_with_config_error(tmp_path):
    assert build_sample.main(["--snapshot", "../x", "--root-uri", f"file://{tmp_path}"]) == 2
    assert build_sample.main(["--snapshot", "s", "--num-docs", "0"]) == 2
