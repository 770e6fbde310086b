"""The fault-injection suite's outcome table, printed at the end of the pytest run (CI logs)."""

from __future__ import annotations

import pytest

# (fault, stage, outcome) rows, in the order the tests ran.
FAULT_TABLE: list[tuple[str, str, str]] = []


@pytest.fixture
def record():
    """``record(fault, stage, outcome)``: one row of the printed fault table."""

    def _record(fault: str, stage: str, outcome: str) -> None:
        FAULT_TABLE.append((fault, stage, outcome))

    return _record


def pytest_terminal_summary(terminalreporter):
    if not FAULT_TABLE:
        return
    headers = ("fault", "stage", "outcome")
    widths = [max(len(r[i]) for r in [headers, *FAULT_TABLE]) for i in range(2)]
    terminalreporter.section("fault injection")
    for row in [headers, *FAULT_TABLE]:
        terminalreporter.write_line(f"{row[0]:<{widths[0]}} | {row[1]:<{widths[1]}} | {row[2]}")
