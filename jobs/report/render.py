"""Render the summary dict as one self-contained HTML page (plots inlined as data URIs)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from jobs.report.summary import NOT_RUN, STAGES

_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:1100px}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".passed{color:#17702a}.failed{color:#b00020;font-weight:bold}.notrun{color:#777}"
    "figure{display:inline-block;margin:0 1em 1em 0}"
)


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{_esc(c)}</td>' if isinstance(c, int | float) else f"<td>{_esc(c)}</td>"
            for c in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _not_run(what: str) -> str:
    return f'<p class="notrun">{_esc(what)}: {NOT_RUN}.</p>'


def _stages(summary: Mapping[str, Any]) -> str:
    rows = []
    for stage, job in STAGES.items():
        s = summary["stages"][stage]
        keys = ("rows_in", "rows_out", "rows_quarantined", "table_rows", "wall_s")
        rows.append([stage, job, s["status"], *(s.get(k) for k in keys)])
    headers = [
        "output",
        "job",
        "status",
        "rows in",
        "rows out",
        "quarantined",
        "table rows",
        "wall s",
    ]
    note = (
        "<p>Rows in = rows out + quarantined, in each stage's own unit (the question stage "
        "counts documents); table rows count the rows of the table it wrote.</p>"
    )
    return "<h2>Rows per stage</h2>" + note + _table(headers, rows)


def _quarantine(summary: Mapping[str, Any]) -> str:
    if not summary["quarantine"]:
        return "<h2>Quarantine reasons</h2>" + _not_run("no stage")
    rows = [
        [stage, reason, n]
        for stage, reasons in summary["quarantine"].items()
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])
    ]
    if not rows:
        return "<h2>Quarantine reasons</h2><p>No rows were quarantined.</p>"
    return "<h2>Quarantine reasons</h2>" + _table(["stage output", "reason", "rows"], rows)


def _tokens(summary: Mapping[str, Any]) -> str:
    rows = [
        [stage, kind, n] for stage, kinds in summary["tokens"].items() for kind, n in kinds.items()
    ]
    if not rows:
        return "<h2>Tokens</h2>" + _not_run("no stage recorded tokens, or none")
    rows.append(["total", "", summary["total_tokens"]])
    return "<h2>Tokens</h2>" + _table(["stage output", "kind", "tokens"], rows)


def _parse(summary: Mapping[str, Any]) -> str:
    rows = []
    for stage, p in summary["parse"].items():
        if p.get("status") == NOT_RUN:
            rows.append([stage, NOT_RUN, ""])
        else:
            rows.append([stage, f"{p['parse_success_rate']:.1%}", f"{p['parse_failure_rate']:.1%}"])
    return "<h2>Parse rates of model output</h2>" + _table(
        ["stage output", "parsed", "parse failures"], rows
    )


def _validation(summary: Mapping[str, Any], docs_link: str) -> str:
    rows = []
    for table, v in summary["validation"].items():
        problems = "; ".join(v.get("critical_failures", []) + v.get("warnings", [])) or "—"
        rows.append([table, v["status"], v.get("evaluated"), v.get("failed"), problems])
    link = f'<p><a href="{_esc(docs_link)}">Great Expectations Data Docs</a></p>'
    return (
        "<h2>Validation</h2>"
        + link
        + _table(["table", "status", "expectations", "failed", "failures and warnings"], rows)
    )


def _lengths(summary: Mapping[str, Any], plots: Mapping[str, str | None]) -> str:
    rows, figures = [], []
    for name, st in summary["lengths"].items():
        if st is None:
            rows.append([name, NOT_RUN, "", "", "", "", ""])
            continue
        rows.append([name, *(st.get(k) for k in ("count", "min", "median", "mean", "p90", "max"))])
        if plots.get(name):
            figures.append(
                f'<figure><img alt="{_esc(name)} histogram" src="{plots[name]}">'
                f"<figcaption>{_esc(name)}</figcaption></figure>"
            )
    headers = ["length (chars)", "count", "min", "median", "mean", "p90", "max"]
    return "<h2>Length distributions</h2>" + _table(headers, rows) + "".join(figures)


def render_html(summary: Mapping[str, Any], plots: Mapping[str, str | None]) -> str:
    """The report page; ``plots`` maps a length name to a PNG data URI (or None)."""
    links = summary["links"]
    dataset = links.get("dataset")
    title = f"SynthLLM report — snapshot {summary['snapshot']}"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{_esc(title)}</h1>"
        f"<p>run id: <code>{_esc(summary['run_id'])}</code>"
        + (f" · dataset: <code>{_esc(dataset)}</code>" if dataset else "")
        + " · <a href='summary.json'>summary.json</a></p>"
        + _stages(summary)
        + _validation(summary, links.get("data_docs", "data_docs/index.html"))
        + _quarantine(summary)
        + _tokens(summary)
        + _parse(summary)
        + _lengths(summary, plots)
        + "</body></html>"
    )
