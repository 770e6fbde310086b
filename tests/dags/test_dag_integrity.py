"""Layer 1: every DAG file parses without import errors, within a time budget, in both profiles."""

from __future__ import annotations

import pytest

# Airflow's own dagbag_import_timeout is 30 s; a wiring-only DAG file takes well under 1 s
# (about 0.06 s local, 1.4 s kubernetes with the provider imports, on 2 shared cores).
PARSE_BUDGET_S = 10.0
EXPECTED_DAGS = {"synthllm_generate"}


@pytest.mark.parametrize("profile", ["local", "kubernetes"])
def test_dags_parse_without_errors_in_budget(parse_dags, profile):
    bag = parse_dags(profile)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) >= EXPECTED_DAGS
    for stat in bag.dagbag_stats:
        assert stat.duration.total_seconds() < PARSE_BUDGET_S, stat


def test_support_package_is_not_parsed_as_dags(dagbag):
    parsed = {stat.file for stat in dagbag.dagbag_stats}
    assert not any("synthllm_tasks" in f for f in parsed), parsed


def test_unknown_profile_is_an_import_error(parse_dags):
    bag = parse_dags("cloud")
    errors = "\n".join(bag.import_errors.values())
    assert "profile must be one of" in errors and "'cloud'" in errors
