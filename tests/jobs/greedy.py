"""Comparing the greedy decodes of two code paths by what holds on every CPU.

Two paths through one model (one sequence or several in a shared cache, a static or a dynamic
KV cache) compute the same logits up to rounding, and the rounding depends on the kernels the
machine's CPU selects. Where the reference's two best tokens are within ``NEAR_TIE`` of each
other either may win, so the paths may part there; anywhere else they must agree. Once they
part, their histories differ and nothing after that step is compared.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

# Logits. Kernel rounding moves a logit by ~1e-3 here; a gap this wide cannot flip.
NEAR_TIE = 0.5


def top2_margin(logits) -> float:
    """The gap between the best and the second-best logit of one step (numpy or torch row)."""
    values = sorted((float(x) for x in logits), reverse=True)[:2]
    return values[0] - values[1]


def agreed_prefix(
    got: Sequence[int],
    want: Sequence[int],
    margins: Sequence[float],
    stop_ids: Collection[int] = (),
    near_tie: float = NEAR_TIE,
) -> int:
    """How many leading tokens ``got`` shares with the reference ``want``.

    ``margins[k]`` is the reference's top-2 gap when it chose ``want[k]``. A disagreement must
    fall on a near tie (else AssertionError naming the step); comparison ends there or at the
    first stop token. Without either, both decodes must have the same length.
    """
    for k, (mine, ref) in enumerate(zip(got, want, strict=False)):
        if mine != ref:
            assert margins[k] < near_tie, (
                f"step {k}: token {mine} != reference {ref}, yet the reference chose with a "
                f"logit margin of {margins[k]:.3f} (not a near tie)"
            )
            return k
        if ref in stop_ids:
            return k + 1
    assert len(got) == len(want), f"lengths {len(got)} != {len(want)} without a disagreement"
    return len(want)
