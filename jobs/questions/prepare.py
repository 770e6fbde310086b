"""Write the question requests of all three levels from the committed combinations.

``python -m jobs.questions.prepare --snapshot S --num-shards N`` reads ``combinations``
(written by ``jobs.graph.combinations``), ``documents`` (the texts) and ``doc_concepts`` (each
document's topics with their key concepts), and commits one request set per level:

- ``questions_l1``: P-L1 on one document;
- ``questions_l2``: P-L2 on one document and its own topics and key concepts;
- ``questions_l3``: P-L3 on a graph-sampled concept set and its reference documents.

Each set has N shards. ``questions.max_combinations_l2/_l3`` bound the prompts per level;
the combinations kept are the first by combo_id, which for Level-3 is a hash of the walk,
so a bounded run takes an unbiased, rerun-stable sample.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.cli import JobContext, run_job
from jobs.commit import StageStats, require_committed
from jobs.config import PipelineConfig
from jobs.llm.shards import RequestShards, commit_prepared, make_request, prepare_parser
from jobs.questions import prompts
from jobs.spill import BUCKET_ROWS, Spill, hash_buckets, num_buckets
from jobs.storage import Storage
from jobs.tables import iter_table_batches, read_columns

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

LEVELS = (1, 2, 3)
TASKS = {level: f"questions_l{level}" for level in LEVELS}
PROMPT_VERSIONS = {
    1: prompts.PROMPT_VERSION,
    2: prompts.PROMPT_VERSION_L2,
    3: prompts.PROMPT_VERSION_L3,
}
# Kept for callers that name the Level-1 task directly.
TASK = TASKS[1]
COMBO_PREFIX = "l1-"


def combo_id(doc_id: str) -> str:
    """Level-1 combinations are single documents: the request id is the combo id."""
    return COMBO_PREFIX + doc_id


# The order documents are chosen in (Level-1 prompts, concept extraction): the fine-grained
# filter's score where a document has one, then the cold-start classifier's, then doc_id.
RANK_COLUMNS = ("fine_score", "domain_score")


def select_documents(docs: pd.DataFrame, max_documents: int) -> pd.DataFrame:
    """The ``max_documents`` best documents by ``RANK_COLUMNS`` (nulls last), then doc_id.

    ``jobs.graph.combinations.level1`` applies the same order in Spark.
    """
    import pandas as pd

    keys = {}
    for column in RANK_COLUMNS:
        values = docs[column] if column in docs else pd.Series(None, index=docs.index)
        keys[f"_{column}"] = pd.to_numeric(values, errors="coerce").astype(float)
    ordered = docs.assign(**{k: v.fillna(float("-inf")) for k, v in keys.items()})
    ordered = ordered.sort_values(
        [*keys, "doc_id"], ascending=[False] * len(keys) + [True], kind="mergesort"
    )
    return ordered.drop(columns=list(keys)).head(max_documents).reset_index(drop=True)


def topics_by_doc(doc_concepts: pa.Table) -> dict[str, list[tuple[str, list[str]]]]:
    """Each document's topics in first-seen order, each with its concepts (display names).

    ``doc_concepts``: ``doc_id``, ``topic`` and ``concept`` columns; a concept that is not a
    string (null) is left out, and a repeated one is kept once.
    """
    out: dict[str, dict[str, list[str]]] = {}
    columns = [doc_concepts[c].to_pylist() for c in ("doc_id", "topic", "concept")]
    for doc, topic, concept in zip(*columns, strict=True):
        if not isinstance(doc, str):
            doc = str(doc)
        if not isinstance(topic, str):
            topic = str(topic)
        topics = out.get(doc)
        if topics is None:
            topics = out[doc] = {}
        concepts = topics.get(topic)
        if concepts is None:
            concepts = topics[topic] = []
        if isinstance(concept, str) and concept not in concepts:
            concepts.append(concept)
    return {doc: list(topics.items()) for doc, topics in out.items()}


def level_messages(
    level: int,
    docs: Sequence[str],
    doc_topics: Sequence[tuple[str, list[str]]],
    topics: Sequence[str],
    concepts: Sequence[str],
    cfg: PipelineConfig,
) -> list[dict[str, str]]:
    """One combination's prompt: ``docs`` its documents' texts, in its ``ref_doc_ids`` order;
    ``doc_topics`` the first document's own topics (Level-2); ``topics``/``concepts`` the
    sampled ones (Level-3)."""
    gen, qcfg = cfg.generation, cfg.questions
    if level == 1:
        return prompts.build_messages(
            docs[0], gen.max_prompt_chars, num_questions=qcfg.num_questions_l1
        )
    if level == 2:
        return prompts.build_l2_messages(
            docs[0], doc_topics, gen.max_prompt_chars, num_questions=qcfg.num_questions_l2
        )
    return prompts.build_l3_messages(
        docs, topics, concepts, gen.max_prompt_chars, num_questions=qcfg.num_questions_l3
    )


def run(ctx: JobContext) -> StageStats:
    """Read combinations, texts and concepts → one request set per level → commit.

    Every table is read in batches and joined through local spills (:class:`LevelJoin`):
    the job holds the combination ids (to order them), the referenced document ids and one
    bucket of rows at a time, never the tables or the requests.
    """
    storage = Storage(ctx.cfg.storage)
    layout = ctx.layout
    inputs = [layout.table(t) for t in ("combinations", "documents", "doc_concepts")]
    for uri in inputs:
        require_committed(storage, uri)
    qcfg = ctx.cfg.questions
    limits = {1: None, 2: qcfg.max_combinations_l2, 3: qcfg.max_combinations_l3}
    total = StageStats()
    counts: dict[str, int] = {}
    skipped: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="synthllm-questions-prepare-") as folder:
        joined = LevelJoin(storage, inputs, limits, Path(folder), SPILL_ROWS)
        for level in LEVELS:
            skipped[level] = 0
            with RequestShards.for_task(ctx, TASKS[level]) as shards:
                for combo in joined.combinations(level):
                    if combo.docs is None:
                        skipped[level] += 1  # documents and combinations of different runs
                        continue
                    messages = level_messages(
                        level, combo.docs, combo.doc_topics, combo.topics, combo.concepts, ctx.cfg
                    )
                    shards.add(make_request(combo.combo_id, messages, ctx.cfg.generation))
                missing = {"missing_document": skipped[level]} if skipped[level] else {}
                stats = StageStats(shards.count + skipped[level], shards.count, missing)
                commit_prepared(
                    ctx, shards, "questions.prepare", TASKS[level], stats, inputs,
                    PROMPT_VERSIONS[level],
                )  # fmt: skip
            counts[str(level)] = stats.rows_out
            total.rows_in += stats.rows_in
            total.rows_out += stats.rows_out
    total.quarantined = {f"l{lv}_missing_document": n for lv, n in skipped.items() if n}
    total.extra = {"requests_by_level": counts}
    log.info("question requests per level: %s; missing documents %s", counts, skipped)
    return total


@dataclass(frozen=True)
class Combination:
    """One combination with what its prompt needs; ``docs`` is None where a document is
    missing (or the combination names none)."""

    combo_id: str
    docs: list[str] | None
    doc_topics: list[tuple[str, list[str]]]
    topics: list[str]
    concepts: list[str]


# Rows read from a table at a time (doc_concepts' rows are short: ~30 a document), and rows
# of a spill bucket (what the job holds at once).
BATCH_ROWS = 20_000
CONCEPT_BATCH_ROWS = 200_000
SPILL_ROWS = BUCKET_ROWS
_COMBO_COLUMNS = ["combo_id", "level", "ref_doc_ids", "topics", "concepts"]


class LevelJoin:
    """The combinations of each level in ``combo_id`` order, joined to their documents.

    Built on construction, in four passes over local spills (:mod:`jobs.spill`):

    1. the ``(combo_id, level)`` columns give each level's ids in order, the first
       ``limits[level]`` of them (a rank per combination);
    2. each kept combination goes to a bucket of its level by rank, and each of its
       ``ref_doc_ids`` to a bucket by a hash of the document id;
    3. ``documents`` and ``doc_concepts`` rows of the referenced documents go to the
       buckets of their ids' hash;
    4. per hash bucket, each reference gets its text (and, for Level-2, the document's
       topics in ``doc_concepts`` order) and goes to its combination's rank bucket.

    :meth:`combinations` then reads one level's rank buckets in order. A document missing
    from ``documents`` leaves its combinations without ``docs``.
    """

    def __init__(
        self,
        storage: Storage,
        inputs: Sequence[str],
        limits: Mapping[int, int | None],
        folder: Path,
        bucket_rows: int = BUCKET_ROWS,
    ) -> None:
        import pyarrow.compute as pc

        self.bucket_rows = bucket_rows
        combos_uri, docs_uri, concepts_uri = inputs
        self.ranked = _ranked_ids(storage, combos_uri, limits)
        sizes = {level: len(ids) for level, ids in self.ranked.items()}
        # Level-3 combinations cite up to num_refs documents: two by default.
        self.hash_buckets = num_buckets(sizes[1] + sizes[2] + 2 * sizes[3], bucket_rows)

        def by_rank(name: str) -> dict[int, Spill]:
            return {
                lv: Spill(folder, f"{name}-l{lv}", num_buckets(n, bucket_rows))
                for lv, n in sizes.items()
            }

        self.combos, self.joined = by_rank("combos"), by_rank("joined")
        refs = Spill(folder, "refs", self.hash_buckets)
        referenced = self._spill_combinations(storage, combos_uri, refs)
        docs = Spill(folder, "documents", self.hash_buckets)
        concepts = Spill(folder, "doc-concepts", self.hash_buckets)
        for uri, columns, spill, rows in (
            (docs_uri, ["doc_id", "text"], docs, BATCH_ROWS),
            (concepts_uri, ["doc_id", "topic", "concept"], concepts, CONCEPT_BATCH_ROWS),
        ):
            for batch in iter_table_batches(storage, uri, rows, columns=columns):
                kept = batch.filter(pc.is_in(_strings(batch["doc_id"]), value_set=referenced))
                spill.add(kept, hash_buckets(_strings(kept["doc_id"]), self.hash_buckets))
        self._join(refs, docs, concepts)
        log.info(
            "questions.prepare: combinations per level %s, %d document references to %d "
            "documents, through %d hash buckets",
            sizes, refs.rows, len(referenced), self.hash_buckets,
        )  # fmt: skip

    def _spill_combinations(self, storage: Storage, uri: str, refs: Spill) -> pa.Array:
        """Pass 2; returns the distinct referenced document ids."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        seen = [pa.array([], pa.string())]
        for batch in iter_table_batches(storage, uri, BATCH_ROWS, columns=_COMBO_COLUMNS):
            for level, ranked in self.ranked.items():
                rows = batch.filter(pc.equal(batch["level"], level))
                if len(rows) == 0:  # the table is in combo_id order: mostly one level a batch
                    continue
                rank = pc.index_in(_strings(rows["combo_id"]), value_set=ranked)
                keep = pc.is_valid(rank)
                rows, rank = rows.filter(keep), rank.filter(keep).cast(pa.int64())
                if len(rows) == 0:
                    continue
                at = rank.to_numpy(zero_copy_only=False)
                combos = rows.select(["combo_id", "ref_doc_ids", "topics", "concepts"])
                self.combos[level].add(combos.append_column("_rank", rank), at // self.bucket_rows)
                lists = rows.column("ref_doc_ids")
                doc_ids = _strings(pc.list_flatten(lists))
                parent = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
                lengths = pc.fill_null(pc.list_value_length(lists), 0)
                first = np.concatenate([[0], np.cumsum(lengths.to_numpy(zero_copy_only=False))])
                ref_rows = pa.table(
                    {
                        "level": pa.array(np.full(len(doc_ids), level, dtype=np.int8)),
                        "_rank": pa.array(at[parent]),
                        "_ref": pa.array(np.arange(len(doc_ids)) - first[parent]),
                        "doc_id": doc_ids,
                    }
                )
                refs.add(ref_rows, hash_buckets(doc_ids, self.hash_buckets))
                seen.append(pc.unique(doc_ids))
        return pc.unique(pa.concat_arrays(seen))

    def _join(self, refs: Spill, docs: Spill, concepts: Spill) -> None:
        """Pass 4: each reference with its text (and Level-2 topics), by rank bucket."""
        import numpy as np
        import pyarrow as pa

        for ref_rows, doc_rows, concept_rows in zip(
            refs.drain(), docs.drain(), concepts.drain(), strict=True
        ):
            if len(ref_rows) == 0:
                continue
            texts = {}
            if len(doc_rows):
                ids, values = doc_rows["doc_id"].to_pylist(), doc_rows["text"].to_pylist()
                texts = {str(d): str(t or "") for d, t in zip(ids, values, strict=True)}
            own = topics_by_doc(concept_rows) if len(concept_rows) else {}
            levels = ref_rows["level"].to_numpy(zero_copy_only=False)
            for level in np.unique(levels).tolist():
                rows = ref_rows.filter(pa.array(levels == level))
                doc_ids = rows["doc_id"].to_pylist()
                first = (rows["_ref"].to_numpy(zero_copy_only=False) == 0).tolist()
                doc_topics = [
                    [{"topic": t, "concepts": cs} for t, cs in own.get(d, [])]
                    if level == 2 and is_first
                    else None
                    for d, is_first in zip(doc_ids, first, strict=True)
                ]
                joined = pa.table(
                    {
                        "_rank": rows["_rank"],
                        "_ref": rows["_ref"],
                        "text": pa.array([texts.get(d) for d in doc_ids], pa.string()),
                        "doc_topics": pa.array(doc_topics, _topics_type()),
                    }
                )
                rank = rows["_rank"].to_numpy(zero_copy_only=False)
                self.joined[level].add(joined, rank // self.bucket_rows)

    def combinations(self, level: int) -> Iterator[Combination]:
        """Level ``level``'s combinations in ``combo_id`` order (each bucket read once)."""
        import pyarrow.compute as pc

        for combos, joined in zip(
            self.combos[level].drain(), self.joined[level].drain(), strict=True
        ):
            if len(combos) == 0:
                continue
            found: dict[tuple[int, int], tuple[str | None, list | None]] = {}
            if len(joined):
                columns = [joined[c].to_pylist() for c in ("_rank", "_ref", "text", "doc_topics")]
                for rank, ref, text, own in zip(*columns, strict=True):
                    found[(rank, ref)] = (text, own)
            for row in combos.take(pc.sort_indices(combos["_rank"])).to_pylist():
                refs = row["ref_doc_ids"] or []
                hits = [found.get((row["_rank"], i), (None, None)) for i in range(len(refs))]
                docs = [text for text, _ in hits if text is not None]
                own = hits[0][1] if hits else None
                yield Combination(
                    combo_id=str(row["combo_id"]),
                    docs=docs if docs and len(docs) == len(refs) else None,
                    doc_topics=[(t["topic"], t["concepts"]) for t in own or []],
                    topics=[str(t) for t in row["topics"] or []],
                    concepts=[str(c) for c in row["concepts"] or []],
                )


def _topics_type():
    import pyarrow as pa

    concepts = pa.list_(pa.string())
    return pa.list_(pa.struct([("topic", pa.string()), ("concepts", concepts)]))


def _strings(array):
    """``array`` as one chunk of ``string``, the type ids are looked up in."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array if array.type == pa.string() else array.cast(pa.string())


def _ranked_ids(
    storage: Storage, uri: str, limits: Mapping[int, int | None]
) -> dict[int, pa.Array]:
    """Each level's combination ids in ``combo_id`` order, the first ``limits[level]``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = read_columns(storage, uri, ["combo_id", "level"], BATCH_ROWS)
    out = {}
    for level in LEVELS:
        if keys is None:
            out[level] = pa.array([], pa.string())
            continue
        ids = _strings(keys.filter(pc.equal(keys["level"], level))["combo_id"])
        ids = ids.take(pc.sort_indices(ids))  # a stable sort: the order pandas' mergesort gave
        limit = limits.get(level)
        out[level] = ids if limit is None else ids.slice(0, limit)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = prepare_parser("Write the Level-1, -2 and -3 question requests")
    return run_job("questions.prepare", list(argv) if argv is not None else None, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
