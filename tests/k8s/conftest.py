"""Kubernetes test set-up: Airflow env (the render tests parse the DAGs) and schema validators.

No cluster runs here, so every object is checked against published schemas instead: core
objects with kubernetes-validate, SparkApplications with the spark-operator CRD's OpenAPI v3
schema from ../shared/reference/k8s-crds/ (tests skip, saying why, where it is absent).
"""

from __future__ import annotations

import copy
import os
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


@pytest.fixture(scope="module")
def k8s_dag():
    """synthllm_generate parsed as the DAG processor does, with SYNTHLLM_PROFILE=kubernetes."""
    from airflow.dag_processing.dagbag import BundleDagBag

    os.environ["SYNTHLLM_PROFILE"] = "kubernetes"
    try:
        bag = BundleDagBag(dag_folder=REPO / "dags", bundle_path=REPO / "dags")
    finally:
        os.environ.pop("SYNTHLLM_PROFILE", None)
    assert bag.import_errors == {}
    return bag.dags["synthllm_generate"]
