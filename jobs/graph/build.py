"""Job: build the global concept co-occurrence graph from ``doc_concepts`` (Spark + GraphFrames).

``python -m jobs.graph.build --snapshot S`` commits ``runs/S/graph/`` with two Parquet
folders, ``vertices/(id, name, kind, doc_freq)`` and ``edges/(src, dst, kind, freq, weight)``,
and the graph statistics (counts per kind, degree distribution, connected components from
GraphFrames, the largest component's share) in its ``_stats.json`` under ``graph``.
Rows are counted as graph nodes: candidate nodes in = nodes kept + nodes pruned.
"""

from __future__ import annotations

import logging

from jobs.cli import JobContext, base_parser, run_job
from jobs.commit import StageOutput, StageStats, require_committed
from jobs.storage import Storage, join, to_spark_uri

log = logging.getLogger(__name__)

STAGE = "graph"


def graph_params(ctx: JobContext):
    """The typed config section as the graph module's parameters."""
    from jobs.graph.cooccurrence import GraphParams

    g = ctx.cfg.graph
    return GraphParams(eps=g.eps, min_doc_freq=g.min_doc_freq, max_degree=g.max_degree, seed=g.seed)


def run(ctx: JobContext) -> StageStats:
    """Read doc_concepts → vertices and edges → statistics → commit ``graph``."""
    from jobs.graph.cooccurrence import build_graph, graph_stats, spanning_edges
    from jobs.spark import build_session, job_checkpoints, require_graphframes

    storage = Storage(ctx.cfg.storage)
    source = ctx.layout.table("doc_concepts")
    require_committed(storage, source)
    out = StageOutput(storage, ctx.layout.table(STAGE), ctx.attempt)
    spark = build_session(ctx.cfg, "synthllm-build-graph")
    require_graphframes(spark)
    # Reliable checkpoints (a local one is lost with its executor, and so is the job); the
    # components' own checkpoints land in the same folder and go with it.
    with job_checkpoints(spark, ctx.cfg, f"{STAGE}-{ctx.snapshot}-{ctx.attempt}"):
        doc_concepts = spark.read.parquet(to_spark_uri(source))
        params = graph_params(ctx)
        vertices, edges, pruned = build_graph(doc_concepts, params)
        vertices, edges = vertices.checkpoint(eager=True), edges.checkpoint(eager=True)
        # Components from one link per document node instead of one per pair: the same
        # components unless a degree cap removed edges.
        links = spanning_edges(doc_concepts, vertices) if params.max_degree is None else None
        stats = graph_stats(vertices, edges, links)
        stats["pruned"] = pruned
        kept = sum(stats["vertices"].values())
        dropped = int(pruned.get("vertices_below_min_doc_freq", 0))
        result = StageStats(
            rows_in=kept + dropped,
            rows_out=kept,
            quarantined={"below_min_doc_freq": dropped} if dropped else {},
            extra={"graph": stats, "params": ctx.cfg.graph.model_dump()},
        )
        result.check_balance()
        tmp = out.begin()
        vertices.orderBy("id").write.parquet(to_spark_uri(join(tmp, "vertices")))
        edges.orderBy("src", "dst").write.parquet(to_spark_uri(join(tmp, "edges")))
        out.commit(ctx.manifest("graph.build", [source]), result)
    comps = stats["components"]
    log.info(
        "graph: vertices %s, edges %s, %d components (largest %.1f%% of vertices), pruned %s",
        stats["vertices"], stats["edges"], comps["count"], 100 * comps["largest_share"], pruned,
    )  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    return run_job("graph.build", argv, run, base_parser("Build the concept co-occurrence graph"))


if __name__ == "__main__":
    raise SystemExit(main())
