"""Turn per-expectation results into the validation verdict the DAG and publish act on.

``success`` means no *critical* expectation failed; non-critical failures are warnings.
Publication reads ``success`` from ``{run}/validation/{table}/result.json``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jobs.errors import PermanentError

RESULT_FILE = "result.json"


class ValidationFailedError(PermanentError, RuntimeError):
    """A critical expectation failed: the run must stop before publication."""


def describe(result: Mapping[str, Any]) -> str:
    """One line naming an expectation and what it saw, e.g. for logs and error messages."""
    kwargs = result.get("kwargs", {})
    target = kwargs.get("column") or kwargs.get("column_list") or ""
    head = f"{result['suite']}: {result['type']}({target})"
    if result.get("exception"):
        return f"{head} raised: {result['exception']}"
    bits = []
    if result.get("unexpected_count"):
        bits.append(f"{result['unexpected_count']} unexpected")
    if result.get("unexpected_examples"):
        bits.append(f"e.g. {result['unexpected_examples'][:3]!r}")
    if result.get("observed_value") is not None:
        bits.append(f"observed {result['observed_value']!r}")
    return head + (f" — {', '.join(bits)}" if bits else "")


def verdict(
    table: str,
    results: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any],
    parameters: Mapping[str, Any],
) -> dict[str, Any]:
    """The body of ``result.json``: success flag, statistics, failures and every result."""
    failed = [r for r in results if not r["success"]]
    critical = [describe(r) for r in failed if r["critical"]]
    warnings = [describe(r) for r in failed if not r["critical"]]
    return {
        "table": table,
        "success": not critical,
        "all_passed": not failed,
        "statistics": {
            "evaluated": len(results),
            "successful": len(results) - len(failed),
            "failed": len(failed),
            "critical_failed": len(critical),
            "warnings": len(warnings),
        },
        "critical_failures": critical,
        "warnings": warnings,
        "metrics": dict(metrics),
        "parameters": dict(parameters),
        "results": list(results),
    }


def failure_message(result: Mapping[str, Any]) -> str:
    """The error text for a failed validation, listing each failed critical expectation."""
    lines = [
        f"validation of {result['table']!r} failed {len(result['critical_failures'])} "
        f"critical expectation(s):"
    ]
    lines += [f"  - {item}" for item in result["critical_failures"]]
    return "\n".join(lines)
