"""Kubernetes test set-up: Airflow env (the render tests parse the DAGs) and schema validators.

No cluster runs here, so every object is checked against published schemas instead: core
objects with kubernetes-validate, SparkApplications with the spark-operator CRD's OpenAPI v3
schema from ../shared/reference/k8s-crds/ (tests skip, saying why, where it is absent).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from k8s_yaml import load_yaml_docs

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
CRD_FILE = REPO.parent / "shared/reference/k8s-crds/sparkoperator.k8s.io_sparkapplications.yaml"
# A Kubernetes minor version kubernetes-validate ships schemas for (a current EKS/GKE release).
K8S_VERSION = "1.33"

# The Airflow environment (a throw-away AIRFLOW_HOME) is set by tests/conftest.py.


def _close_objects(schema):
    """Reject unknown fields, as the API server does with strict field validation.

    A structural CRD schema silently prunes unknown fields; a typo in a rendered object would
    then be dropped without error, so the test schema forbids them instead.
    """
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            _close_objects(value)
    elif isinstance(schema, list):
        for item in schema:
            _close_objects(item)
    return schema


@pytest.fixture(scope="session")
def spark_app_schema():
    """The v1beta2 SparkApplication openAPIV3Schema, closed against unknown fields."""
    if not CRD_FILE.is_file():
        pytest.skip(f"spark-operator CRD schema not found at {CRD_FILE} (shared/ not present)")
    crd = yaml.safe_load(CRD_FILE.read_text())
    versions = {v["name"]: v for v in crd["spec"]["versions"]}
    return _close_objects(copy.deepcopy(versions["v1beta2"]["schema"]["openAPIV3Schema"]))


@pytest.fixture(scope="session")
def validate_spark_app(spark_app_schema):
    """``validate_spark_app(obj)`` raises jsonschema.ValidationError on an invalid object."""
    import jsonschema

    validator = jsonschema.Draft7Validator(
        spark_app_schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )

    def validate(obj):
        errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        if errors:
            raise errors[0]
        assert obj["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
        assert obj["kind"] == "SparkApplication"

    return validate


@pytest.fixture(scope="session")
def validate_k8s():
    """``validate_k8s(obj)``: kubernetes-validate against the K8S_VERSION schemas, strict."""
    import kubernetes_validate

    def validate(obj):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)

    return validate


@pytest.fixture(scope="session")
def k8s_manifests() -> dict[str, list[dict]]:
    """Every YAML file under k8s/ and k8s/templates/, by path relative to k8s/."""
    k8s = REPO / "k8s"
    files = [*sorted(k8s.glob("*.yaml")), *sorted(k8s.glob("templates/*.yaml"))]
    return {str(p.relative_to(k8s)): load_yaml_docs(p) for p in files}


@pytest.fixture(scope="session")
def pod_templates() -> dict[str, dict]:
    """The pod templates shipped with the DAG code, by kind (``cpu``, ``gpu``, ``spark``)."""
    from synthllm_tasks.kubernetes import POD_TEMPLATES

    templates = {}
    for kind, path in POD_TEMPLATES.items():
        (doc,) = load_yaml_docs(path)
        templates[kind] = doc
    return templates


def parse_generate_dag(monkeypatch, constants=None, env=None):
    """synthllm_generate parsed as the DAG processor does, with SYNTHLLM_PROFILE=kubernetes.

    ``constants``: ``synthllm_tasks.kubernetes`` settings to patch first (they are read from
    the environment at import, e.g. ``SPARK_RUNTIME``, ``GPUS``); ``env``: variables the DAG
    file reads when parsed (``SYNTHLLM_K8S_SIZES``). The operators keep what they were built
    with after ``monkeypatch`` undoes both.
    """
    from airflow.dag_processing.dagbag import BundleDagBag
    from synthllm_tasks import kubernetes as kube

    for name, value in (constants or {}).items():
        assert hasattr(kube, name), name
        monkeypatch.setattr(kube, name, value)
    for name, value in {"SYNTHLLM_PROFILE": "kubernetes", **(env or {})}.items():
        monkeypatch.setenv(name, value)
    bag = BundleDagBag(dag_folder=DAGS, bundle_path=DAGS)
    assert bag.import_errors == {}
    return bag.dags["synthllm_generate"]


@pytest.fixture(scope="module")
def k8s_dag():
    """synthllm_generate in the kubernetes profile with the default settings (Spark in pods)."""
    with pytest.MonkeyPatch.context() as mp:
        return parse_generate_dag(mp)


@pytest.fixture(scope="module")
def k8s_dag_operator():
    """synthllm_generate in the kubernetes profile with ``SPARK_RUNTIME = "operator"``."""
    with pytest.MonkeyPatch.context() as mp:
        return parse_generate_dag(mp, {"SPARK_RUNTIME": "operator"})


@pytest.fixture
def parse_k8s_dag(monkeypatch):
    """``parse_k8s_dag(constants=None, env=None)``: see ``parse_generate_dag``."""

    def parse(constants=None, env=None):
        return parse_generate_dag(monkeypatch, constants, env)

    return parse
