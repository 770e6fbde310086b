"""The one module that imports Great Expectations (GX 1.x fluent API).

It turns a :class:`~jobs.validate.suites.SuiteSpec` into two GX suites — ``{table}`` on the
table and ``{table}_metrics`` on the one-row metrics table — runs each through a Checkpoint
whose ``UpdateDataDocsAction`` builds a filesystem Data Docs site, and hands back plain
dicts, so no GX object leaks into the rest of the code. The context is ephemeral (stores in
memory): a job builds one :class:`GxValidator` and the site folder is all that outlives it.

A table validated in chunks runs the table suite once per chunk (:meth:`GxValidator.run`);
only the first chunk's run renders a Data Docs page, the others use a checkpoint without the
docs action. Each summary carries ``element_count``/``missing_count`` so that chunk results
can be merged (:mod:`jobs.validate.chunked`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from jobs.validate.suites import ExpectationSpec

log = logging.getLogger(__name__)

SITE_NAME = "synthllm"
_MAX_EXAMPLES = 10


def _camel(expectation_type: str) -> str:
    return "".join(part.capitalize() for part in expectation_type.split("_"))


def _jsonable(value: Any) -> Any:
    """GX results hold numpy scalars and arrays; round-trip them through JSON text."""
    return json.loads(json.dumps(value, default=_to_builtin))


def _to_builtin(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


class GxValidator:
    """An ephemeral GX context with a pandas datasource and one local Data Docs site."""

    def __init__(self, site_dir: Path) -> None:
        # GX reads this when the context is built; opt out of usage analytics.
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        # GX logs hundreds of INFO lines about its own registry on import; keep its warnings.
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        self._gx = gx
        self.site_dir = Path(site_dir)
        site = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(self.site_dir),
            },
        }
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            data_docs_sites={SITE_NAME: site},
            analytics_enabled=False,
            # tqdm bars per metric flood the Airflow task log.
            progress_bars=ProgressBarsConfig(globally=False),
        )
        self.context = gx.get_context(mode="ephemeral", project_config=config)
        self._source = self.context.data_sources.add_pandas("synthllm")
        self._checkpoints: dict[tuple[str, bool], Any] = {}

    def _expectation(self, spec: ExpectationSpec):
        cls = getattr(self._gx.expectations, _camel(spec.type), None)
        if cls is None:
            raise ValueError(f"unknown Great Expectations expectation type {spec.type!r}")
        extra = {"notes": spec.notes} if spec.notes else {}
        return cls(**spec.kwargs, meta={"critical": spec.critical}, **extra)

    def _checkpoint(self, name: str, specs: tuple[ExpectationSpec, ...], docs: bool):
        key = (name, docs)
        if key not in self._checkpoints:
            self._checkpoints[key] = self._build_checkpoint(name, specs, docs)
        return self._checkpoints[key]

    def _build_checkpoint(self, name: str, specs: tuple[ExpectationSpec, ...], docs: bool):
        gx = self._gx
        suite = gx.ExpectationSuite(name=name)
        for spec in specs:
            suite.add_expectation(self._expectation(spec))
        suite = self.context.suites.add_or_update(suite)
        if name in self._source.get_asset_names():
            asset = self._source.get_asset(name)
        else:
            asset = self._source.add_dataframe_asset(name)
        batch = next((b for b in asset.batch_definitions if b.name == "whole"), None)
        batch = batch or asset.add_batch_definition_whole_dataframe("whole")
        vdef = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        # The action renders this run's pages and refreshes the site index.
        action = gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[SITE_NAME])
        return self.context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name if docs else f"{name}__nodocs",
                validation_definitions=[vdef],
                actions=[action] if docs else [],
                result_format={"result_format": "SUMMARY"},
            )
        )

    def run(
        self,
        name: str,
        specs: tuple[ExpectationSpec, ...],
        frame: Any,
        parameters: dict[str, Any],
        run_name: str,
        docs: bool = True,
    ) -> list[dict[str, Any]]:
        """Run suite ``name`` (``specs``) on a pandas frame; one plain dict per expectation.

        With ``docs`` the run's page is rendered and the site under ``site_dir`` rebuilt.
        """
        from great_expectations.core.run_identifier import RunIdentifier

        result = self._checkpoint(name, specs, docs).run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=parameters,
            run_id=RunIdentifier(run_name=run_name),
        )
        out: list[dict[str, Any]] = []
        for suite_result in result.run_results.values():
            out.extend(_summarise(name, r) for r in suite_result.results)
        return out

    @property
    def index_path(self) -> Path:
        """The built site's entry page."""
        return self.site_dir / "index.html"


def _summarise(suite: str, result: Any) -> dict[str, Any]:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    details = result.result or {}
    exc = result.exception_info or {}
    return _jsonable(
        {
            "suite": suite,
            "type": config.type,
            "kwargs": kwargs,
            "critical": bool((config.meta or {}).get("critical", True)),
            "success": bool(result.success),
            "observed_value": details.get("observed_value"),
            "unexpected_count": details.get("unexpected_count"),
            "unexpected_percent": details.get("unexpected_percent"),
            "unexpected_examples": (details.get("partial_unexpected_list") or [])[:_MAX_EXAMPLES],
            "element_count": details.get("element_count"),
            "missing_count": details.get("missing_count"),
            "exception": exc.get("exception_message") if exc.get("raised_exception") else None,
        }
    )
