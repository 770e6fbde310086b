"""Level-3 concept-combination sampling (paper §1.2) as distributed DataFrame steps.

One walk per topic vertex per epoch. A walk (paper §5 item 5, decided here):

1. draws ``n_topic`` uniformly in ``topic_steps`` and ``n_concept`` uniformly in
   ``concept_steps`` (inclusive ranges);
2. takes up to ``n_topic`` steps on the topic graph (``topic_topic`` edges, both directions);
3. takes ONE step on ``topic_concept`` edges from the topic picked by ``concept_start``
   (``last``: the last topic reached, ``start``: the start topic, ``random``: a uniform pick
   among the walk's topics) -- this is the first key concept;
4. takes up to ``n_concept`` further steps on the concept graph (``concept_concept``, both
   directions). A complete walk has ``1 + n_topic`` topics and ``1 + n_concept`` concepts.

Each next node is drawn with probability proportional to ``freq + eps`` (the softmax of
``ln(freq + eps)``); nodes already in the walk are not candidates, so a walk never revisits.
A node without an unvisited candidate ends that part of the walk: a topic dead end still takes
the concept step, a failed topic-to-concept step leaves ``concepts`` empty and skips step 4.
``end_reason`` is the FIRST of ``topic_dead_end`` (step 2 stopped early), ``no_concept``
(step 3 found nothing), ``concept_dead_end`` (step 4 stopped early), else ``complete``. So a
walk that dead-ends in the topic graph and then finds no concept reads ``topic_dead_end``.

Randomness is counter-based, independent of partitioning and row order: every draw hashes
``(seed, walk_id, step, candidate)``; step ids are 1..n for topic steps, 100 for the concept
step, 100 + j for concept step j, and negative for the per-walk draws. The next node wins an
exponential race, ``key = -ln(u) / (freq + eps)``, smallest key (ties by id): exactly
proportional to ``freq + eps``. The walk uses its own ``eps``; the edges' ``weight`` column is
not read, so ``WalkParams.eps`` alone sets the transition probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

CONCEPT_STARTS = ("last", "start", "random")
END_REASONS = ("complete", "topic_dead_end", "no_concept", "concept_dead_end")
# Step ids hashed into the draws; disjoint so no two draws of a walk share a counter.
_CONCEPT_STEP = 100
_DRAW_TOPIC_STEPS, _DRAW_CONCEPT_STEPS, _DRAW_CONCEPT_START = -1, -2, -3
# Up to this many walks the frontier is broadcast to the adjacency scan, so the adjacency is
# never shuffled. A frontier row is a few hundred bytes: 1M walks is a few hundred MB.
_BROADCAST_MAX_WALKS = 1_000_000
_TWO_POW_53 = float(1 << 53)


@dataclass(frozen=True)
class WalkParams:
    """Knobs of the walk sampler; the paper's values are the defaults (5 epochs, 1-2, 3-4)."""

    seed: int = 7
    num_epochs: int = 5
    topic_steps: tuple[int, int] = (1, 2)
    concept_steps: tuple[int, int] = (3, 4)
    eps: float = 0.01
    concept_start: str = "last"

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed: expected an int, got {self.seed!r}")
        if not -(2**63) <= self.seed < 2**63:
            raise ValueError(f"seed: expected a 64-bit int, got {self.seed}")
        if isinstance(self.num_epochs, bool) or not isinstance(self.num_epochs, int):
            raise ValueError(f"num_epochs: expected an int, got {self.num_epochs!r}")
        if self.num_epochs < 1:
            raise ValueError(f"num_epochs: expected >= 1, got {self.num_epochs}")
        for name in ("topic_steps", "concept_steps"):
            value = getattr(self, name)
            ok = (
                isinstance(value, tuple | list)
                and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                and 0 <= value[0] <= value[1]
            )
            if not ok:
                raise ValueError(
                    f"{name}: expected (lo, hi) ints with 0 <= lo <= hi, got {value!r}"
                )
            object.__setattr__(self, name, tuple(value))
        if not (math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"eps: expected a finite number >= 0, got {self.eps!r}")
        if self.concept_start not in CONCEPT_STARTS:
            raise ValueError(
                f"concept_start: expected one of {', '.join(CONCEPT_STARTS)}, "
                f"got {self.concept_start!r}"
            )


def uniform(seed: int, walk_id: Column, step: int, candidate: Column) -> Column:
    """u in (0, 1) from xxhash64(seed, walk_id, step, candidate): the top 53 bits + 1/2, / 2^53.

    Every double ``(k + 0.5) / 2^53`` is exact, never 0 and never 1, so ``-ln(u)`` is finite.
    """
    from pyspark.sql import functions as F

    bits = F.shiftrightunsigned(F.xxhash64(F.lit(seed), walk_id, F.lit(step), candidate), 11)
    return (bits.cast("double") + F.lit(0.5)) / F.lit(_TWO_POW_53)


def _uniform_int(seed: int, step: int, tag: str, lo: int, hi: int) -> Column:
    from pyspark.sql import functions as F

    u = uniform(seed, F.col("walk_id"), step, F.lit(tag))
    return (F.lit(lo) + F.floor(u * F.lit(hi - lo + 1))).cast("int")


def _adjacency(edges: DataFrame, kind: str, symmetric: bool, eps: float) -> DataFrame:
    """(src, dst, w = freq + eps) for one edge kind, both directions when ``symmetric``.

    Cached: every step of that kind scans it. The frontier is the broadcast side of the
    join, so the adjacency is streamed once per step and never shuffled.
    """
    from pyspark.sql import functions as F

    one = edges.filter(F.col("kind") == kind).select(
        "src", "dst", (F.col("freq").cast("double") + F.lit(eps)).alias("w")
    )
    if symmetric:
        one = one.unionByName(one.select(F.col("dst").alias("src"), F.col("src").alias("dst"), "w"))
    return one.cache()


def _start_frontier(vertices: DataFrame, params: WalkParams) -> DataFrame:
    from pyspark.sql import functions as F

    topics = vertices.filter(F.col("kind") == "topic").select(F.col("id").alias("start_topic"))
    epochs = F.explode(F.sequence(F.lit(0), F.lit(params.num_epochs - 1)))
    walks = topics.select("start_topic", epochs.alias("epoch")).withColumn(
        "walk_id",
        F.concat(
            F.lit("w-"),
            F.col("epoch").cast("string"),
            F.lit("-"),
            F.substring(F.sha1(F.col("start_topic")), 1, 16),
        ),
    )
    (t_lo, t_hi), (c_lo, c_hi) = params.topic_steps, params.concept_steps
    return walks.select(
        "walk_id",
        F.col("epoch").cast("int").alias("epoch"),
        "start_topic",
        F.array("start_topic").alias("topics"),
        F.array().cast("array<string>").alias("concepts"),
        _uniform_int(params.seed, _DRAW_TOPIC_STEPS, "topic_steps", t_lo, t_hi).alias("n_topic"),
        _uniform_int(params.seed, _DRAW_CONCEPT_STEPS, "concept_steps", c_lo, c_hi).alias(
            "n_concept"
        ),
        F.col("start_topic").alias("cur"),
        F.lit(True).alias("live"),
        F.lit(None).cast("string").alias("reason"),
    )


def _advance(
    frontier: DataFrame, adj: DataFrame, active: Column, step: int, visited: str, ctx: dict
) -> tuple[DataFrame, DataFrame]:
    """One step of the ``active`` walks: (moved walks with ``next``, untouched walks).

    ``next`` is null for a walk without an unvisited candidate (a dead end).
    """
    from pyspark.sql import functions as F

    movers = frontier.filter(active)
    state = [F.col(c) for c in frontier.columns if c != "walk_id"]
    probe = F.broadcast(movers) if ctx["broadcast"] else movers
    cand = adj.join(probe, F.col("src") == F.col("cur")).filter(
        ~F.array_contains(F.col(visited), F.col("dst"))
    )
    key = -F.log(uniform(ctx["seed"], F.col("walk_id"), step, F.col("dst"))) / F.col("w")
    race = cand.select("walk_id", F.struct(key.alias("key"), F.col("dst").alias("next"), *state))
    # One stay-put entry per walk, key +inf: it wins only when no unvisited candidate is
    # left, so a dead end comes out of the same min with next = null (no outer join).
    stay = movers.select(
        "walk_id",
        F.struct(F.lit(math.inf).alias("key"), F.lit(None).cast("string").alias("next"), *state),
    )
    winners = (
        race.toDF("walk_id", "b")
        .unionByName(stay.toDF("walk_id", "b"))
        .groupBy("walk_id")
        .agg(F.min("b").alias("b"))
        .select("walk_id", "b.*")
        .drop("key")
    )
    return winners, frontier.filter(~active)


def _merge(moved: DataFrame, rest: DataFrame, **updates: Column) -> DataFrame:
    """Apply ``updates`` to the moved walks, drop ``next``, union back and checkpoint."""
    cols = rest.columns
    moved = moved.withColumns(updates).select(*cols)
    # A local checkpoint cuts the lineage, so step k's plan does not replay steps 1..k-1.
    return moved.unionByName(rest).localCheckpoint()


def _concept_start(mode: str, seed: int) -> Column:
    from pyspark.sql import functions as F

    if mode == "start":
        return F.col("start_topic")
    if mode == "last":
        return F.element_at("topics", -1)
    u = uniform(seed, F.col("walk_id"), _DRAW_CONCEPT_START, F.lit("concept_start"))
    return F.element_at("topics", (F.floor(u * F.size("topics")) + 1).cast("int"))


def sample_walks(vertices: DataFrame, edges: DataFrame, params: WalkParams) -> DataFrame:
    """Sample ``num_epochs`` walks per topic vertex; one row per walk (rules: module docstring).

    Columns: ``walk_id`` (``w-{epoch}-{sha1(start_topic)[:16]}``), ``epoch``, ``start_topic``,
    ``topics`` (visit order, start first), ``concepts`` (visit order), ``end_reason``.
    Runs Spark jobs (one local checkpoint per step, at most ``2 + topic_steps[1] +
    concept_steps[1]``); the returned DataFrame reads the last checkpoint, nothing is collected.
    """
    from pyspark.sql import functions as F

    eps, seed = params.eps, params.seed
    frontier = _start_frontier(vertices, params).localCheckpoint()
    ctx = {"seed": seed, "broadcast": frontier.count() <= _BROADCAST_MAX_WALKS}
    adjacency = [
        _adjacency(edges, "topic_topic", True, eps),
        _adjacency(edges, "topic_concept", False, eps),
        _adjacency(edges, "concept_concept", True, eps),
    ]
    topic_adj, entry_adj, concept_adj = adjacency
    nxt, moved = F.col("next"), F.col("next").isNotNull()
    try:
        for i in range(1, params.topic_steps[1] + 1):
            active = F.col("live") & (F.col("n_topic") >= i)
            done, rest = _advance(frontier, topic_adj, active, i, "topics", ctx)
            frontier = _merge(
                done,
                rest,
                topics=F.when(moved, F.array_append("topics", nxt)).otherwise(F.col("topics")),
                cur=F.coalesce(nxt, F.col("cur")),
                live=moved,
                reason=F.when(moved, F.col("reason")).otherwise(F.lit("topic_dead_end")),
            )

        # Every walk, topic dead end or not, takes the topic -> concept step.
        frontier = frontier.withColumn("cur", _concept_start(params.concept_start, seed))
        done, rest = _advance(frontier, entry_adj, F.lit(True), _CONCEPT_STEP, "concepts", ctx)
        frontier = _merge(
            done,
            rest,
            concepts=F.when(moved, F.array(nxt)).otherwise(F.col("concepts")),
            cur=F.coalesce(nxt, F.col("cur")),
            live=moved,
            reason=F.coalesce(F.col("reason"), F.when(~moved, F.lit("no_concept"))),
        )

        for j in range(1, params.concept_steps[1] + 1):
            active = F.col("live") & (F.col("n_concept") >= j)
            step = _CONCEPT_STEP + j
            done, rest = _advance(frontier, concept_adj, active, step, "concepts", ctx)
            frontier = _merge(
                done,
                rest,
                concepts=F.when(moved, F.array_append("concepts", nxt)).otherwise(
                    F.col("concepts")
                ),
                cur=F.coalesce(nxt, F.col("cur")),
                live=moved,
                reason=F.coalesce(F.col("reason"), F.when(~moved, F.lit("concept_dead_end"))),
            )
    finally:
        for adj in adjacency:
            adj.unpersist()
    return frontier.select(
        "walk_id",
        "epoch",
        "start_topic",
        "topics",
        "concepts",
        F.coalesce(F.col("reason"), F.lit("complete")).alias("end_reason"),
    )
