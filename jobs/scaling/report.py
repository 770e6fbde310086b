"""The scaling report's files: ``report.json``, ``report.html`` and the log-log ``fit.png``.

Both the study job and the ``fit`` CLI commit the same three files with StageOutput.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jobs.commit import StageOutput
from jobs.report.plots import data_uri
from jobs.scaling.fit import ScalingFit, tokens_label
from jobs.storage import Storage, join

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
PLOT_PNG = "fit.png"

# Green fit points and red held-out point, as in the paper's figures.
_FIT, _HELD = "#2e8b57", "#c0392b"
_LAW_STYLE = {"power": ("#222222", ":"), "rectified": ("#2e8b57", "-")}


def _figure(width: float, height: float) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _png(fig: Figure) -> bytes:
    """PNG bytes without the "Software" metadata, so equal numbers give equal bytes."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def plot_png(result: ScalingFit) -> bytes:
    """Points (fit: green dots, held out: red cross) and each fitted law, log-log."""
    report = result.report
    fig = _figure(6.4, 4.2)
    ax = fig.subplots()
    for role, colour, marker, label in (
        ("fit", _FIT, "o", "fit points"),
        ("heldout", _HELD, "X", "held-out point"),
    ):
        pts = [p for p in report["points"] if p["role"] == role]
        if pts:
            ax.scatter(
                [p["tokens"] for p in pts],
                [p["value"] for p in pts],
                c=colour,
                marker=marker,
                s=60 if role == "heldout" else 36,
                zorder=3,
                label=label,
            )
    for name, (tokens, values) in result.curves.items():
        colour, style = _LAW_STYLE.get(name, ("#3b6ea8", "-"))
        law = report["laws"][name]
        ax.plot(tokens, values, color=colour, linestyle=style, label=f"{name}: {law['formula']}")
        plateau = law["plateau"]["tokens"]
        if plateau and tokens[0] <= plateau <= tokens[-1]:
            ax.axvline(plateau, color=colour, linestyle=style, alpha=0.35, linewidth=1)
    ax.set_xscale("log")
    values = [p["value"] for p in report["points"]]
    if min(values) > 0:
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _pos: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
    ax.set_xlabel("training tokens D")
    ax.set_ylabel(report["metric_label"])
    ax.set_title(f"{report['metric_label'].capitalize()} vs. training tokens")
    ax.grid(True, which="both", alpha=0.2)
    ax.legend(fontsize=7)
    return _png(fig)


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _ci(ci: Sequence[float] | None) -> str:
    return "–" if not ci else f"[{_num(ci[0])}, {_num(ci[1])}]"


def _value_ci(entry: Mapping[str, Any]) -> str:
    return f"{_num(entry['value'])} {_ci(entry['ci'])}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _law_sections(laws: Mapping[str, Mapping[str, Any]]) -> str:
    params, held, plateau, notes = [], [], [], []
    for name, law in laws.items():
        if law["status"] != "ok":
            notes.append(f"<p><b>{_esc(name)}</b> not fitted: {_esc(law['reason'])}</p>")
            continue
        for key, p in law["params"].items():
            params.append([name, key, _num(p["value"]), _ci(p["ci"])])
        params.append([name, "fit RMSE / dof", _num(law["fit_rmse"]), law["dof"]])
        if law["heldout"] is None:
            notes.append(f"<p><b>{_esc(name)}</b> fitted on {_esc(law['fitted_on'])}.</p>")
        h = law["heldout"]
        if h:
            row = [h["tokens"], h["observed"], h["predicted"], h["error"]]
            held.append([name, tokens_label(row[0]), *map(_num, row[1:])])
        p = law["plateau"]
        where = tokens_label(p["tokens"]) if p["tokens"] else p["note"]
        ci = [tokens_label(v) for v in p["ci"]] if p["ci"] else None
        plateau.append([name, where, _num(p["value"]), "–" if not ci else f"[{ci[0]}, {ci[1]}]"])
    return (
        "".join(notes)
        + "<h2>Parameters</h2>"
        + _table(["law", "parameter", "value", "interval"], params)
        + "<h2>Test on the held-out point</h2>"
        + (
            _table(["law", "tokens", "observed", "predicted", "error"], held)
            if held
            else "<p>No law was tested on a held-out point.</p>"
        )
        + "<h2>Plateau</h2>"
        + _table(["law", "tokens", "metric there", "interval"], plateau)
    )


def render_html(result: ScalingFit, png: bytes) -> str:
    """One self-contained page: summary, plot, points, parameters, tests, predictions."""
    r = result.report
    ok = {n: law for n, law in r["laws"].items() if law["status"] == "ok"}
    points = [
        [tokens_label(p["tokens"]), p["tokens"], _num(p["value"]), p["role"]] for p in r["points"]
    ]
    labels = [pr["label"] for pr in next(iter(ok.values()))["predictions"]] if ok else []
    predictions = [
        [label, *(_value_ci(law["predictions"][i]) for law in ok.values())]
        for i, label in enumerate(labels)
    ]
    best = r["best_law"]
    verdict = f"Best on the held-out point: <b>{_esc(best['law'])}</b>." if best["law"] else ""
    method = "".join(f"<li><b>{_esc(k)}</b>: {_esc(v)}</li>" for k, v in r["method"].items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Scaling fit</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:1000px}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}"
        "td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}"
        "</style></head><body><h1>Scaling fit</h1>"
        f"<p>{_esc(r['summary'])} {verdict}</p>"
        f"<img alt='fit' src='{data_uri(png)}'>"
        "<h2>Points</h2>"
        + _table(["tokens", "exact", r["metric_label"], "role"], points)
        + _law_sections(r["laws"])
        + "<h2>Predictions</h2>"
        + _table(["tokens", *ok], predictions)
        + f"<h2>Method</h2><ul>{method}</ul></body></html>"
    )


def commit_report(
    storage: Storage, uri: str, result: ScalingFit, manifest: dict[str, Any], attempt: str
) -> str:
    """Write the three files under ``uri`` in one StageOutput commit; returns the HTML URI."""
    out = StageOutput(storage, uri, attempt)
    tmp = out.begin()
    png = plot_png(result)
    report = {**result.report, "files": {"html": REPORT_HTML, "plot": PLOT_PNG}}
    storage.write_json(join(tmp, REPORT_JSON), report)
    storage.write_text(join(tmp, REPORT_HTML), render_html(result, png), "text/html")
    storage.write_bytes(join(tmp, PLOT_PNG), png, "image/png")
    out.commit(manifest, None)
    return join(uri, REPORT_HTML)
