"""The report's figures as PNG bytes (matplotlib, Agg: no display on workers).

Each function draws on a bare Figure (no pyplot), so plots keep no global state between
them, and saves without "Software"/date metadata, so the same numbers give the same bytes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_BLUE = "#3b6ea8"
# One colour per generation level, the same in every run's report.
_LEVEL_COLOURS = {"1": "#3b6ea8", "2": "#d9822b", "3": "#2e8b57"}


def _figure(width: float = 5.5, height: float = 3.2) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def histogram_png(values: Sequence[int], title: str, xlabel: str, bins: int = 30) -> bytes:
    """A histogram of ``values`` as a PNG image."""
    fig = _figure()
    ax = fig.subplots()
    ax.hist(list(values), bins=bins, color=_BLUE, edgecolor="white")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    return _png(fig)


def binned_png(edges: Sequence[float], counts: Sequence[int], title: str, xlabel: str) -> bytes:
    """A histogram already binned by its producer (``len(edges) == len(counts) + 1``)."""
    fig = _figure()
    ax = fig.subplots()
    ax.stairs(list(counts), list(edges), fill=True, color=_BLUE)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("documents")
    return _png(fig)


def degree_label(lo: int) -> str:
    """The degree bucket ``[lo, 2*lo)`` as text: ``0``, ``1``, ``2–3``, ``4–7``..."""
    return str(lo) if lo <= 1 else f"{lo}–{2 * lo - 1}"


def dense_buckets(histogram: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """``(lo, count)`` for every power-of-two bucket up to the largest: the graph job leaves
    empty buckets out, and a chart without them would hide the gaps."""
    counts = {int(lo): int(n) for lo, n in histogram}
    if not counts:
        return []
    los = [0] if 0 in counts else []
    lo = 1
    while lo <= max(counts):
        los.append(lo)
        lo *= 2
    return [(lo, counts.get(lo, 0)) for lo in los]


def degree_histogram_png(histogram: Sequence[Sequence[int]]) -> bytes:
    """Bar chart of vertices per power-of-two degree bucket (``[[lo, count], ...]``), with a
    log scale when the counts span more than two decades."""
    buckets = dense_buckets(histogram)
    counts = [n for _, n in buckets]
    fig = _figure(6.0, 3.2)
    ax = fig.subplots()
    ax.bar(range(len(counts)), counts, color=_BLUE, edgecolor="white")
    labels = [degree_label(lo) for lo, _ in buckets]
    ax.set_xticks(range(len(counts)), labels, rotation=45, fontsize=8)
    positive = [n for n in counts if n > 0]
    if positive and max(positive) > 100 * min(positive):
        ax.set_yscale("log")
    ax.set_title("Concept graph: vertex degree")
    ax.set_xlabel("degree (power-of-two buckets)")
    ax.set_ylabel("vertices")
    return _png(fig)


def similarity_density_png(levels: Mapping[str, Mapping[str, Any]]) -> bytes | None:
    """Per-level densities of same-source question similarity, overlaid (paper Figure 5).

    Drawn from each level's fixed-bin ``histogram`` (``[[bin_lo, count], ...]``, equal
    widths); levels without pairs are left out, and with none at all there is no plot.
    """
    drawn = {lvl: f for lvl, f in levels.items() if f.get("num_pairs") and f.get("histogram")}
    if not drawn:
        return None
    fig = _figure(6.0, 3.6)
    ax = fig.subplots()
    for level, figures in sorted(drawn.items(), key=lambda kv: int(kv[0])):
        los = [float(lo) for lo, _ in figures["histogram"]]
        counts = [int(n) for _, n in figures["histogram"]]
        width = los[1] - los[0] if len(los) > 1 else 1.0
        density = [n / (figures["num_pairs"] * width) for n in counts]
        colour = _LEVEL_COLOURS.get(level, "#777777")
        label = f"Level-{level} ({figures['num_pairs']} pairs)"
        ax.stairs(density, [*los, los[-1] + width], fill=True, alpha=0.35, color=colour)
        ax.stairs(density, [*los, los[-1] + width], color=colour, label=label)
    # Cosines of sentence embeddings are rarely negative: show [0, 1] unless some are.
    lowest = min(float(lo) for f in drawn.values() for lo, n in f["histogram"] if n)
    ax.set_xlim(min(0.0, lowest), 1.0)
    ax.set_title("Similarity of questions from the same source")
    ax.set_xlabel("cosine similarity (all-MiniLM-L6-v2)")
    ax.set_ylabel("density")
    ax.legend()
    return _png(fig)


def data_uri(png: bytes | None) -> str | None:
    """Embed a PNG in HTML so the report stays one self-contained file (None stays None)."""
    if png is None:
        return None
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
