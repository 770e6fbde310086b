"""Test helper: the YAML documents of a k8s/ file (imported by name, unlike conftest)."""

from __future__ import annotations

from pathlib import Path

import yaml


def load_yaml_docs(path: Path) -> list[dict]:
    """The non-empty documents of a multi-document YAML file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
