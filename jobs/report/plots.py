"""Length histograms as PNG bytes (matplotlib, Agg: no display on workers)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence


def histogram_png(values: Sequence[int], title: str, xlabel: str, bins: int = 30) -> bytes:
    """A histogram of ``values`` as a PNG image."""
    import matplotlib

    matplotlib.use("Agg")
    # A bare Figure (no pyplot) keeps no global state between plots.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.2), dpi=100)
    ax = fig.subplots()
    ax.hist(list(values), bins=bins, color="#3b6ea8", edgecolor="white")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    fig.tight_layout()
    buf = io.BytesIO()
    # No "Software"/date metadata, so the same numbers give the same bytes.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """Embed a PNG in HTML so the report stays one self-contained file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
