"""The walk sampler's compact graph: numbered nodes, one CSR per edge kind, weighted picks.

Nodes are numbered 0.. in id order (the byte order of the UTF-8 ids, as Spark and pyarrow sort
strings). Each edge kind is a CSR: row ``r`` holds the entries ``indptr[r]:indptr[r + 1]``,
``nbr`` their neighbour indices (ascending within a row) and ``cum`` the running sum of the
weights ``freq + eps`` over all entries with a leading 0, so entry ``p`` owns the interval
``[cum[p], cum[p + 1])``. ``topic_topic`` and ``concept_concept`` rows hold both directions of
an edge; parallel edges are merged, weights summed. About 12 bytes per directed entry.

:func:`pick` draws one unvisited neighbour of a row in proportion to its weight by inverse
CDF: ``u`` times the row's unvisited mass, shifted past the visited entries' intervals, then
a binary search in ``cum``. A step costs ``O(k log degree)`` for ``k`` visited nodes, not a
pass over the row: hub rows of 10^4-10^5 entries are what the walks meet most.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

KINDS = ("topic_topic", "topic_concept", "concept_concept")
_NO_POS = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Csr:
    """One edge kind: ``indptr`` (int64, nodes + 1), ``nbr`` (int32), ``cum`` (float64)."""

    indptr: np.ndarray
    nbr: np.ndarray
    cum: np.ndarray

    @classmethod
    def from_edges(cls, src, dst, weight, num_nodes: int, both: bool) -> Csr:
        """Rows from ``src`` to ``dst`` (and back when ``both``), parallel entries merged.

        Everything in memory at once: about 32 bytes per directed entry beyond the inputs (the
        keys, their order, the sorted weights), for tests and small graphs; the walks' graph
        comes through :class:`CsrBuilder` in chunks instead.
        """
        m = len(src)
        key = np.empty(2 * m if both else m, dtype=np.int64)
        halves = [(src, dst)] + ([(dst, src)] if both else [])
        for h, (a, b) in enumerate(halves):  # in place: no int64 temporaries of the inputs
            part = key[h * m : (h + 1) * m]
            part[:] = a
            part *= num_nodes
            part += b
        order = np.argsort(key, kind="stable")
        key = key[order]
        if both:
            np.subtract(order, m, out=order, where=order >= m)
        weight = np.asarray(weight, dtype=np.float64)[order]
        del order
        builder = CsrBuilder(num_nodes, key.size)
        builder.add(key, weight)
        return builder.finish()

    def find(self, cur: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Entry positions of ``nodes[i, j]`` in row ``cur[i]``, -1 where absent (or -1)."""
        start = np.broadcast_to(self.indptr[cur][:, None], nodes.shape)
        end = np.broadcast_to(self.indptr[cur + 1][:, None], nodes.shape)
        if self.nbr.size == 0 or nodes.size == 0:
            return np.full(nodes.shape, -1, dtype=np.int64)
        lo, hi = np.where(nodes >= 0, start, end), end.copy()  # padding: nothing to search
        last = self.nbr.size - 1
        while True:  # a vectorised lower bound: ~log2(max degree) rounds
            active = lo < hi
            if not active.any():
                break
            mid = (lo + hi) >> 1
            right = active & (self.nbr[np.minimum(mid, last)] < nodes)
            lo = np.where(right, mid + 1, lo)
            hi = np.where(active & ~right, mid, hi)
        hit = (nodes >= 0) & (lo < end) & (self.nbr[np.minimum(lo, last)] == nodes)
        return np.where(hit, lo, -1)


class CsrBuilder:
    """One edge kind's CSR filled from its entries in ``(row, nbr)`` order, a chunk at a time.

    ``add`` takes each chunk's keys ``row * num_nodes + nbr`` (ascending, continuing the last
    chunk's) and weights; parallel entries merge, also across two chunks. Memory is the CSR's
    own arrays for ``capacity`` entries plus one chunk's temporaries, and ``cum`` is the same
    running sum a single pass over all the weights gives (up to rounding where parallel
    entries straddle two chunks). With a ``folder``, the two big arrays are ``.npy`` files
    mapped there (``{name}.nbr.npy``, ``{name}.cum.npy``): the kernel pages them out, so the
    process does not hold the graph, and :func:`save_csr` ships them as they are.
    """

    def __init__(self, num_nodes: int, capacity: int, folder: str | None = None, name: str = ""):
        self.num_nodes = num_nodes
        self.nbr = _array(folder, f"{name}.nbr", capacity, np.int32)
        self.cum = _array(folder, f"{name}.cum", capacity + 1, np.float64)
        self.cum[0] = 0.0
        self.per_row = np.zeros(num_nodes, dtype=np.int64)
        self.size = 0
        self.last = -1

    def add(self, key: np.ndarray, weight: np.ndarray) -> None:
        """Append ``(key, weight)`` entries, ``key`` ascending and >= every key added so far."""
        if key.size == 0:
            return
        if key[0] < self.last or np.any(key[1:] < key[:-1]):
            raise ValueError("CSR entries must come in (row, neighbour) order")
        first = np.flatnonzero(np.r_[key[0] != self.last, key[1:] != key[:-1]])
        head = first[0] if first.size else key.size
        if head:  # the chunk opens with more of the previous chunk's last entry
            self.cum[self.size] += weight[:head].sum()
        if not first.size:
            return
        n, at = first.size, self.size
        if at + n > self.nbr.size:
            raise ValueError(f"more than the {self.nbr.size} CSR entries counted beforehand")
        kept = key[first]
        self.nbr[at : at + n] = kept % self.num_nodes
        summed = np.add.reduceat(weight, first)
        summed[0] += self.cum[at]  # one running sum across the chunks
        np.cumsum(summed, out=self.cum[at + 1 : at + n + 1])
        self.per_row += np.bincount(kept // self.num_nodes, minlength=self.num_nodes)
        self.size, self.last = at + n, int(key[-1])

    def finish(self) -> Csr:
        """The CSR of everything added (the arrays trimmed if fewer entries came than counted)."""
        indptr = np.zeros(self.num_nodes + 1, dtype=np.int64)
        np.cumsum(self.per_row, out=indptr[1:])
        n = self.size
        nbr, cum = self.nbr[:n], self.cum[: n + 1]
        if isinstance(self.nbr, np.memmap):
            self.nbr.flush()
            self.cum.flush()
        elif n < self.nbr.size:  # copies, so the unused capacity is freed
            nbr, cum = nbr.copy(), cum.copy()
        return Csr(indptr, nbr, cum)


def _array(folder: str | None, name: str, size: int, dtype) -> np.ndarray:
    if folder is None:
        return np.empty(size, dtype=dtype)
    return np.lib.format.open_memmap(os.path.join(folder, f"{name}.npy"), "w+", dtype, (size,))


@dataclass(frozen=True)
class CsrFiles:
    """One CSR as ``.npy`` files (names, and the length of each array that is the CSR's).

    Python workers map them read-only (:meth:`open`) instead of each unpickling a copy: the
    pages are the kernel's, shared by every process on the machine that maps the same file.
    """

    files: tuple[str, str, str]  # indptr, nbr, cum
    lengths: tuple[int, int, int]

    def open(self, locate: Callable[[str], str]) -> Csr:
        """The CSR with its arrays mapped from ``locate(name)``."""
        arrays = [
            np.load(locate(name), mmap_mode="r")[:n] if n else np.zeros(0, dtype)
            for name, n, dtype in zip(self.files, self.lengths, _CSR_DTYPES, strict=True)
        ]
        return Csr(*arrays)


_CSR_DTYPES = (np.int64, np.int32, np.float64)


def csr_name(folder: str | None, kind: str) -> str:
    """The files' stem of ``kind``'s CSR in ``folder``: unique to the folder, for ``addFile``."""
    return f"{os.path.basename(folder or '')}-{kind}"


def save_csr(csr: Csr, folder: str, kind: str) -> CsrFiles:
    """``csr`` as files in ``folder``; arrays :class:`CsrBuilder` mapped there are not copied."""
    files = []
    for part, array in zip(("indptr", "nbr", "cum"), (csr.indptr, csr.nbr, csr.cum), strict=True):
        path = os.path.join(folder, f"{csr_name(folder, kind)}.{part}.npy")
        # The builder's file starts with this array (its capacity may be longer: ``lengths``).
        mapped = isinstance(array, np.memmap) and array.filename is not None
        if not (mapped and os.path.exists(path) and os.path.samefile(array.filename, path)):
            np.save(path, np.ascontiguousarray(array))
        files.append(os.path.basename(path))
    lengths = (csr.indptr.size, csr.nbr.size, csr.cum.size)
    return CsrFiles(tuple(files), lengths)  # type: ignore[arg-type]


def pick(csr: Csr, cur: np.ndarray, visited: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per walk ``i``: a neighbour of ``cur[i]`` not in ``visited[i]``, -1 when none is left.

    ``visited``: ``(walks, k)`` node indices, -1 for padding; ``u`` in (0, 1). The neighbour
    is the unvisited entry whose interval holds ``u`` times the unvisited mass once the visited
    intervals are skipped: probability ``w / (unvisited mass)``, the same for a given ``u``
    however the walks are batched.
    """
    if csr.nbr.size == 0:  # no edge of this kind at all
        return np.full(cur.shape, -1, dtype=np.int64)
    start, end = csr.indptr[cur], csr.indptr[cur + 1]
    pos = np.sort(np.where((p := csr.find(cur, visited)) >= 0, p, _NO_POS), axis=1)
    seen = pos != _NO_POS
    safe = np.where(seen, pos, 0)
    width = np.where(seen, csr.cum[safe + 1] - csr.cum[safe], 0.0)
    left = (end - start) - seen.sum(axis=1)
    t = csr.cum[start] + u * (csr.cum[end] - csr.cum[start] - width.sum(axis=1))
    for j in range(pos.shape[1]):  # ascending: each skip may carry t past the next one
        t = np.where(seen[:, j] & (t >= csr.cum[safe[:, j]]), t + width[:, j], t)
    entry = np.clip(np.searchsorted(csr.cum, t, side="right") - 1, start, np.maximum(end - 1, 0))
    nxt = csr.nbr[np.minimum(entry, csr.nbr.size - 1)].astype(np.int64)
    # Rounding can put t on a visited entry's edge or at the row's end: then the nearest
    # unvisited entry before it (after it if none) -- a bias of order 1e-16.
    for i in np.flatnonzero((left > 0) & (visited == nxt[:, None]).any(axis=1)):
        free = np.setdiff1d(np.arange(start[i], end[i]), pos[i][seen[i]])
        before = free[free <= entry[i]]
        nxt[i] = csr.nbr[before[-1] if before.size else free[0]]
    return np.where(left > 0, nxt, -1)


@dataclass(frozen=True)
class Adjacency:
    """The numbered graph: ``ids`` (pyarrow strings), ``topics`` (indices), a CSR per kind."""

    ids: pa.Array
    topics: np.ndarray
    csr: dict[str, Csr]


def build_adjacency(nodes: pa.Table, edges: pa.Table, eps: float) -> Adjacency:
    """The CSRs of a numbered graph, from all its edges in memory at once.

    ``nodes``: ``(id, topic)`` row ``i`` for node ``i``, in id order; ``edges``: ``(s, d, k,
    freq)``, node numbers, ``k`` the index of the edge's kind in :data:`KINDS`. Weights are
    ``freq + eps``; each must be > 0, and every end must be a node.
    """
    ids = _node_ids(nodes)
    src, dst, k, weight = checked_edges(edges, len(ids), eps)
    csr = {}
    for code, kind in enumerate(KINDS):  # one kind's copies alive at a time
        mine = np.flatnonzero(k == code)
        both = kind != "topic_concept"
        csr[kind] = Csr.from_edges(src[mine], dst[mine], weight[mine], len(ids), both=both)
        del mine
    return Adjacency(ids, _topics(nodes), csr)


def stream_adjacency(
    nodes: pa.Table,
    chunks: Iterable[pa.Table],
    capacity: dict[str, int],
    eps: float,
    folder: str | None = None,
) -> Adjacency:
    """The CSRs of a numbered graph from its directed entries, a chunk at a time.

    ``chunks``: ``(s, d, k, freq)`` tables as :func:`build_adjacency` takes, but every entry
    already directed (a ``topic_topic`` or ``concept_concept`` edge comes once each way) and
    all of them in ``(k, s, d)`` order across the chunks; ``capacity``: at least the number of
    entries of each kind. The driver holds one chunk, and the CSRs (~12 bytes per entry) in
    memory, or mapped from files in ``folder`` (see :class:`CsrBuilder`).
    """
    ids = _node_ids(nodes)
    builders = {
        kind: CsrBuilder(len(ids), capacity.get(kind, 0), folder, csr_name(folder, kind))
        for kind in KINDS
    }
    for chunk in chunks:
        src, dst, k, weight = checked_edges(chunk, len(ids), eps)
        if k.size and np.any(k[1:] < k[:-1]):
            raise ValueError("CSR entries must come in (kind, row, neighbour) order")
        bounds = np.searchsorted(k, np.arange(len(KINDS) + 1), side="left")
        for code, kind in enumerate(KINDS):
            lo, hi = bounds[code], bounds[code + 1]
            key = src[lo:hi].astype(np.int64)
            key *= len(ids)
            key += dst[lo:hi]
            builders[kind].add(key, weight[lo:hi])
    return Adjacency(ids, _topics(nodes), {kind: b.finish() for kind, b in builders.items()})


def checked_edges(edges: pa.Table, num_nodes: int, eps: float) -> tuple[np.ndarray, ...]:
    """``(s, d, k, weight)`` of numbered edges as numpy arrays, ``weight = freq + eps``.

    Refuses an edge with a missing end, kind or freq (an end that is not a node comes out of
    the numbering join as null), a number outside the nodes, and a weight that is not > 0.
    """
    cols = {c: edges[c].combine_chunks() for c in ("s", "d", "k", "freq")}
    if any(col.null_count for col in cols.values()):
        raise ValueError("edges: an edge has an end that is not a node, or no kind or freq")
    src, dst = cols["s"].to_numpy(), cols["d"].to_numpy()  # int32: views, no copies
    if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= num_nodes):
        raise ValueError(f"edges: a node number outside 0..{num_nodes - 1}")
    weight = cols["freq"].to_numpy().astype(np.float64)
    weight += eps
    if not np.all(np.isfinite(weight) & (weight > 0)):
        raise ValueError("edges: every freq + eps must be a finite number > 0")
    return src, dst, cols["k"].to_numpy(), weight


def _node_ids(nodes: pa.Table) -> pa.Array:
    import pyarrow as pa

    ids = nodes["id"].combine_chunks().cast(pa.string())
    if len(ids) >= 2**31:
        raise ValueError(f"{len(ids)} nodes: more than the int32 indices hold")
    return ids


def _topics(nodes: pa.Table) -> np.ndarray:
    topic = nodes["topic"].combine_chunks().to_numpy(zero_copy_only=False)
    return np.flatnonzero(topic).astype(np.int64)
