"""LLM-written positives for the cold-start classifier (paper section 1.1).

The paper's positives are synthetic domain documents written by an LLM from syllabi. With
``filter.positive_topics`` set, ``python -m jobs.filter.positives --snapshot S`` asks the
rating engine (``refine.engine``, else the generation one) for one short document per topic
(a textbook section, an exam paper with solutions, a blog post or lecture notes, in turn)
and commits them as ``{run}/positives/positives.jsonl`` (the seed file's format); replies
that are empty, failed or shorter than ``filter.min_chars`` land in ``quarantine/positives``.
The filter job then reads those instead of ``filter.positives_uri``. With no topics the job
does nothing and the filter reads the seed file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from jobs.cli import JobContext, run_job
from jobs.commit import MANIFEST, StageOutput, StageStats, require_committed
from jobs.filter.classifier import parse_positives, read_positives
from jobs.layout import Layout
from jobs.llm.engine import ChatRequest, Engine
from jobs.llm.shards import make_request
from jobs.storage import Storage, join
from jobs.tables import quarantine_row, schema, write_table

log = logging.getLogger(__name__)

STAGE = "positives"
FILE = "positives.jsonl"
KINDS = (
    "a section of a textbook",
    "an exam paper with three problems and their worked solutions",
    "an educational blog post",
    "lecture notes",
)
_PROMPT = (
    'Write {kind} about the mathematics topic "{topic}". Explain the key definitions, '
    "state the main results with formulas, and work through one example. Write plain text, "
    "about 200 words, and start directly with the content."
)


def build_requests(topics: Sequence[str], gen: Any, max_tokens: int) -> list[ChatRequest]:
    """One request per topic; the document kind rotates with the topic's position."""
    requests = []
    for i, topic in enumerate(topics):
        text = _PROMPT.format(kind=KINDS[i % len(KINDS)], topic=topic.strip())
        req = make_request(f"p-{i:04d}", [{"role": "user", "content": text}], gen)
        requests.append(dataclasses.replace(req, max_tokens=max_tokens))
    return requests


def write_documents(
    engine: Engine, topics: Sequence[str], gen: Any, cfg: Any, snapshot: str
) -> tuple[list[dict], list[dict]]:
    """``(documents, quarantine rows)``: one document per topic whose reply is usable."""
    requests = build_requests(topics, gen, cfg.positive_max_tokens)
    docs, bad = [], []
    for start in range(0, len(requests), gen.batch_size):
        batch = requests[start : start + gen.batch_size]
        for req, resp in zip(batch, engine.generate(batch), strict=True):
            topic = topics[int(req.custom_id[2:])]
            text = (resp.text or "").strip()
            reason = "request_error" if resp.error else None
            if reason is None and len(text) < cfg.min_chars:
                reason = "too_short"
            if reason:
                raw = {"topic": topic, "text": text, "error": resp.error}
                bad.append(quarantine_row(STAGE, reason, raw, snapshot, req.custom_id))
            else:
                docs.append({"text": text, "topic": topic, "model": engine.model_name})
    return docs, bad


def positives_for(storage: Storage, layout: Layout, cfg: Any) -> list[str]:
    """The classifier's positives: the committed LLM-written ones, else the seed file."""
    if not cfg.positive_topics:
        return read_positives(storage, cfg.positives_uri)
    uri = layout.table(STAGE)
    require_committed(storage, uri)
    written_for = storage.read_json(join(uri, MANIFEST)).get("topics")
    if written_for != list(cfg.positive_topics):
        raise ValueError(
            f"{uri} was written for other filter.positive_topics; rerun jobs.filter.positives"
        )
    return parse_positives(storage.read_text(join(uri, FILE)), join(uri, FILE))


def run(ctx: JobContext, engine_factory=None) -> StageStats:
    """Write one positive per configured topic, or nothing when none is configured."""
    cfg = ctx.cfg.filter
    if not cfg.positive_topics:
        log.info("filter.positive_topics is empty: the classifier reads %s", cfg.positives_uri)
        return StageStats()
    from jobs.llm.engine import make_engine
    from jobs.llm.tasks import generation_for

    gen = generation_for(ctx.cfg, "refine")
    storage = Storage(ctx.cfg.storage)
    engine = (engine_factory or (lambda: make_engine(gen)))()
    docs, bad = write_documents(engine, cfg.positive_topics, gen, cfg, ctx.snapshot)
    reasons = dict(Counter(r["reason"] for r in bad))
    manifest = ctx.manifest("filter.positives", [], topics=list(cfg.positive_topics))
    q_out = StageOutput(storage, ctx.layout.quarantine(STAGE), ctx.attempt)
    write_table(storage, bad, q_out.begin(), schema("quarantine"))
    q_out.commit({**manifest, "table": "quarantine"}, StageStats(len(bad), len(bad)))
    stats = StageStats(len(cfg.positive_topics), len(docs), reasons, extra={"model": gen.model})
    stats.check_balance()
    out = StageOutput(storage, ctx.layout.table(STAGE), ctx.attempt)
    body = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
    storage.write_text(join(out.begin(), FILE), body)
    out.commit(manifest, stats)
    log.info(
        "positives: %d of %d topics gave a document; %s", len(docs), len(bad) + len(docs), reasons
    )
    return stats


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m jobs.filter.positives --snapshot S``."""
    return run_job("filter.positives", argv, run)


if __name__ == "__main__":
    raise SystemExit(main())
