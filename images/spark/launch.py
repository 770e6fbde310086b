"""Start a job module inside a Spark driver: ``launch.py <module> [args...]``.

spark-operator's SparkApplication names a file to run (``mainApplicationFile``), while every
job is a module run as ``python -m jobs.<stage>.<job> ...``. This file keeps the two argv
identical: it runs ``<module>`` as ``__main__`` with ``[module, *args]`` as ``sys.argv``, so
the job's own ``raise SystemExit(main())`` sets the driver's exit code.
"""

from __future__ import annotations

import runpy
import sys

USAGE = "usage: launch.py <module> [args...]"


def main(argv: list[str]) -> int:
    """Run ``argv[0]`` as the ``__main__`` module with the remaining arguments."""
    if not argv or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    module, *args = argv
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
