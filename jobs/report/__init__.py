"""The report stage: one self-contained HTML summary (counts, rates, plots) per snapshot."""
