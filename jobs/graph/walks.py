"""Level-3 concept-combination sampling (paper §1.2): weighted random walks, one pass per batch.

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
Parallel edges of one kind count as one edge with the sum of their weights.
A node without an unvisited candidate ends that part of the walk: a topic dead end still takes
the concept step, a failed topic-to-concept step leaves ``concepts`` empty and skips step 4.
``end_reason`` is the FIRST of ``topic_dead_end`` (step 2 stopped early), ``no_concept``
(step 3 found nothing), ``concept_dead_end`` (step 4 stopped early), else ``complete``. So a
walk that dead-ends in the topic graph and then finds no concept reads ``topic_dead_end``.

Randomness is counter-based, independent of partitioning, batching and row order: every draw
is one ``u`` in (0, 1) from a hash of ``(seed, walk_id, step)`` (:func:`uniform`). The walk_id
enters as its two parts, the epoch and the 64 bits of ``sha1(start_topic)`` it prints. Step
ids are 1..T for the topic steps (T = ``topic_steps[1]``), T + 1 for the concept step,
T + 1 + j for concept step j, and negative for the per-walk draws. A step's ``u`` picks the
next node by inverse CDF over the current node's unvisited neighbours in id order
(:func:`jobs.graph.adjacency.pick`), so for a given graph the walks depend on the seed only.
The walk uses its own ``eps``; the edges' ``weight`` column is not read.

How it runs: Spark numbers the nodes in id order and hands the numbered graph to the driver
(:mod:`jobs.graph.entries`: one collect, or streamed in CSR order when it is large), which
fills a CSR per edge kind (~12 bytes per directed edge, :mod:`jobs.graph.adjacency`) in
``.npy`` files (a large graph's straight into mapped files, so the driver does not hold it);
the Python workers map those files read-only, one copy in the page cache for all of them
(:func:`jobs.spark.ship_files`), and ``mapInArrow`` over the walk numbers
``0 .. topics * epochs - 1`` runs every step of a batch of walks in numpy. A step costs
``O(log degree)`` per walk.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from jobs.graph.adjacency import Adjacency, CsrFiles, pick

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

    from jobs.spark import ShippedFiles

log = logging.getLogger(__name__)

CONCEPT_STARTS = ("last", "start", "random")
END_REASONS = ("complete", "topic_dead_end", "no_concept", "concept_dead_end")
SCHEMA = (
    "walk_id string, epoch int, start_topic string, topics array<string>, "
    "concepts array<string>, end_reason string"
)
# Step ids of the per-walk draws; walk steps count up from 1, so no two draws share one.
_DRAW_TOPIC_STEPS, _DRAW_CONCEPT_STEPS, _DRAW_CONCEPT_START = -1, -2, -3
# splitmix64's increment and finaliser multipliers (Steele et al. 2014).
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_MASK64 = (1 << 64) - 1


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


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(_MIX1)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(_MIX2)
    return x ^ (x >> np.uint64(31))


def _absorb(h: np.ndarray, word) -> np.ndarray:
    """``h`` with one more 64-bit word hashed in (a signed word as its two's complement)."""
    word = np.asarray(word)
    if word.dtype != np.uint64:
        word = word.astype(np.int64).view(np.uint64)
    return _mix(h ^ _mix(word + np.uint64(_GOLDEN)))


def walk_key(epoch: np.ndarray, topic_hash: np.ndarray) -> np.ndarray:
    """The walk_id ``w-{epoch}-{sha1(start_topic)[:16]}`` as one uint64 per walk."""
    zero = np.zeros(np.shape(epoch), dtype=np.uint64)
    return _absorb(_absorb(zero, epoch), np.asarray(topic_hash, dtype=np.uint64))


def unit_interval(bits: np.ndarray) -> np.ndarray:
    """uint64 -> (0, 1): the top 52 bits ``k`` as ``(k + 0.5) / 2^52``, exact in a double.

    So ``u`` is in ``[2^-53, 1 - 2^-53]``: never 0, never 1, and ``floor(u * m) < m`` for any
    int ``m < 2^53`` (``u * m`` rounds down to at most the double below ``m``). The top 53
    bits plus 1/2 are NOT exact: ``2^53 - 1/2`` rounds to ``2^53``, so all-ones bits gave
    ``u = 1.0``: ``hi + 1`` steps from a uniform int, a pick past the walk's last topic.
    """
    return ((bits >> np.uint64(12)).astype(np.float64) + 0.5) * 2.0**-52


def uniform(seed: int, keys: np.ndarray, step: int) -> np.ndarray:
    """u in (0, 1) per walk: a splitmix64 chain over ``(seed, walk key, step)``."""
    h = _absorb(
        np.zeros(np.shape(keys), dtype=np.uint64),
        np.full(np.shape(keys), seed & _MASK64, dtype=np.uint64),
    )
    h = _absorb(h, np.asarray(keys, dtype=np.uint64))
    return unit_interval(_absorb(h, np.full(np.shape(keys), step, dtype=np.int64)))


def uniform_int(seed: int, keys: np.ndarray, step: int, lo: int, hi: int) -> np.ndarray:
    """An int in ``[lo, hi]`` per walk, uniform."""
    return lo + np.floor(uniform(seed, keys, step) * (hi - lo + 1)).astype(np.int64)


def topic_hashes(topic_ids: list[str]) -> tuple[list[str], np.ndarray]:
    """``sha1(id)[:16]`` per topic as the walk_id's hex and as a uint64."""
    hexes = [hashlib.sha1(t.encode()).hexdigest()[:16] for t in topic_ids]
    return hexes, np.array([int(h, 16) for h in hexes], dtype=np.uint64)


@dataclass(frozen=True)
class WalkGraph:
    """What every batch needs: the adjacency and the start topics' walk_id parts."""

    adj: Adjacency
    topic_hex: list[str]
    topic_hash: np.ndarray


@dataclass(frozen=True)
class ShippedGraph:
    """A :class:`WalkGraph` with its CSRs left in files: what the walks' broadcast carries."""

    ids: pa.Array
    topics: np.ndarray
    topic_hex: list[str]
    topic_hash: np.ndarray
    csr: dict[str, CsrFiles]
    files: ShippedFiles

    def open(self) -> WalkGraph:
        """The graph with every CSR mapped read-only from its files."""
        csr = {kind: files.open(self.files.path) for kind, files in self.csr.items()}
        return WalkGraph(Adjacency(self.ids, self.topics, csr), self.topic_hex, self.topic_hash)


def _steps(csr, cur, path, live, limit, seed, keys, first_step, column0):
    """Move the ``live`` walks up to ``limit[i]`` steps; fill ``path`` from ``column0``.

    Returns the mask of walks that dead-ended before their limit.
    """
    dead = np.zeros(cur.shape, dtype=bool)
    for j in range(path.shape[1] - column0):
        movers = np.flatnonzero(live & (limit > j))
        nxt = pick(csr, cur[movers], path[movers], uniform(seed, keys[movers], first_step + j))
        ok = nxt >= 0
        path[movers[ok], column0 + j] = nxt[ok]
        cur[movers[ok]] = nxt[ok]
        live[movers[~ok]] = False
        dead[movers[~ok]] = True
    return dead


def walk_batch(graph: WalkGraph, params: WalkParams, numbers: np.ndarray) -> pa.RecordBatch:
    """The walks numbered ``numbers`` (walk ``n``: epoch ``n // topics``, topic ``n % topics``)."""
    import pyarrow as pa

    adj, seed = graph.adj, params.seed
    n_topics = len(adj.topics)
    topic_pos = numbers % n_topics if n_topics else numbers
    epoch = numbers // max(n_topics, 1)
    keys = walk_key(epoch, graph.topic_hash[topic_pos])
    (t_lo, t_hi), (c_lo, c_hi) = params.topic_steps, params.concept_steps
    n_topic = uniform_int(seed, keys, _DRAW_TOPIC_STEPS, t_lo, t_hi)
    n_concept = uniform_int(seed, keys, _DRAW_CONCEPT_STEPS, c_lo, c_hi)
    n, rows = len(numbers), np.arange(len(numbers))

    path_t = np.full((n, 1 + t_hi), -1, dtype=np.int64)
    path_t[:, 0] = cur = adj.topics[topic_pos]
    cur, live = cur.copy(), np.ones(n, dtype=bool)
    reason = np.zeros(n, dtype=np.int8)
    dead = _steps(adj.csr["topic_topic"], cur, path_t, live, n_topic, seed, keys, 1, 1)
    reason[dead] = END_REASONS.index("topic_dead_end")

    size = (path_t >= 0).sum(axis=1)
    if params.concept_start == "start":
        origin = path_t[:, 0]
    elif params.concept_start == "last":
        origin = path_t[rows, size - 1]
    else:
        u = uniform(seed, keys, _DRAW_CONCEPT_START)
        origin = path_t[rows, np.floor(u * size).astype(np.int64)]
    path_c = np.full((n, 1 + c_hi), -1, dtype=np.int64)
    entry = pick(adj.csr["topic_concept"], origin, path_c[:, :0], uniform(seed, keys, t_hi + 1))
    path_c[:, 0] = cur = entry
    reason[(reason == 0) & (entry < 0)] = END_REASONS.index("no_concept")
    live = entry >= 0
    step = t_hi + 2
    dead = _steps(adj.csr["concept_concept"], cur, path_c, live, n_concept, seed, keys, step, 1)
    reason[(reason == 0) & dead] = END_REASONS.index("concept_dead_end")

    def lists(path: np.ndarray) -> pa.Array:
        offsets = np.r_[0, np.cumsum((path >= 0).sum(axis=1))].astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), adj.ids.take(path[path >= 0]))

    walk_ids = [f"w-{e}-{graph.topic_hex[t]}" for e, t in zip(epoch, topic_pos, strict=True)]
    return pa.RecordBatch.from_arrays(
        [
            pa.array(walk_ids, pa.string()),
            pa.array(epoch.astype(np.int32)),
            adj.ids.take(path_t[:, 0]),
            lists(path_t),
            lists(path_c),
            pa.array(END_REASONS, pa.string()).take(reason),
        ],
        names=["walk_id", "epoch", "start_topic", "topics", "concepts", "end_reason"],
    )


def sample_walks(vertices: DataFrame, edges: DataFrame, params: WalkParams) -> DataFrame:
    """Sample ``num_epochs`` walks per topic vertex; one row per walk (rules: module docstring).

    Columns: ``walk_id`` (``w-{epoch}-{sha1(start_topic)[:16]}``), ``epoch``, ``start_topic``,
    ``topics`` (visit order, start first), ``concepts`` (visit order), ``end_reason``.
    Runs the Spark jobs of :func:`jobs.graph.entries.walk_adjacency` here (the graph streamed
    to the driver, which holds its CSR); the returned DataFrame runs the walks, a
    ``mapInArrow`` over the walk numbers with the CSRs mapped from files, when it is
    evaluated: evaluate it inside the :func:`jobs.spark.held` scope that was open when it was
    made (its end destroys the broadcast and removes the files).
    """
    from jobs.graph.adjacency import save_csr
    from jobs.graph.entries import walk_adjacency
    from jobs.spark import broadcast, scratch_folder, ship_files

    spark = vertices.sparkSession
    folder = scratch_folder("synthllm-walk-graph-")
    started = time.monotonic()
    adj = walk_adjacency(vertices, edges, params.eps, folder)
    log.info(
        "walk graph: %d nodes (%d topics), %s entries, built in %.1f s",
        len(adj.ids), len(adj.topics),
        {kind: int(c.cum.size) for kind, c in adj.csr.items()}, time.monotonic() - started,
    )  # fmt: skip
    hexes, hashes = topic_hashes(adj.ids.take(adj.topics).to_pylist())
    csr = {kind: save_csr(c, folder, kind) for kind, c in adj.csr.items()}
    files = ship_files(spark, folder, [name for f in csr.values() for name in f.files])
    shared = broadcast(spark, ShippedGraph(adj.ids, adj.topics, hexes, hashes, csr, files))
    num_walks = len(adj.topics) * params.num_epochs
    del adj  # the workers map the files; the driver need not keep the CSRs
    # Any split gives the same walks; one partition per core keeps both busy.
    parts = max(1, min(spark.sparkContext.defaultParallelism, num_walks))

    def run(batches):
        graph = shared.value.open()
        for batch in batches:
            yield walk_batch(graph, params, batch.column(0).to_numpy())

    return spark.range(num_walks, numPartitions=parts).mapInArrow(run, SCHEMA)
