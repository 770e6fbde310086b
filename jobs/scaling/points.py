"""Points measured elsewhere, for ``python -m jobs.scaling.fit``: CSV or JSON in, Points out.

CSV: a header with ``tokens`` and ``error`` (``loss`` is accepted for held-out loss); other
columns ride along into the report. JSON: a list of ``{"tokens": ..., "error": ...}``
objects, or ``{"points": [...]}``. The format is chosen by the extension (.csv / .json).
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from collections.abc import Mapping
from typing import Any

from jobs.errors import PermanentError
from jobs.scaling.fit import Point

VALUE_KEYS = ("error", "loss")


class PointsError(PermanentError, ValueError):
    """The points file cannot be read (format, columns, numbers)."""


def _number(raw: Any, what: str, where: str) -> float:
    if isinstance(raw, bool):
        raise PointsError(f"{where}: {what} must be a number, got {raw!r}")
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise PointsError(f"{where}: {what} must be a number, got {raw!r}") from None


def _point(row: Mapping[str, Any], where: str) -> Point:
    if "tokens" not in row:
        raise PointsError(f"{where}: no 'tokens' field (fields: {sorted(row)})")
    key = next((k for k in VALUE_KEYS if k in row), None)
    if key is None:
        raise PointsError(f"{where}: no 'error' (or 'loss') field (fields: {sorted(row)})")
    info = {k: v for k, v in row.items() if k not in ("tokens", key)}
    return Point(_number(row["tokens"], "tokens", where), _number(row[key], key, where), info)


def parse_points(text: str, name: str) -> list[Point]:
    """Points from the text of a ``.csv`` or ``.json`` file called ``name``."""
    if name.lower().endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
        return [_point(row, f"{name} row {i + 2}") for i, row in enumerate(rows)]
    if name.lower().endswith(".json"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PointsError(f"{name}: not JSON ({exc})") from None
        rows = doc.get("points") if isinstance(doc, dict) else doc
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise PointsError(f"{name}: expected a list of objects or {{'points': [...]}}")
        return [_point(row, f"{name} point {i}") for i, row in enumerate(rows)]
    raise PointsError(f"{name}: expected a .csv or .json file")


def default_out(points_uri: str) -> str:
    """``.../runs.csv`` -> ``.../runs_fit`` (next to the input)."""
    folder, base = posixpath.split(points_uri)
    stem = base.rsplit(".", 1)[0]
    return posixpath.join(folder, f"{stem}_fit")
