"""The fine-grained filter: rating parser, repair, rounds, the refine job, LLM positives."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from committed import commit_table

from jobs.cli import JobContext
from jobs.commit import StageStats
from jobs.config import ConfigError, RefineConfig, load_config
from jobs.filter.rating import (
    PREFILL,
    Outcome,
    Rating,
    parse_rating,
    rate,
    rating_request,
)
from jobs.filter.rounds import Candidates, run_rounds
from jobs.layout import Layout
from jobs.llm.engine import ChatResponse
from jobs.llm.tasks import get_task
from jobs.storage import Storage, join
from jobs.tables import read_table

SNAP = "2026-11-01"


class FakeEngine:
    """Rates by the document's words: 'theorem' docs high, others low.

    A document containing 'shy' answers in prose first and properly when repaired; one
    containing 'mute' never gives numbers; one containing 'boom' fails as a request.
    """

    model_name = "fake-rater"

    def __init__(self):
        self.calls: list[list] = []

    def _reply(self, req) -> ChatResponse:
        doc = req.messages[1]["content"]
        repaired = len(req.messages) > 3
        if "boom" in doc:
            return ChatResponse.failed(req.custom_id, "engine exploded")
        if "mute" in doc or ("shy" in doc and not repaired):
            text = PREFILL + " this document is quite nice really"
        elif "theorem" in doc:
            text = PREFILL + " 9\nClarity: 8\nLanguage: 8"
        else:
            text = PREFILL + " 2\nClarity: 6\nLanguage: 7"
        return ChatResponse(req.custom_id, text, 50, 10, "stop")

    def generate(self, requests):
        self.calls.append(list(requests))
        return [self._reply(r) for r in requests]


# -- parser ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Relevance: 8\nClarity: 7\nLanguage: 9", (8, 7, 9)),
        ("Relevance: **8**/10\n**Clarity**: 7 out of 10\nLanguage quality - 9", (8, 7, 9)),
        ("Relevance: eight\nClarity: Seven\nLanguage: TEN", (8, 7, 10)),
        ("Relevance: 8, 7, 9", (8, 7, 9)),
        ("Relevance: 8.5\nclarity=7\nWriting quality: 6", (8.5, 7, 6)),
        ("Domain relevance score: 3\nClearness: 4\nLanguage rating is 5\nThanks!", (3, 4, 5)),
        ("Relevance: 1\nClarity: 10\nLanguage: 1\nRelevance: 5", (1, 10, 1)),  # first wins
    ],
)
def test_parser_reads_the_usual_variants(text, expected):
    parsed = parse_rating(text)
    assert parsed.error is None
    assert parsed.rating == Rating(*map(float, expected))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("Relevance: 11\nClarity: 7\nLanguage: 9", "relevance out of range"),
        ("Relevance: 0\nClarity: 7\nLanguage: 9", "relevance out of range"),
        ("Relevance: 8/5\nClarity: 7\nLanguage: 9", "relevance out of range"),
        ("Relevance: 8\nClarity: 7", "missing language"),
        ("Relevance: 8, 7, 9, 10", "missing clarity, language"),
        ("Relevance: 8, 70, 9", "out of range"),
        ("Relevance: 1-10\nClarity: 1-10\nLanguage: 1-", "a range"),  # the template copied
        ("Relevance: <1 - 10>\nClarity: 7\nLanguage: 9", "a range"),
        ("I think it is a good document.", "missing relevance, clarity, language"),
        ("", "empty reply"),
        (None, "empty reply"),
    ],
)
def test_parser_refuses_out_of_range_and_incomplete(text, error):
    parsed = parse_rating(text)
    assert parsed.rating is None
    assert error in parsed.error


def test_parser_fuzz_round_trips_and_never_raises():
    rng = random.Random(0)
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    words.append("ten")
    formats = ["{}", "{}/10", "{} out of 10", "**{}**", "{}.0"]
    for _ in range(300):
        values = [rng.randint(1, 10) for _ in range(3)]
        parts = []
        for label, v in zip(("Relevance", "Clarity", "Language"), values, strict=True):
            shown = words[v] if rng.random() < 0.2 else rng.choice(formats).format(v)
            parts.append(f"{label}{rng.choice([': ', ' = ', ' - ', ':** '])}{shown}")
        text = rng.choice(["\n", "; ", "\n\n"]).join(parts)
        assert parse_rating(text).rating == Rating(*map(float, values)), text
        noise = "".join(rng.choice("Relevance:0123456789/ \n*,.-abc") for _ in range(40))
        got = parse_rating(noise)  # any outcome, but never an exception or an invalid value
        assert got.rating is None or all(1 <= v <= 10 for v in vars(got.rating).values())


def test_task_is_registered_with_its_repair():
    task = get_task("doc_ratings")
    assert task.repairs and task.repair_prefill == PREFILL
    assert task.is_parseable("Relevance: 8\nClarity: 7\nLanguage: 9")
    assert not task.is_parseable("Relevance: 12\nClarity: 7\nLanguage: 9")


# -- rating with repair ------------------------------------------------------------------------


def test_rate_repairs_once_and_keeps_failures():
    engine = FakeEngine()
    docs = {"a": "a theorem", "b": "shy theorem", "c": "mute", "d": "boom", "e": "a recipe"}
    reqs = [rating_request(k, v, 500, 24, 1) for k, v in docs.items()]
    out = {o.custom_id: o for o in rate(engine, reqs, batch_size=2)}
    assert out["a"].parsed.rating.score == pytest.approx(25 / 3, abs=1e-3)
    assert (out["b"].attempts, out["b"].parsed.rating.relevance) == (2, 9.0)
    assert "quite nice" in out["b"].first.text
    assert out["c"].attempts == 2 and out["c"].parsed.rating is None
    assert out["d"].attempts == 1 and out["d"].response.error == "engine exploded"
    assert out["e"].parsed.rating == Rating(2.0, 6.0, 7.0)
    repair = [c for c in engine.calls if any(len(r.messages) > 3 for r in c)]
    turns = repair[0][0].messages
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user", "assistant"]
    assert turns[2]["content"].endswith("quite nice really") and turns[-1]["content"] == PREFILL
    assert all(r.temperature == 0.0 for c in engine.calls for r in c)


# -- rounds ------------------------------------------------------------------------------------


def _candidates(n_math=20, n_other=20):
    """Maths docs embed near e0, others near e1; D^0 holds half of each (a noisy cold start)."""
    rng = np.random.default_rng(0)
    ids, texts, vecs, cold = [], [], [], []
    for i in range(n_math + n_other):
        math = i < n_math
        ids.append(f"{'m' if math else 'g'}{i:03d}")
        texts.append(("a theorem" if math else "a recipe") + (" mute" if i in (3, 25) else ""))
        base = np.array([1.0, 0.0, 0.0]) if math else np.array([0.0, 1.0, 0.0])
        vecs.append(base + rng.normal(0, 0.05, 3))
        cold.append(i % 2 == 0)
    return Candidates(ids, texts, np.array(vecs), np.array(cold))


def _rater(engine):
    def _rate(t, docs):
        return rate(engine, [rating_request(f"t{t}-{d}", x, 500, 24, 1) for d, x in docs], 4)

    return _rate


def _cfg(**kw):
    base = {"num_rate_previous": 8, "num_rate_random": 8, "min_ratings": 6, "num_trees": 20}
    return RefineConfig(**{**base, **kw})


def test_rounds_keep_the_documents_the_rater_likes():
    cand = _candidates()
    result = run_rounds(cand, _rater(FakeEngine()), _cfg())
    kept = {d for d, k in zip(cand.doc_ids, result.kept, strict=True) if k}
    assert kept == {d for d in cand.doc_ids if d.startswith("m")}  # the off-domain half left
    assert result.decided_by == 2 and len(result.rounds) == 2
    first, second = result.rounds
    assert (first["sample_previous"], first["sample_random"]) == (8, 8)
    assert first["rated"] == 16 and first["fallback"] is None and first["kept"] == 20
    assert first["parsed"] + first["unparseable"] == first["rated"]
    assert second["rated"] + second["reused"] == 16  # a doc rated in round 1 keeps its rating
    assert np.all(result.fine_score[result.kept] > 6.5)
    assert np.all(result.fine_score[~result.kept] <= 6.5)
    again = run_rounds(cand, _rater(FakeEngine()), _cfg())  # seeded: the same decisions
    assert np.array_equal(again.kept, result.kept)
    assert np.allclose(again.fine_score, result.fine_score)


def test_unreadable_ratings_are_counted_and_their_documents_still_scored():
    cand = _candidates()
    cfg = _cfg(num_rate_previous=40, num_rate_random=40, num_iterations=1)
    result = run_rounds(cand, _rater(FakeEngine()), cfg)  # every document rated
    bad = {cand.doc_ids[p] for p, (_, o) in result.ratings.items() if o.parsed.rating is None}
    assert bad == {"m003", "g025"}
    assert result.rounds[0]["rated"] == 40
    assert result.rounds[0]["unparseable"] == 2 and result.rounds[0]["repaired"] == 2
    assert result.kept[cand.doc_ids.index("m003")] and not np.isnan(result.fine_score[3])


@pytest.mark.parametrize(
    ("kw", "fallback"),
    [({"threshold": 9.5}, "none_above_threshold"), ({"min_ratings": 40}, "too_few_ratings")],
)
def test_a_round_that_cannot_decide_keeps_the_previous_set(kw, fallback):
    cand = _candidates()
    result = run_rounds(cand, _rater(FakeEngine()), _cfg(**kw))
    assert [r["fallback"] for r in result.rounds] == [fallback, fallback]
    assert np.array_equal(result.kept, cand.cold_kept) and result.decided_by == 0
    assert np.isnan(result.fine_score).all()


def test_a_round_that_keeps_almost_nothing_falls_back_as_collapsed():
    # 4 ratings (one high, three low) fit a forest that scores nearly every document under the
    # threshold: without the minimum share the round keeps a handful of 200 documents.
    rng = np.random.default_rng(0)
    n = 200
    ids = [f"d{i:04d}" for i in range(n)]
    cand = Candidates(ids, ["x"] * n, rng.normal(size=(n, 8)), np.arange(n) % 2 == 0)

    def rater(t, docs):
        out = []
        for k, (d, _) in enumerate(docs):
            v = 10 if k == 0 else 1
            text = f"Relevance: {v}\nClarity: {v}\nLanguage: {v}"
            out.append(Outcome(d, parse_rating(text), ChatResponse(d, text, 1, 1, "stop")))
        return out

    base = {"num_iterations": 1, "num_rate_previous": 2, "num_rate_random": 2,
            "min_ratings": 4, "num_trees": 100}  # fmt: skip
    unguarded = run_rounds(cand, rater, RefineConfig(**base, min_keep_share=0))
    [stats] = unguarded.rounds
    assert stats["training_rows"] == 4 and stats["fallback"] is None
    assert 1 <= unguarded.kept.sum() <= 10 and unguarded.decided_by == 1  # the collapse
    guarded = run_rounds(cand, rater, RefineConfig(**base))  # default min_keep_share=0.2
    [stats] = guarded.rounds
    assert stats["fallback"] == "collapsed" and stats["keep_share"] < 0.2
    assert stats["above_threshold"] == unguarded.kept.sum()
    assert np.array_equal(guarded.kept, cand.cold_kept) and stats["kept"] == n // 2
    assert guarded.decided_by == 0 and np.isnan(guarded.fine_score).all()


def test_zero_iterations_never_calls_the_rater():
    cand = _candidates()
    result = run_rounds(cand, lambda t, docs: pytest.fail("rated"), _cfg(num_iterations=0))
    assert np.array_equal(result.kept, cand.cold_kept) and result.rounds == []


# -- the job -----------------------------------------------------------------------------------


def _candidates_schema():
    import pyarrow as pa

    s = pa.string()
    return pa.schema(
        [("doc_id", s), ("text", s), ("url", s), ("source", s), ("snapshot", s),
         ("meta", pa.map_(s, s)), ("num_chars", pa.int32()), ("alpha_ratio", pa.float64()),
         ("symbol_ratio", pa.float64()), ("dup_line_fraction", pa.float64()),
         ("domain_score", pa.float64()), ("filter_reason", s),
         ("embedding", pa.list_(pa.float32()))]
    )  # fmt: skip


def _ctx(cfg):
    layout = Layout(cfg.storage.root_uri, SNAP)
    return JobContext(cfg, SNAP, "t", "1", layout, None)


def _job_rows() -> list[dict]:
    """The candidates table of :func:`_candidates`."""
    cand = _candidates()
    return [
        {"doc_id": d, "text": t, "url": None, "source": "s.jsonl", "snapshot": SNAP,
         "meta": [("domain_hint", d[0])], "num_chars": len(t), "alpha_ratio": 0.8,
         "symbol_ratio": 0.1, "dup_line_fraction": 0.0, "domain_score": 0.9 if k else 0.2,
         "filter_reason": "kept" if k else "off_domain", "embedding": list(map(float, v))}
        for d, t, v, k in zip(cand.doc_ids, cand.texts, cand.embeddings, cand.cold_kept,
                              strict=True)
    ]  # fmt: skip


JOB_SETTINGS = ("refine.num_rate_previous=8", "refine.num_rate_random=8",
                "refine.min_ratings=6", "refine.num_trees=20")  # fmt: skip


def test_refine_job_balances_rows_and_quarantines_ratings(make_config):
    from jobs.filter.refine import run

    cfg = make_config(*JOB_SETTINGS)
    cand = _candidates()
    rows = _job_rows()
    storage, ctx = Storage(cfg.storage), _ctx(cfg)
    commit_table(storage, ctx.layout.table("candidates"), StageStats(), rows, _candidates_schema())
    stats = run(ctx, engine_factory=FakeEngine)
    docs = read_table(storage, ctx.layout.table("documents"))
    removed = read_table(storage, ctx.layout.quarantine("refine"))
    ratings_q = read_table(storage, ctx.layout.quarantine("refine_ratings"))
    assert len(docs) + len(removed) == len(rows) == stats.rows_in
    assert set(docs["doc_id"]) == {d for d in cand.doc_ids if d.startswith("m")}
    assert set(removed["reason"]) == {"below_fine_threshold"}
    assert "embedding" not in docs.columns and set(docs["filter_reason"]) == {"kept"}
    assert (docs["fine_score"] > 6.5).all()
    rated = docs.dropna(subset=["rating"])
    assert len(rated) > 0 and set(rated["rating"]) == {8.3333}
    assert rated.iloc[0]["ratings"] == {"relevance": 9.0, "clarity": 8.0, "language": 8.0}
    assert docs.set_index("doc_id").loc["m000", "meta"] == [("domain_hint", "m")]
    raw = json.loads(removed.iloc[0]["raw"])
    assert raw["meta"] == {"domain_hint": "g"}
    assert raw["domain_score"] == (0.9 if raw["cold_start"] == "kept" else 0.2)
    assert "fine_score" in raw and raw["text"].startswith("a recipe")
    assert {json.loads(r)["cold_start"] for r in removed["raw"]} == {"kept", "off_domain"}
    for _, row in ratings_q.iterrows():  # every unreadable rating kept with its raw replies
        assert row["reason"] == "unparseable_rating"
        assert "quite nice" in json.loads(row["raw"])["text"]
    info = storage.read_json(join(ctx.layout.table("documents"), "_stats.json"))["refine"]
    assert info["cold_start_kept"] == 20 and info["decided_by_round"] == 2
    assert sum(info["histograms"]["cold_start"]["counts"]) == len(rows)
    assert sum(info["histograms"]["fine"]["counts"]) == len(rows)
    assert info["ratings_quarantined"] == ({"unparseable_rating": len(ratings_q)}
                                           if len(ratings_q) else {})  # fmt: skip


class DyingEngine(FakeEngine):
    """Rates like FakeEngine, but the process "dies" on the first request of round 2."""

    def generate(self, requests):
        if any(r.custom_id.startswith("t2-") for r in requests):
            raise RuntimeError("killed in round 2")
        return super().generate(requests)


def test_a_rerun_of_refine_reuses_the_ratings_it_already_has(make_config, tmp_path):
    from jobs.filter.refine import run

    cfg = make_config(*JOB_SETTINGS, "generation.batch_size=4")
    storage, ctx = Storage(cfg.storage), _ctx(cfg)
    table = ctx.layout.table("candidates")
    commit_table(storage, table, StageStats(), _job_rows(), _candidates_schema())
    dying = DyingEngine()
    with pytest.raises(RuntimeError, match="killed in round 2"):
        run(ctx, engine_factory=lambda: dying)
    round1 = {r.custom_id for call in dying.calls for r in call}
    assert round1 and all(cid.startswith("t1-") for cid in round1)
    assert not storage.exists(join(ctx.layout.table("documents"), "_SUCCESS"))

    engine = FakeEngine()
    stats = run(_ctx(cfg), engine_factory=lambda: engine)
    asked = {r.custom_id for call in engine.calls for r in call}
    assert asked and not asked & round1  # round 1 is not rated again
    assert all(cid.startswith("t2-") for cid in asked)
    info = stats.extra["refine"]
    assert info["ratings_reused"] == len(round1) and info["decided_by_round"] == 2
    assert info["rounds"][0]["rated"] == len(round1)  # round 1's ratings, read back
    # The same documents as a run that was never interrupted.
    other = make_config(*JOB_SETTINGS, "generation.batch_size=4", root=tmp_path / "other")
    other_ctx = _ctx(other)
    commit_table(Storage(other.storage), other_ctx.layout.table("candidates"), StageStats(),
                 _job_rows(), _candidates_schema())  # fmt: skip
    clean = run(other_ctx, engine_factory=FakeEngine)
    assert clean.extra["refine"]["ratings_reused"] == 0
    resumed = read_table(storage, ctx.layout.table("documents"))
    uninterrupted = read_table(Storage(other.storage), other_ctx.layout.table("documents"))
    assert list(resumed["doc_id"]) == list(uninterrupted["doc_id"])
    assert list(resumed["fine_score"]) == list(uninterrupted["fine_score"])


# -- config and LLM-written positives -----------------------------------------------------------


def test_refine_config_validation():
    with pytest.raises(ValueError, match="threshold"):
        RefineConfig(threshold=11)
    with pytest.raises(ValueError, match="num_iterations"):
        RefineConfig(num_iterations=-1)
    with pytest.raises(ConfigError, match="refine.num_trees"):
        load_config("local", None, ["refine.num_trees=0"])
    cfg = load_config("local", None, ["refine.engine.model=other", "refine.engine.batch_size=2"])
    assert (cfg.refine.engine.model, cfg.refine.engine.batch_size) == ("other", 2)
    assert load_config("kubernetes").refine.threshold == 6.5


class WriterEngine:
    model_name = "fake-writer"

    def generate(self, requests):
        out = []
        for r in requests:
            topic = r.messages[-1]["content"].split('"')[1]
            text = "" if topic == "Knots" else f"{topic}: a definition, a theorem. " * 10
            out.append(ChatResponse(r.custom_id, text, 10, 50, "stop"))
        return out


def test_llm_positives_replace_the_seed_file(make_config):
    from jobs.filter.positives import positives_for, run

    topics = ["Derivatives", "Knots", "Prime numbers"]
    cfg = make_config(f"filter.positive_topics={json.dumps(topics)}")
    storage, ctx = Storage(cfg.storage), _ctx(cfg)
    stats = run(ctx, engine_factory=WriterEngine)
    assert (stats.rows_in, stats.rows_out, stats.quarantined) == (3, 2, {"too_short": 1})
    texts = positives_for(storage, ctx.layout, cfg.filter)
    assert [t.split(":")[0] for t in texts] == ["Derivatives", "Prime numbers"]
    q = read_table(storage, ctx.layout.quarantine("positives"))
    assert list(q["reason"]) == ["too_short"] and json.loads(q["raw"][0])["topic"] == "Knots"
    other = make_config('filter.positive_topics=["Groups"]', root=None)
    with pytest.raises(ValueError, match="rerun jobs.filter.positives"):
        positives_for(storage, ctx.layout, other.filter)
    plain = make_config()
    assert run(_ctx(plain)).rows_in == 0  # no topics: nothing written, the seed file is used
    assert len(positives_for(Storage(plain.storage), _ctx(plain).layout, plain.filter)) > 10


# -- report ------------------------------------------------------------------------------------


def test_report_shows_rounds_and_score_distributions():
    from jobs.report.render import render_html
    from jobs.report.report import make_plots
    from jobs.report.summary import build_summary

    refine = {
        "num_candidates": 40, "cold_start_kept": 20, "threshold": 6.5, "decided_by_round": 1,
        "rater_model": "fake-rater", "ratings_quarantined": {"unparseable_rating": 2},
        "rounds": [{"round": 1, "rated": 16, "parsed": 14, "unparseable": 2, "kept": 23,
                    "fallback": None}],
        "histograms": {"cold_start": {"edges": [0, 0.5, 1], "counts": [20, 20]},
                       "fine": {"edges": [1, 5.5, 10], "counts": [17, 23]},
                       "rating": {"edges": [1, 5.5, 10], "counts": [0, 0]}},
    }  # fmt: skip
    stats = {"documents": {"rows_in": 40, "rows_out": 23, "refine": refine}}
    summary = build_summary("s", "r", stats, {}, {})
    assert summary["document_filter"]["rounds"][0]["kept"] == 23
    plots = make_plots(summary, {})
    assert plots["filter_cold_start"].startswith("data:image/png")
    assert plots["filter_rating"] is None  # nothing rated: no empty chart
    page = render_html(summary, plots)
    assert "<h2>Document filter</h2>" in page and "kept 20 (round 0)" in page
    assert "<td>0 (cold start)</td>" in page and '<td class="n">23</td>' in page
    assert build_summary("s", "r", {}, {}, {})["document_filter"] == {"status": "not run"}
