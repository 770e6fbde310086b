"""benchmarks/scale.py: its synthetic extraction output is what the real parser takes."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from benchscripts import load_benchmark

from jobs.concepts.collect import concept_rows
from jobs.concepts.normalise import node_key
from jobs.concepts.parse import parse_concepts
from jobs.concepts.prompts import EXAMPLE_KEYS


@pytest.fixture(scope="module")
def scale():
    return load_benchmark("scale")


def test_vocabularies_reach_the_papers_at_its_corpus_size(scale):
    assert scale.vocabulary_sizes(scale.PAPER_DOCS) == (32_000, 200_000)
    small, large = scale.vocabulary_sizes(10_000), scale.vocabulary_sizes(100_000)
    assert small[0] < large[0] < 32_000 and small[1] < large[1] < 200_000


def test_coined_names_stay_distinct_nodes(scale):
    names = [scale.coined(i, scale._KINDS) for i in range(6_000)]
    assert len({node_key(n) for n in names}) == len(names)


def test_zipf_ranks_are_in_range_and_skewed(scale):
    ranks = scale.ZipfSampler(1000).draw(np.random.default_rng(1), 50_000)
    assert ranks.min() >= 0 and ranks.max() <= 999
    counts = Counter(ranks.tolist())
    assert counts[0] > 5 * counts[9] > 0  # 1/1^1.1 vs 1/10^1.1: about 12.6 times as often


def test_replies_parse_into_one_to_five_topics_of_five_to_twenty_concepts(scale):
    engine = scale.SyntheticExtractor(10_000)
    shapes, reasons = [], Counter()
    for index in range(400):
        text, finish = engine.reply(f"k-doc-{index:07d}")
        if finish == "error":
            reasons["error"] += 1
            continue
        result = parse_concepts(text, EXAMPLE_KEYS)
        rows = concept_rows(f"doc-{index}", result) if result.status == "ok" else []
        if not rows:
            reasons["unparseable"] += 1
            continue
        per_topic = Counter(r["topic_id"] for r in rows)
        shapes.append((len(per_topic), max(per_topic.values()), min(per_topic.values())))
    assert reasons == {"error": 2, "unparseable": 4}  # indices 7 mod 200, 3 mod 100
    assert all(1 <= t <= 5 for t, _, _ in shapes)
    assert all(c_max <= 20 for _, c_max, _ in shapes)
    assert min(c_min for _, _, c_min in shapes) >= 3  # 5-20 drawn, a few repeat in a topic
    assert engine.reply("k-doc-0000042") == engine.reply("k-doc-0000042")  # fixed by the id


def test_variant_spellings_fold_into_their_names_node_and_nowhere_else(scale):
    report = scale.normalisation_report(10_000, sample=2_000)
    assert report["split"] == 0 and report["fused"] == 0
    assert report["merge_rate_names"] == 0.0 and report["merge_rate_spellings"] == 1.0
    assert report["spellings"] > 4 * report["names"] == 4 * report["keys"]
    assert scale.variants("Bada identity", plural=True) == [
        "The Bada identity", "bada identity", "Bada identity (BI)", "Bada identities",
    ]  # fmt: skip


def test_replies_mention_names_in_their_variant_spellings(scale):
    engine = scale.SyntheticExtractor(10_000)
    canonical = {scale.coined(i, scale._KINDS) for i in range(engine.num_concepts)}
    canonical |= {scale.coined(i, ("topic",)) for i in range(engine.num_topics)}
    keys = {node_key(n) for n in canonical}
    mentions = variant = 0
    for index in range(200):
        text, finish = engine.reply(f"k-doc-{index:07d}")
        result = parse_concepts(text, EXAMPLE_KEYS) if finish != "error" else None
        if result is None or result.status != "ok":
            continue
        for row in concept_rows(f"doc-{index}", result):
            for raw, node in ((row["topic"], row["topic_id"]), (row["concept"], row["concept_id"])):
                if raw is None:
                    continue
                mentions += 1
                variant += raw not in canonical
                assert node.split(":", 1)[1] in keys  # every spelling is a name's node
    assert 0.08 < variant / mentions < 0.2  # VARIANT_SHARE = 0.15
