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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from jobs.cli import JobContext, run_job
from jobs.commit import StageStats, require_committed
from jobs.config import PipelineConfig
from jobs.llm.engine import ChatRequest
from jobs.llm.shards import commit_requests, make_request, prepare_parser
from jobs.questions import prompts
from jobs.storage import Storage
from jobs.tables import read_table

if TYPE_CHECKING:
    import pandas as pd

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


def topics_by_doc(doc_concepts: pd.DataFrame) -> dict[str, list[tuple[str, list[str]]]]:
    """Each document's topics in first-seen order, each with its concepts (display names)."""
    out: dict[str, dict[str, list[str]]] = {}
    for row in doc_concepts.itertuples(index=False):
        topics = out.setdefault(str(row.doc_id), {})
        concepts = topics.setdefault(str(row.topic), [])
        if isinstance(row.concept, str) and row.concept not in concepts:
            concepts.append(row.concept)
    return {doc: list(topics.items()) for doc, topics in out.items()}


def _bounded(combos: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    ordered = combos.sort_values("combo_id", kind="mergesort")
    return ordered if limit is None else ordered.head(limit)


def build_level_requests(
    combos: pd.DataFrame,
    texts: Mapping[str, str],
    doc_topics: Mapping[str, list[tuple[str, list[str]]]],
    cfg: PipelineConfig,
) -> tuple[dict[int, list[ChatRequest]], dict[int, int]]:
    """The requests of every level, and per level the combinations whose texts are missing."""
    gen, qcfg = cfg.generation, cfg.questions
    limits = {1: None, 2: qcfg.max_combinations_l2, 3: qcfg.max_combinations_l3}
    out: dict[int, list[ChatRequest]] = {}
    skipped: dict[int, int] = {}
    for level in LEVELS:
        rows = _bounded(combos[combos["level"] == level], limits[level])
        requests = []
        skipped[level] = 0
        for row in rows.itertuples(index=False):
            refs = [str(d) for d in row.ref_doc_ids]
            docs = [texts[d] for d in refs if d in texts]
            if len(docs) != len(refs) or not docs:
                skipped[level] += 1  # documents and combinations of different runs
                continue
            if level == 1:
                messages = prompts.build_messages(
                    docs[0], gen.max_prompt_chars, num_questions=qcfg.num_questions_l1
                )
            elif level == 2:
                messages = prompts.build_l2_messages(
                    docs[0],
                    doc_topics.get(refs[0], []),
                    gen.max_prompt_chars,
                    num_questions=qcfg.num_questions_l2,
                )
            else:
                messages = prompts.build_l3_messages(
                    docs,
                    [str(t) for t in row.topics],
                    [str(c) for c in row.concepts],
                    gen.max_prompt_chars,
                    num_questions=qcfg.num_questions_l3,
                )
            requests.append(make_request(str(row.combo_id), messages, gen))
        out[level] = requests
    return out, skipped


def run(ctx: JobContext) -> StageStats:
    """Read combinations, texts and concepts → one request set per level → commit."""
    storage = Storage(ctx.cfg.storage)
    layout = ctx.layout
    inputs = [layout.table(t) for t in ("combinations", "documents", "doc_concepts")]
    for uri in inputs:
        require_committed(storage, uri)
    combos = read_table(storage, inputs[0])
    wanted = {str(d) for refs in combos["ref_doc_ids"] for d in refs}
    docs = read_table(storage, inputs[1], columns=["doc_id", "text"])
    texts = {
        str(d): str(t or "")
        for d, t in zip(docs["doc_id"], docs["text"], strict=True)
        if d in wanted
    }
    concepts = read_table(storage, inputs[2], columns=["doc_id", "topic", "concept"])
    by_level, skipped = build_level_requests(combos, texts, topics_by_doc(concepts), ctx.cfg)
    total = StageStats()
    for level, requests in by_level.items():
        missing = {"missing_document": skipped[level]} if skipped[level] else {}
        stats = StageStats(len(requests) + skipped[level], len(requests), missing)
        commit_requests(
            ctx, "questions.prepare", TASKS[level], requests, stats, inputs, PROMPT_VERSIONS[level]
        )
        total.rows_in += stats.rows_in
        total.rows_out += stats.rows_out
    total.quarantined = {f"l{lv}_missing_document": n for lv, n in skipped.items() if n}
    counts = {str(level): len(r) for level, r in by_level.items()}
    total.extra = {"requests_by_level": counts}
    log.info("question requests per level: %s; missing documents %s", counts, skipped)
    return total


def main(argv: Sequence[str] | None = None) -> int:
    parser = prepare_parser("Write the Level-1, -2 and -3 question requests")
    return run_job("questions.prepare", list(argv) if argv is not None else None, run, parser)


if __name__ == "__main__":
    raise SystemExit(main())
