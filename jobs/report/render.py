"""Render the summary dict as one self-contained HTML page (plots inlined as data URIs)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from jobs.report.plots import degree_label
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


def _round(value: Any) -> Any:
    return round(value, 2) if isinstance(value, float) else value


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


def _figure(plots: Mapping[str, str | None], key: str, caption: str) -> str:
    if not plots.get(key):
        return ""
    return (
        f'<figure><img alt="{_esc(caption)}" src="{plots[key]}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _graph(summary: Mapping[str, Any], plots: Mapping[str, str | None]) -> str:
    g = summary["graph"]
    head = "<h2>Concept graph</h2>"
    if g["status"] == NOT_RUN:
        return head + _not_run("graph")
    if "vertices" not in g and "edges" not in g:
        return head + "<p>Committed without graph statistics.</p>"
    rows = [["vertices", k, n] for k, n in g.get("vertices", {}).items()]
    rows.append(["vertices", "total", g.get("vertices_total")])
    rows += [["edges", k, n] for k, n in g.get("edges", {}).items()]
    rows.append(["edges", "total", g.get("edges_total")])
    rows += [["pruned", k, n] for k, n in g.get("pruned", {}).items()]
    comp = g.get("components", {})
    share = comp.get("largest_share")
    rows += [
        ["components", "count", comp.get("count")],
        ["components", "largest size", comp.get("largest_size")],
        ["components", "largest share", "" if share is None else f"{share:.1%}"],
    ]
    out = head + _table(["what", "kind", "count"], rows)
    degree = g.get("degree", {})
    keys = ("min", "p50", "mean", "p90", "p99", "max")
    stats = [_round(degree.get(k)) for k in keys]
    out += "<h3>Degree</h3>" + _table(keys, [stats])
    histogram = degree.get("histogram") or []
    if histogram:
        rows = [[degree_label(int(lo)), n] for lo, n in histogram]
        out += _table(["degree", "vertices"], rows)
    return out + _figure(plots, "graph_degree", "vertex degree")


def _combinations(summary: Mapping[str, Any]) -> str:
    c = summary["combinations"]
    head = "<h2>Combinations</h2>"
    if c["status"] == NOT_RUN:
        return head + _not_run("combinations")
    rows = [[f"Level-{lvl}", n] for lvl, n in c["by_level"].items()]
    out = head + _table(["level", "combinations"], [*rows, ["total", c["total"]]])
    walks = c.get("walks") or {}
    if walks:
        reasons = walks.get("end_reasons") or {}
        rows = [[k, v] for k, v in walks.items() if k != "end_reasons"]
        rows += [[f"walks ended: {k}", v] for k, v in reasons.items()]
        out += "<h3>Random walks (Level-3)</h3>" + _table(["figure", "value"], rows)
    return out


def _levels(summary: Mapping[str, Any]) -> str:
    levels = summary["levels"]
    counts = {t: row.get("by_level", NOT_RUN) for t, row in levels.items()}
    keys = sorted({lvl for c in counts.values() if c != NOT_RUN for lvl in c}, key=int)
    rows = [
        [f"Level-{lvl}", *(NOT_RUN if c == NOT_RUN else c.get(lvl, 0) for c in counts.values())]
        for lvl in keys or ["1", "2", "3"]
    ]
    headers = ["level", *(f"{t} rows" for t in counts)]
    return "<h2>Rows per level</h2>" + _table(headers, rows)


FUNNEL_STAGES = ("generate_questions", "clean_questions", "answers")


def _reasons(removed: Mapping[str, int]) -> str:
    return ", ".join(f"{r}: {n}" for r, n in removed.items()) or "–"


def _funnel(summary: Mapping[str, Any]) -> str:
    """Per level and stage: how many went in, came out, and why the rest were removed."""
    f = summary.get("funnel") or {"status": NOT_RUN}
    head = "<h2>Questions per level and stage</h2>"
    if "by_level" not in f:
        return head + "<p>not run</p>"
    rows = []
    for lvl, stages in f["by_level"].items():
        for stage in FUNNEL_STAGES:
            row = stages.get(stage)
            if row is None:
                rows.append([f"Level-{lvl}", stage, NOT_RUN, NOT_RUN, NOT_RUN])
                continue
            rows.append([f"Level-{lvl}", stage, row["in"], row["out"], _reasons(row["removed"])])
    note = (
        "<p>generate_questions counts prompts in and questions out (a prompt asks for several "
        "questions); the later stages count questions.</p>"
    )
    return head + note + _table(["level", "stage", "in", "out", "removed (reason: count)"], rows)


def _section_start(
    section: Mapping[str, Any], title: str, stage: str, missing: str
) -> tuple[str, str | None]:
    """The section's heading, and the whole section instead when it has nothing to show."""
    head = f"<h2>{title}</h2>"
    if section["status"] == NOT_RUN:
        return head, head + _not_run(stage)
    if section["status"] != "committed":
        return head, f"{head}<p>{missing}</p>"
    return head, None


def _document_filter(summary: Mapping[str, Any], plots: Mapping[str, str | None]) -> str:
    f = summary.get("document_filter") or {"status": NOT_RUN}
    head, empty = _section_start(
        f, "Document filter", "documents", "The documents stage recorded no fine-grained rounds."
    )
    if empty:
        return empty
    note = (
        f"<p>{_esc(f.get('num_candidates'))} candidates passed the heuristics and dedup; the "
        f"cold-start classifier kept {_esc(f.get('cold_start_kept'))} (round 0). Each round "
        f"{_esc(f.get('rater_model'))} rates a sample of the previous set plus a random "
        "sample, a random forest learns the ratings from the embeddings, and the documents "
        f"scoring above {_esc(f.get('threshold'))} form the next set. The final set comes from "
        f"round {_esc(f.get('decided_by_round'))}; unreadable ratings: "
        f"{_esc(f.get('ratings_quarantined') or 'none')}.</p>"
    )
    keys = ("sample_previous", "sample_random", "rated", "reused", "parsed", "repaired",
            "unparseable", "request_errors", "rating_mean", "above_threshold", "kept",
            "fallback", "seconds")  # fmt: skip
    rows = [["0 (cold start)", *([""] * 10), f.get("cold_start_kept"), "", ""]]
    rows += [[r.get("round"), *(_round(r.get(k)) for k in keys)] for r in f.get("rounds", [])]
    headers = ["round", "from previous set", "random", "rated", "reused", "parsed",
               "repaired", "unparseable", "errors", "mean rating", "above threshold", "kept",
               "fallback", "seconds"]  # fmt: skip
    figures = "".join(
        _figure(plots, f"filter_{k}", k.replace("_", " ")) for k in ("cold_start", "fine", "rating")
    )
    return head + note + _table(headers, rows) + figures


def _agreement(summary: Mapping[str, Any]) -> str:
    a = summary.get("agreement") or {"status": NOT_RUN}
    head, empty = _section_start(
        a, "Answer agreement", "answer checking", "The qa stage recorded no agreement figures."
    )
    if empty:
        return empty
    st = a["settings"]
    note = (
        f"<p>{_esc(st.get('num_samples', '?'))} sampled answer(s) per question, compared with "
        f"{_esc(st.get('verifier', 'math-verify'))} ({_esc(st.get('verify_timeout_s', '?'))} s "
        f"per comparison, {_esc(st.get('num_verify_timeouts', 0))} overran); agreement = "
        f"majority size / samples; below {_esc(st.get('min_agreement', '?'))} a question is "
        "quarantined (low_agreement). Questions with no usable answer are not counted.</p>"
    )
    rows = [
        [
            f"Level-{lvl}",
            f["questions"],
            f["kept"],
            f["low_agreement"],
            f["mean"],
            ", ".join(f"{k}: {n}" for k, n in f["histogram"].items()),
        ]
        for lvl, f in a["by_level"].items()
    ]
    headers = ["level", "questions", "kept", "low agreement", "mean", "agreement: questions"]
    return head + note + _table(headers, rows)


def _diversity(summary: Mapping[str, Any], plots: Mapping[str, str | None]) -> str:
    d = summary["diversity"]
    head = "<h2>Diversity</h2>"
    if d["status"] == NOT_RUN:
        return head + _not_run("questions")
    note = (
        f"<p>Cosine similarity of every pair of questions from the same source (combo_id), "
        f"embedded with {_esc(d['model'])}, as in the paper's Figure 5; at most "
        f"{d['max_sources_per_level']} sources per level. Lower means more diverse.</p>"
    )
    keys = ("num_sources", "num_questions", "num_pairs", "mean", "median", "p10", "p90")
    rows = [[f"Level-{lvl}", *(f.get(k) for k in keys)] for lvl, f in d["levels"].items()]
    headers = ["level", "sources", "questions", "pairs", "mean", "median", "p10", "p90"]
    return head + note + _table(headers, rows) + _figure(plots, "diversity", "similarity")


def render_html(summary: Mapping[str, Any], plots: Mapping[str, str | None]) -> str:
    """The report page; ``plots`` maps a figure name (see ``make_plots``) to a data URI."""
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
        + _document_filter(summary, plots)
        + _graph(summary, plots)
        + _combinations(summary)
        + _levels(summary)
        + _funnel(summary)
        + _agreement(summary)
        + _diversity(summary, plots)
        + _lengths(summary, plots)
        + "</body></html>"
    )
