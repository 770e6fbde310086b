"""Importing any job module has no heavy side effects (STYLE.md rule 2)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "vllm", "pyspark", "transformers", "great_expectations", "sentence_transformers")


def _job_modules() -> list[str]:
    mods = []
    for path in sorted((REPO / "jobs").rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods.append(".".join(parts))
    return mods


# The adapter modules whose whole point is one heavy library.
ADAPTERS = {
    "jobs.spark",
    "jobs.llm.transformers_engine",
    "jobs.llm.vllm_engine",
    "jobs.validate.gx_adapter",
}


def test_job_modules_import_without_heavy_libraries():
    mods = [m for m in _job_modules() if m not in ADAPTERS]
    assert "jobs.cli" in mods and len(mods) > 10
    code = (
        "import importlib, sys, logging\n"
        f"mods = {mods!r}\n"
        "for m in mods: importlib.import_module(m)\n"
        f"heavy = [h for h in {HEAVY!r} if h in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert not logging.getLogger().handlers, 'logging configured at import'\n"
        "print(len(mods))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(mods)


def test_only_one_module_imports_vllm():
    hits = [
        p.relative_to(REPO).as_posix()
        for p in (REPO / "jobs").rglob("*.py")
        if any(
            line.strip().startswith(("import vllm", "from vllm"))
            for line in p.read_text().splitlines()
        )
    ]
    assert hits == ["jobs/llm/vllm_engine.py"]
