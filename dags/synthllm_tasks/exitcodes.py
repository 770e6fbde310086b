"""Exit codes of a job process: the contract with ``jobs/errors.py`` (DAG code cannot import it).

2 = permanent (bad config, corrupt input under the fail policy, a critical expectation failure,
a publish refusal): the task fails without retries. 75 (``EX_TEMPFAIL``) = transient, 1 =
unexpected, a signal or an OOM kill (negative locally, 128+n in a pod): retried with backoff.
"""

from __future__ import annotations

EXIT_PERMANENT = 2
EXIT_TRANSIENT = 75


def is_permanent(returncode: int | None) -> bool:
    """True when retrying a job that exited with ``returncode`` cannot help."""
    return returncode == EXIT_PERMANENT
