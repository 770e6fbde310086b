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
``(seed, walk_id, step, candidate)``; step ids are 1..T for the topic steps (T =
``topic_steps[1]``), T + 1 for the concept step, T + 1 + j for concept step j, and negative
for the per-walk draws. The next node wins an exponential race, ``key = -ln(u) / (freq +
eps)``, smallest key: proportional to ``freq + eps``. For speed the key is compared as
``ln(key)`` quantised to 2^-30 (a relative 1e-9, far below any sampling error) and packed with
the candidate's node index, so keys equal at that resolution go to the smaller id. The walk
uses its own ``eps``; the edges' ``weight`` column is not read.

How it runs: node ids are numbered once (id order) and the edges cached as an adjacency list
of indices. Each step broadcasts the walks still moving, streams the adjacency past them,
drops visited candidates, takes the per-walk min of the packed key (a hash aggregate), joins
the walk back and local-checkpoints the frontier; ids come back at the end. A step costs one
pass over the edges of its kind plus the candidates of the moving walks (their degrees).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

CONCEPT_STARTS = ("last", "start", "random")
END_REASONS = ("complete", "topic_dead_end", "no_concept", "concept_dead_end")
# Step ids of the per-walk draws; walk steps count up from 1, so no two draws share one.
_DRAW_TOPIC_STEPS, _DRAW_CONCEPT_STEPS, _DRAW_CONCEPT_START = -1, -2, -3
# Up to this many walks the frontier is broadcast to the adjacency scan, so the adjacency is
# never shuffled. A frontier row is ~100 bytes: 1M walks is ~100 MB.
_BROADCAST_MAX_WALKS = 1_000_000
_TWO_POW_53 = float(1 << 53)
# The race key is packed with the candidate's node index into one long, so the per-walk min
# is a hash aggregate (a min over a struct with a string is a sort aggregate, 3-5x slower on
# hub-heavy steps). ln(key) is quantised to 2^-30 (relative 1e-9) after an offset that maps
# every reachable value (ln(key) > ln(2^-54) - ln(1e12) > -70) into [0, 128).
_INDEX_BITS = 26  # up to 67M nodes; (127 * 2^30) << 26 < 2^63
_KEY_SCALE = float(1 << 30)
_LN_KEY_OFFSET, _LN_KEY_MAX = 70.0, 57.0
_STAY = (1 << 63) - 1  # the stay-put entry: larger than any packed key
_KINDS = {"topic_topic": 0, "topic_concept": 1, "concept_concept": 2}


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


def uniform(seed: int, walk_id: Column, step: int | Column, candidate: Column) -> Column:
    """u in (0, 1) from xxhash64(seed, walk_id, step, candidate): the top 53 bits + 1/2, / 2^53.

    Every double ``(k + 0.5) / 2^53`` is exact, never 0 and never 1, so ``-ln(u)`` is finite.
    """
    from pyspark.sql import functions as F

    step = F.lit(step) if isinstance(step, int) else step
    bits = F.shiftrightunsigned(F.xxhash64(F.lit(seed), walk_id, step, candidate), 11)
    return (bits.cast("double") + F.lit(0.5)) / F.lit(_TWO_POW_53)


def _uniform_int(seed: int, step: int, tag: str, lo: int, hi: int) -> Column:
    from pyspark.sql import functions as F

    u = uniform(seed, F.col("walk_id"), step, F.lit(tag))
    return (F.lit(lo) + F.floor(u * F.lit(hi - lo + 1))).cast("int")


def _node_index(vertices: DataFrame, edges: DataFrame) -> DataFrame:
    """``(idx, id)``: every node of vertices and edges, numbered 0.. in id order."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ids = (
        vertices.select("id")
        .unionByName(edges.select(F.col("src").alias("id")))
        .unionByName(edges.select(F.col("dst").alias("id")))
        .distinct()
    )
    # One ordered window over the node set (V rows, not the edges): the index must not
    # depend on partitioning, as it breaks ties in the race.
    idx = F.row_number().over(Window.orderBy("id")).cast("long") - 1
    limit = 1 << _INDEX_BITS
    idx = F.when(idx < limit, idx).otherwise(F.raise_error(F.lit(f"more than {limit} nodes")))
    return ids.select(idx.alias("idx"), "id").localCheckpoint()


def _adjacency(edges: DataFrame, index: DataFrame, eps: float) -> DataFrame:
    """``(k, src, dst, dst_id, w)``: edges by kind code ``k``, node indices, ``w = freq + eps``.

    Topic-topic and concept-concept edges appear in both directions. Cached: every step
    streams it past the broadcast frontier.
    """
    from pyspark.sql import functions as F

    code = F.lit(None).cast("int")
    for kind, k in _KINDS.items():
        code = F.when(F.col("kind") == kind, F.lit(k)).otherwise(code)
    named = edges.select(
        F.col("src").alias("src_id"),
        F.col("dst").alias("dst_id"),
        code.alias("k"),
        (F.col("freq").cast("double") + F.lit(eps)).alias("w"),
    ).filter(F.col("k").isNotNull())
    named = named.join(
        index.select(F.col("id").alias("src_id"), F.col("idx").alias("src")), "src_id"
    ).join(index.select(F.col("id").alias("dst_id"), F.col("idx").alias("dst")), "dst_id")
    forward = F.struct("k", "src", "dst", "dst_id", "w")
    backward = F.struct(
        "k",
        F.col("dst").alias("src"),
        F.col("src").alias("dst"),
        F.col("src_id").alias("dst_id"),
        "w",
    )
    # One pass over the joined edges emits both directions (a union would join twice).
    both = F.when(F.col("k") == _KINDS["topic_concept"], F.array(forward)).otherwise(
        F.array(forward, backward)
    )
    return named.select(F.explode(both).alias("e")).select("e.*").cache()


def _start_frontier(vertices: DataFrame, index: DataFrame, params: WalkParams) -> DataFrame:
    from pyspark.sql import functions as F

    topics = vertices.filter(F.col("kind") == "topic").select(F.col("id").alias("start_topic"))
    topics = topics.join(index.withColumnRenamed("id", "start_topic"), "start_topic")
    epochs = F.explode(F.sequence(F.lit(0), F.lit(params.num_epochs - 1)))
    walks = (
        topics.select("start_topic", "idx", epochs.alias("epoch"))
        .withColumn(
            # A long twin of walk_id: cheaper to hash in the per-step group-by and joins.
            "wid",
            F.shiftleft(F.col("epoch").cast("long"), _INDEX_BITS) + F.col("idx"),
        )
        .withColumn(
            "walk_id",
            F.concat(
                F.lit("w-"),
                F.col("epoch").cast("string"),
                F.lit("-"),
                F.substring(F.sha1(F.col("start_topic")), 1, 16),
            ),
        )
    )
    (t_lo, t_hi), (c_lo, c_hi) = params.topic_steps, params.concept_steps
    return walks.select(
        "walk_id",
        "wid",
        F.col("epoch").cast("int").alias("epoch"),
        "start_topic",
        F.array("idx").alias("path_t"),
        F.array().cast("array<long>").alias("path_c"),
        _uniform_int(params.seed, _DRAW_TOPIC_STEPS, "topic_steps", t_lo, t_hi).alias("n_topic"),
        _uniform_int(params.seed, _DRAW_CONCEPT_STEPS, "concept_steps", c_lo, c_hi).alias(
            "n_concept"
        ),
        F.col("idx").alias("cur"),
        F.lit(True).alias("live"),
        F.lit(None).cast("string").alias("reason"),
        F.lit(1).alias("step"),
    )


def _race_key(seed: int) -> Column:
    """The exponential-race key packed with the candidate index (smaller wins)."""
    from pyspark.sql import functions as F

    u = uniform(seed, F.col("walk_id"), F.col("step"), F.col("dst_id"))
    # ln(-ln(u) / w): monotone in the key, and bounded, unlike the key itself.
    ln_key = F.log(-F.log(u)) - F.log(F.col("w"))
    ln_key = F.least(F.greatest(ln_key, F.lit(-_LN_KEY_OFFSET)), F.lit(_LN_KEY_MAX))
    q = F.floor((ln_key + F.lit(_LN_KEY_OFFSET)) * F.lit(_KEY_SCALE)).cast("long")
    return F.shiftleft(q, _INDEX_BITS) + F.col("dst")


def _next() -> Column:
    """The winner's node index from the packed min, null for the stay-put entry."""
    from pyspark.sql import functions as F

    packed = F.col("packed")
    return F.when(packed != F.lit(_STAY), packed.bitwiseAND(F.lit((1 << _INDEX_BITS) - 1)))


def _stepper(
    adj: DataFrame, kind: str, active: Column, state: list[str], ctx: dict, **updates: Column
) -> Callable[[DataFrame], DataFrame]:
    """A function moving every ``active`` walk one step on ``kind`` edges.

    ``updates`` (column -> expression over the walk's columns and :func:`_next`) apply to the
    moved walks. Every expression is built once here, not per step: building them through
    py4j cost more driver time than the small steps themselves.
    """
    from pyspark.sql import functions as F

    edges = adj.filter(F.col("k") == _KINDS[kind])
    on = F.col("src") == F.col("cur")
    visited = "path_t" if kind == "topic_topic" else "path_c"
    fresh = ~F.array_contains(F.col(visited), F.col("dst"))
    race = [F.col("wid"), _race_key(ctx["seed"]).alias("packed")]
    # One stay-put entry per walk that loses to every real candidate: a walk whose
    # candidates are all visited still comes out of the min, as a dead end (no outer join).
    stay = [F.col("wid"), F.lit(_STAY).alias("packed")]
    lowest = F.min("packed").alias("packed")
    # The step number lives in a column, not a literal, so the generated code is the same
    # at every step of a phase and Spark compiles it once.
    step_up = (F.col("step") + 1).alias("step")
    moved_cols = [step_up if c == "step" else updates.get(c, F.col(c)).alias(c) for c in state]
    idle_cols = [step_up if c == "step" else F.col(c) for c in state]
    idle = ~active

    def step(frontier: DataFrame) -> DataFrame:
        movers = frontier.filter(active)
        probe = F.broadcast(movers) if ctx["broadcast"] else movers
        best = (
            edges.join(probe, on)
            .filter(fresh)
            .select(*race)
            .unionByName(movers.select(*stay))
            .groupBy("wid")
            .agg(lowest)
        )
        # Back to the walk's state, one row per walk on both sides. (Carrying the state as
        # group keys instead costs more: it is hashed once per candidate.)
        moved = best.join(probe, "wid").select(*moved_cols)
        merged = moved.unionByName(frontier.filter(idle).select(*idle_cols))
        # A local checkpoint cuts the lineage: step k's plan does not replay steps 1..k-1.
        return merged.localCheckpoint()

    return step


def _concept_start(mode: str, seed: int) -> Column:
    from pyspark.sql import functions as F

    if mode == "start":
        return F.element_at("path_t", 1)
    if mode == "last":
        return F.element_at("path_t", -1)
    u = uniform(seed, F.col("walk_id"), _DRAW_CONCEPT_START, F.lit("concept_start"))
    return F.element_at("path_t", (F.floor(u * F.size("path_t")) + 1).cast("int"))


def _with_ids(frontier: DataFrame, index: DataFrame) -> DataFrame:
    """The output rows: node indices of both paths mapped back to ids, in visit order."""
    from pyspark.sql import functions as F

    keys = ["walk_id", "epoch", "start_topic", "reason"]
    nodes = (
        frontier.select(*keys, F.lit(0).alias("part"), F.posexplode("path_t").alias("pos", "idx"))
        .unionByName(
            frontier.select(
                *keys, F.lit(1).alias("part"), F.posexplode("path_c").alias("pos", "idx")
            )
        )
        .join(index, "idx")
        # Every walk has its start topic, so every walk comes out of this group-by.
        .groupBy(*keys)
        .agg(F.array_sort(F.collect_list(F.struct("part", "pos", "id"))).alias("nodes"))
    )

    def ids(part: int) -> Column:
        return F.transform(F.filter("nodes", lambda n: n["part"] == part), lambda n: n["id"])

    return nodes.select(
        "walk_id",
        "epoch",
        "start_topic",
        ids(0).alias("topics"),
        ids(1).alias("concepts"),
        F.coalesce(F.col("reason"), F.lit("complete")).alias("end_reason"),
    )


def sample_walks(vertices: DataFrame, edges: DataFrame, params: WalkParams) -> DataFrame:
    """Sample ``num_epochs`` walks per topic vertex; one row per walk (rules: module docstring).

    Columns: ``walk_id`` (``w-{epoch}-{sha1(start_topic)[:16]}``), ``epoch``, ``start_topic``,
    ``topics`` (visit order, start first), ``concepts`` (visit order), ``end_reason``.
    Runs Spark jobs: local checkpoints of the node index, the start frontier and each of the
    ``1 + topic_steps[1] + concept_steps[1]`` steps (the walks still moving are broadcast to
    each step). The returned DataFrame maps the last checkpoint back to ids; nothing is
    collected in Python.
    """
    from pyspark.sql import functions as F

    seed = params.seed
    index = _node_index(vertices, edges)
    # Lazy local checkpoint: the count below fills it, one job instead of two.
    frontier = _start_frontier(vertices, index, params).localCheckpoint(eager=False)
    ctx = {"seed": seed, "broadcast": frontier.count() <= _BROADCAST_MAX_WALKS}
    adj = _adjacency(edges, index, params.eps)
    state = frontier.columns
    nxt = _next()
    moved = nxt.isNotNull()
    cur = F.coalesce(nxt, F.col("cur"))
    topic_step = _stepper(
        adj,
        "topic_topic",
        F.col("live") & (F.col("n_topic") >= F.col("step")),
        state,
        ctx,
        path_t=F.when(moved, F.array_append("path_t", nxt)).otherwise(F.col("path_t")),
        cur=cur,
        live=moved,
        reason=F.when(moved, F.col("reason")).otherwise(F.lit("topic_dead_end")),
    )
    # Every walk, topic dead end or not, takes the topic -> concept step.
    concept_entry = _stepper(
        adj,
        "topic_concept",
        F.lit(True),
        state,
        ctx,
        path_c=F.when(moved, F.array(nxt)).otherwise(F.col("path_c")),
        cur=cur,
        live=moved,
        reason=F.coalesce(F.col("reason"), F.when(~moved, F.lit("no_concept"))),
    )
    concept_step = _stepper(
        adj,
        "concept_concept",
        F.col("live") & (F.col("n_concept") >= F.col("step") - F.lit(params.topic_steps[1] + 1)),
        state,
        ctx,
        path_c=F.when(moved, F.array_append("path_c", nxt)).otherwise(F.col("path_c")),
        cur=cur,
        live=moved,
        reason=F.coalesce(F.col("reason"), F.when(~moved, F.lit("concept_dead_end"))),
    )
    try:
        for _ in range(params.topic_steps[1]):
            frontier = topic_step(frontier)
        frontier = frontier.withColumn("cur", _concept_start(params.concept_start, seed))
        frontier = concept_entry(frontier)
        for _ in range(params.concept_steps[1]):
            frontier = concept_step(frontier)
    finally:
        adj.unpersist()
    return _with_ids(frontier, index)
