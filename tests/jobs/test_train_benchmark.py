"""benchmarks/train.py runs at its tiny CPU shape and prints both loops for both shapes."""

from __future__ import annotations

import re

from benchscripts import load_benchmark


def test_tiny_benchmark_prints_both_shapes_both_loops_and_ratios(capsys):
    bench = load_benchmark("train")
    assert bench.main(["--tiny", "--steps", "2", "--warmup", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^(\S+)\s+[\d.]+M (trainer|plain)\s+([\d,]+)\s+([\d.]+)%$", out, re.M)
    assert {(shape, loop) for shape, loop, _, _ in rows} == {
        (shape, loop) for shape in ("135m-tiny", "360m-tiny") for loop in ("trainer", "plain")
    }
    assert all(int(rate.replace(",", "")) > 0 for _, _, rate, _ in rows)
    ratios = dict(re.findall(r"^ratio trainer/plain (\S+): ([\d.]+)x$", out, re.M))
    assert set(ratios) == {"135m-tiny", "360m-tiny"}
    assert all(float(r) > 0 for r in ratios.values())
