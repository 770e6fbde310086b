"""JSON-lines text read line by line, with errors that name the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def json_objects(text: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of ``text``.

    A line that is not JSON, or not a JSON object, raises ``ValueError("{source}:{line}: …")``.
    """
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{source}:{lineno}: expected a JSON object")
        yield lineno, row
