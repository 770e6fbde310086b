"""kubectl's own kustomize builds the LLM server manifests into what the tests' helper builds.

``tests/k8s`` checks the objects through ``kustomize_build.build``, a stand-in for
``kubectl kustomize`` that needs no binary; here, where the cluster's kubectl is on PATH,
the two must agree.
"""

from __future__ import annotations

import sys

import yaml
from clusterkit import REPO

sys.path.insert(0, str(REPO / "tests/k8s"))
from kustomize_build import build  # noqa: E402


def _objects(docs):
    return {d["kind"]: d for d in docs}


def test_kubectl_kustomize_builds_the_same_objects(kubectl):
    for folder in (REPO / "k8s/llm-server", REPO / "k8s/overlays/cluster-local"):
        out = kubectl("kustomize", str(folder))
        assert _objects(d for d in yaml.safe_load_all(out.stdout) if d) == _objects(build(folder))
