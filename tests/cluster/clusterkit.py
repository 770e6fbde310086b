"""Helpers of the cluster tests (not a test module)."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def events_of(kubectl, namespace: str = "synthllm") -> list[dict]:
    """The namespace's events (pods come and go; their events stay for an hour)."""
    return json.loads(kubectl("-n", namespace, "get", "events", "-o", "json").stdout)["items"]
