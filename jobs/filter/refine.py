"""Refine job: candidates → documents, the fine-grained filter's rounds (paper section 1.1).

``python -m jobs.filter.refine --snapshot S`` reads the filter job's ``candidates`` (every
document that passed the heuristics and dedup, with its cold-start ``domain_score``, the
cold-start verdict in ``filter_reason`` and its MiniLM ``embedding``), runs
``refine.num_iterations`` rounds (:mod:`jobs.filter.rounds`) with the LLM rater
(:mod:`jobs.filter.rating`, engine ``refine.engine`` or the generation one) and commits:

- ``quarantine/refine_ratings``: ratings that stayed unreadable after one repair (or whose
  request failed), with the raw replies; the document itself is still scored;
- ``quarantine/refine``: candidates left out (``below_fine_threshold``, or ``off_domain``
  when no round's regressor decided), with their scores;
- ``documents``: the final set, each row with ``domain_score``, its rating (``ratings``,
  ``rating``, ``rating_round``; null when never rated) and ``fine_score``.

It is a GPU job in the DAG (the rater is an LLM); the embeddings come with the candidates,
so it needs no Spark and no embedding model. Every batch of ratings is stored as it arrives
(:mod:`jobs.filter.rating_store`, under ``llm/doc_ratings``), keyed by request and model, so
a rerun after a failure or a kill reuses the ratings it already has and rates only the rest.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from jobs.cli import JobContext, run_job
from jobs.commit import StageOutput, StageStats, require_committed
from jobs.filter.rating import PROMPT_VERSION, TASK_NAME
from jobs.filter.rating_store import RatingStore, StoredRater
from jobs.filter.rounds import Candidates, RoundsResult, run_rounds, score_histograms
from jobs.storage import Storage, join
from jobs.tables import PART_FILE, data_files, quarantine_row, schema, write_table

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

STAGE = "refine"
RATINGS_STAGE = "refine_ratings"
CANDIDATES = "candidates"
MAX_RAW_TEXT_CHARS = 4_000  # as in the filter's quarantine: room for the other fields


def read_arrow(storage: Storage, uri: str) -> pa.Table:
    """Every Parquet part file under a committed prefix as one Arrow table (types kept)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = data_files(storage, uri)
    tables = [pq.read_table(io.BytesIO(storage.read_bytes(f))) for f in files]
    if not tables:
        raise ValueError(f"{uri}: no Parquet files")
    return pa.concat_tables(tables, promote_options="permissive")


def to_candidates(table: pa.Table) -> Candidates:
    """The arrays the rounds need from the candidates table."""
    vectors = table.column("embedding").to_pylist()
    dim = max((len(v) for v in vectors if v is not None), default=0)
    emb = np.array([v if v is not None else [0.0] * dim for v in vectors], dtype=float)
    return Candidates(
        doc_ids=[str(d) for d in table.column("doc_id").to_pylist()],
        texts=[t or "" for t in table.column("text").to_pylist()],
        embeddings=emb.reshape(len(vectors), dim),
        cold_kept=np.array([r == "kept" for r in table.column("filter_reason").to_pylist()]),
    )


def rating_columns(n: int, result: RoundsResult) -> dict[str, list[Any]]:
    """``ratings`` (struct), ``rating``, ``rating_round`` and ``fine_score`` per candidate."""
    ratings: list[Any] = [None] * n
    mean: list[float | None] = [None] * n
    rounds: list[int | None] = [None] * n
    for pos, (t, out) in result.ratings.items():
        rating = out.parsed.rating
        rounds[pos] = t
        if rating is not None:
            ratings[pos] = {c: getattr(rating, c) for c in ("relevance", "clarity", "language")}
            mean[pos] = rating.score
    fine = [None if np.isnan(v) else round(float(v), 4) for v in result.fine_score]
    return {"ratings": ratings, "rating": mean, "rating_round": rounds, "fine_score": fine}


def with_ratings(table: pa.Table, result: RoundsResult) -> pa.Table:
    """``table`` without its embedding, plus the rating columns."""
    import pyarrow as pa

    cols = rating_columns(table.num_rows, result)
    crit = pa.struct([(c, pa.float64()) for c in ("relevance", "clarity", "language")])
    out = table.drop_columns([c for c in ("embedding",) if c in table.column_names])
    out = out.append_column("ratings", pa.array(cols["ratings"], crit))
    out = out.append_column("rating", pa.array(cols["rating"], pa.float64()))
    out = out.append_column("rating_round", pa.array(cols["rating_round"], pa.int32()))
    return out.append_column("fine_score", pa.array(cols["fine_score"], pa.float64()))


def removed_rows(table: pa.Table, kept: np.ndarray, reason: str, snapshot: str) -> list[dict]:
    """Quarantine rows of the candidates left out, scores and a cut text inside ``raw``."""
    rows = []
    for row in table.filter(~kept).to_pylist():
        text = row.pop("text") or ""
        row["cold_start"] = row.pop("filter_reason")  # the classifier's verdict
        raw = {
            **row,
            "text_truncated": len(text) > MAX_RAW_TEXT_CHARS,
            "text": text[:MAX_RAW_TEXT_CHARS],
        }
        raw["meta"] = dict(raw["meta"]) if raw.get("meta") else {}
        rows.append(quarantine_row(STAGE, reason, raw, snapshot, row["doc_id"], row["source"]))
    return rows


def rating_failures(cand: Candidates, result: RoundsResult, snapshot: str) -> list[dict]:
    """One quarantine row per rating that could not be read, with the raw replies."""
    rows = []
    for pos, (t, out) in sorted(result.ratings.items()):
        if out.parsed.rating is not None:
            continue
        reason = "request_error" if out.response.error else "unparseable_rating"
        raw = {
            "custom_id": out.custom_id,
            "round": t,
            "text": out.response.text,
            "first_attempt": out.first.text if out.first else None,
            "attempts": out.attempts,
            "finish_reason": out.response.finish_reason,
            "parse_error": out.parsed.error,
            "prompt_version": PROMPT_VERSION,
        }
        rows.append(quarantine_row(RATINGS_STAGE, reason, raw, snapshot, cand.doc_ids[pos]))
    return rows


def _write_arrow(storage: Storage, table: pa.Table, uri: str) -> None:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    storage.write_bytes(join(uri, PART_FILE), buf.getvalue(), "application/vnd.apache.parquet")


def _commit_rows(storage, uri, attempt, rows, manifest, reasons) -> None:
    out = StageOutput(storage, uri, attempt)
    write_table(storage, rows, out.begin(), schema("quarantine"))
    out.commit({**manifest, "table": "quarantine"}, StageStats(len(rows), len(rows), extra=reasons))


def run(ctx: JobContext, engine_factory=None) -> StageStats:
    """Read candidates → rounds → commit rating quarantine, removals, then documents."""
    import pyarrow as pa

    from jobs.llm.engine import make_engine
    from jobs.llm.fingerprint import model_fingerprint
    from jobs.llm.tasks import generation_for

    cfg, storage, layout = ctx.cfg.refine, Storage(ctx.cfg.storage), ctx.layout
    gen = generation_for(ctx.cfg, "refine")
    source = layout.table(CANDIDATES)
    require_committed(storage, source)
    outputs = [StageOutput(storage, layout.table("documents"), ctx.attempt)]  # wall time
    table = read_arrow(storage, source)
    cand = to_candidates(table)
    store = RatingStore(storage, layout.llm_task(TASK_NAME), ctx.attempt)
    factory = engine_factory or (lambda: make_engine(gen))
    rater = StoredRater(store, factory, cfg, gen.batch_size, model_fingerprint(gen)["sha256"])
    result = run_rounds(cand, rater, cfg)
    reason = "below_fine_threshold" if result.decided_by else "off_domain"
    failures = rating_failures(cand, result, ctx.snapshot)
    rated = with_ratings(table, result)
    removed = removed_rows(rated, result.kept, reason, ctx.snapshot)
    manifest = ctx.manifest("filter.refine", [source], prompt_version=PROMPT_VERSION)
    fail_counts = dict(Counter(r["reason"] for r in failures))
    _commit_rows(
        storage, layout.quarantine(RATINGS_STAGE), ctx.attempt, failures, manifest,
        {"by_reason": fail_counts},
    )  # fmt: skip
    _commit_rows(
        storage, layout.quarantine(STAGE), ctx.attempt, removed, manifest,
        {"by_reason": {reason: len(removed)} if removed else {}},
    )  # fmt: skip
    kept = rated.filter(result.kept)
    index = kept.column_names.index("filter_reason")
    kept = kept.set_column(index, "filter_reason", pa.array(["kept"] * kept.num_rows, pa.string()))
    stats = StageStats(
        rows_in=table.num_rows,
        rows_out=kept.num_rows,
        quarantined={reason: len(removed)} if removed else {},
        extra={"refine": refine_stats(cand, result, cfg, gen, fail_counts, table, rater)},
    )
    stats.check_balance()
    out = outputs[0]
    _write_arrow(storage, kept, out.begin())
    out.commit({**manifest, "table": "documents"}, stats)
    log.info("refine: kept %d of %d candidates (%s)", kept.num_rows, table.num_rows, reason)
    return stats


def refine_stats(cand, result, cfg, gen, fail_counts, table, rater) -> dict[str, Any]:
    """The ``refine`` block of documents/_stats.json (the report's filter section)."""
    cold = np.array(
        [np.nan if v is None else v for v in table.column("domain_score").to_pylist()], float
    )
    return {
        "num_candidates": len(cand.doc_ids),
        "cold_start_kept": int(cand.cold_kept.sum()),
        "num_iterations": cfg.num_iterations,
        "threshold": cfg.threshold,
        "min_keep_share": cfg.min_keep_share,
        "decided_by_round": result.decided_by,
        "rounds": result.rounds,
        "ratings_quarantined": fail_counts,
        "ratings_reused": rater.reused,  # stored by an earlier attempt of this run
        "ratings_generated": rater.generated,
        "rater_model": gen.model,
        "histograms": score_histograms(cold, result),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m jobs.filter.refine --snapshot S``."""
    return run_job("filter.refine", argv, run)


if __name__ == "__main__":
    raise SystemExit(main())
