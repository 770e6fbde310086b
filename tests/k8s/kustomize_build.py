"""Test helper: ``kustomize build`` for the subset k8s/ uses (no kubectl in CI).

Supported: ``resources`` (files in the kustomization's folder, or folders holding a
kustomization), ``images`` (newName/newTag) and ``patches`` that are JSON 6902 operation lists
with a ``target``. Anything else in a kustomization is an error, so a new feature cannot be
silently skipped here. kustomize's own rules that broke real builds are kept: a file must lie
in or below its kustomization's folder, and a base folder may not contain the overlay.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonpatch
import yaml
from k8s_yaml import load_yaml_docs

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_SUPPORTED = {"apiVersion", "kind", "resources", "images", "patches"}


class KustomizeError(ValueError):
    """The kustomization would not build with kustomize either (or uses an unsupported field)."""


def kustomization_file(folder: Path) -> Path:
    found = [folder / n for n in KUSTOMIZATION_NAMES if (folder / n).is_file()]
    if len(found) != 1:
        raise KustomizeError(f"{folder}: expected one kustomization file, found {found}")
    return found[0]


def _inside(path: Path, root: Path) -> Path:
    path = path.resolve()
    if not path.is_relative_to(root.resolve()):
        raise KustomizeError(f"security; file '{path}' is not in or below '{root}'")
    return path


def build(folder: Path, _visited: tuple[Path, ...] = ()) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize folder`` prints (as dicts, in resource order)."""
    folder = folder.resolve()
    if any(v.is_relative_to(folder) for v in _visited):
        raise KustomizeError(f"cycle detected: candidate root '{folder}' contains a visited root")
    spec = yaml.safe_load(kustomization_file(folder).read_text())
    unknown = set(spec) - _SUPPORTED
    if unknown:
        raise KustomizeError(f"{folder}: fields this helper does not apply: {sorted(unknown)}")
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources") or []:
        path = (folder / entry).resolve()
        if path.is_dir():
            docs += build(path, (*_visited, folder))
        else:
            docs += copy.deepcopy(load_yaml_docs(_inside(path, folder)))
    for image in spec.get("images") or []:
        for doc in docs:
            _set_image(doc, image)
    for patch in spec.get("patches") or []:
        ops = yaml.safe_load(_inside(folder / patch["path"], folder).read_text())
        if not isinstance(ops, list):
            raise KustomizeError(f"{patch['path']}: only JSON 6902 patches are supported here")
        matched = [i for i, doc in enumerate(docs) if _matches(doc, patch["target"])]
        if not matched:
            raise KustomizeError(f"{patch['path']}: no resource matches {patch['target']}")
        for i in matched:
            docs[i] = jsonpatch.apply_patch(docs[i], ops)
    return docs


def _matches(doc: dict[str, Any], target: dict[str, str]) -> bool:
    group, _, version = doc["apiVersion"].rpartition("/")
    have = {"group": group, "version": version, "kind": doc["kind"]}
    have["name"] = doc["metadata"]["name"]
    return all(have[key] == value for key, value in target.items())


def _set_image(doc: dict[str, Any], image: dict[str, str]) -> None:
    spec = (doc.get("spec") or {}).get("template", {}).get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        name, _, tag = container.get("image", "").partition(":")
        if name == image["name"]:
            container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
