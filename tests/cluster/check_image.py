"""Runs inside a built image: its job modules start, and the files the config names exist.

    python check_image.py PATHS_JSON MODULE...

Every MODULE must import and answer ``--help`` (exit 0); every repository-relative path in
PATHS_JSON (what the config names: suites, seeds, jars...) must exist under the image's
working directory. Prints one line per problem; exits 1 if there is any.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def main() -> int:
    paths, modules = json.loads(sys.argv[1]), sys.argv[2:]
    problems = []
    for module in modules:
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=300
        )
        if done.returncode != 0 or "usage" not in done.stdout.lower():
            problems.append(f"{module} --help: exit {done.returncode}: {done.stderr[-800:]}")
    for path in paths:
        if not Path(path).exists():
            problems.append(f"missing in the image: {Path(path).resolve()}")
    for problem in problems:
        print(problem)
    print(f"checked {len(modules)} modules and {len(paths)} paths in {Path.cwd()}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
