"""Benchmark: the method's core at paper scale, stage by stage (paper §1.2: ~520K documents).

For each size (documents) it synthesises what concept extraction would have produced and runs
the real stages on it, each as its own process, the way the DAG runs them:

1. ``synthesise`` (not a pipeline stage): a committed ``documents`` table of short texts;
2. ``concepts.prepare``: the real job writes the P-K requests (``--num-shards`` by size);
3. ``concepts.answer``: the real shard runner (:func:`jobs.llm.runner.run_shard`) answers
   every shard through :class:`SyntheticExtractor`, an engine that writes replies in the
   format the model is asked for (level, subject, 1-5 topics with 5-20 key concepts each,
   names drawn Zipf-distributed from vocabularies that grow toward the paper's ~32K topics
   and ~200K concepts at 5.2×10^5 documents), 15 % of mentions in another spelling of the
   name (an article, lower case, its initials, a plural: :func:`variants`), which
   normalisation must fold into the name's node; 1 % of replies are off-format and 0.5 %
   fail, so the quarantine path runs too;
4. ``concepts.collect`` → ``graph.build`` → ``combinations`` (Level-1, Level-2, and Level-3
   with every topic × ``combinations.num_epochs`` walks, grounded in two documents each) →
   ``questions.prepare``: the real jobs, local profile, default memory settings.

Per stage it prints rows in / out, wall seconds, the peak resident memory of the stage's
Python process (the job's driver), of its JVM (Spark's driver, with local executors) and of
the largest Spark Python worker (or answering process), sampled every 0.2 s, with the
private part of the driver's and the workers' (the walks' graph is a file the workers map
and share), and the growth exponent ``k`` of the stage's wall time and of its peak memory
between consecutive sizes (``t ~ docs^k``; 1.0 is linear, 0 is flat). Each stage's figures
are printed as it ends, the table at the end. A failed stage prints its log's tail and
stops that size.

    python benchmarks/scale.py                                # 10^4, 10^5, 5.2×10^5
    python benchmarks/scale.py --sizes 2000 20000 --keep var/bench-scale
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SNAPSHOT = "scale"
# The paper's graph per subset: ~32K topics and ~200K key concepts from ~520K documents.
PAPER_DOCS, PAPER_TOPICS, PAPER_CONCEPTS = 520_000, 32_000, 200_000
# Vocabularies grow sublinearly with the corpus (Heaps' law); 0.8 matches the growth of
# distinct names measured on Zipf draws between 10^4 and 10^5 documents.
HEAPS = 0.8
ZIPF_S = 1.1
# Requests per LLM shard: a shard is the unit the collector holds in memory at once.
DOCS_PER_SHARD = 20_000
STAGES = (
    "concepts.prepare",
    "concepts.answer",
    "concepts.collect",
    "graph.build",
    "combinations",
    "questions.prepare",
)
# Share of name mentions the synthetic model writes in another surface form (variants()).
VARIANT_SHARE = 0.15
_SYLLABLES = [c + v for c in "bdfgklmnprtvz" for v in "aeiou"]  # 65, all end in a vowel
_KINDS = ("theorem", "lemma", "identity", "inequality", "method", "rule", "formula", "property")
_FIELDS = ("algebra", "geometry", "calculus", "probability", "number theory", "combinatorics")
_LEVELS = ("Primary School", "Middle School", "High School", "University")


def vocabulary_sizes(docs: int) -> tuple[int, int]:
    """(topics, concepts) for a corpus of ``docs`` documents, the paper's at 5.2×10^5."""
    scale = (docs / PAPER_DOCS) ** HEAPS
    return max(50, round(PAPER_TOPICS * scale)), max(200, round(PAPER_CONCEPTS * scale))


def coined(index: int, kinds: tuple[str, ...]) -> str:
    """A distinct made-up name per index: syllables spelling the index, then a kind word.

    The syllables all end in a vowel, so no name reads as an English plural and
    normalisation keeps every index its own node.
    """
    word, n = [], index
    while True:
        n, digit = divmod(n, len(_SYLLABLES))
        word.append(_SYLLABLES[digit])
        if n == 0:
            break
    stem = "".join(word).capitalize()
    return f"{stem} {kinds[index % len(kinds)]}"


def variants(name: str, plural: bool) -> list[str]:
    """Other ways a model writes ``name``: with "The", in lower case, with its initials in
    brackets, and (``plural``) with its last word in the plural. Each is one node."""
    words = name.split()
    initials = "".join(w[0].upper() for w in words)
    forms = [f"The {name}", name.lower(), f"{name} ({initials})"]
    if plural:
        last = words[-1]
        last = last[:-1] + "ies" if last.endswith("y") else last + "s"
        forms.append(" ".join([*words[:-1], last]))
    return forms


def spelled(name: str, rng: np.random.Generator, plural: bool) -> str:
    """``name`` as one mention writes it: itself, or a :func:`variants` form."""
    if rng.random() >= VARIANT_SHARE:
        return name
    forms = variants(name, plural)
    return forms[int(rng.integers(len(forms)))]


def normalisation_report(docs: int, sample: int = 10_000) -> dict[str, float]:
    """How the node key folds the vocabulary of ``docs`` documents, its names and variants.

    Up to ``sample`` names of each kind (every k-th index), each with its :func:`variants`.
    ``split``: names whose spellings got more than one key; ``fused``: keys that distinct
    names share (both should be 0). ``merge_rate_names``: :func:`merge_rate` over the names
    alone (0: no two distinct names merge); ``merge_rate_spellings``: over every spelling
    (1: every variant folds into some other spelling's key).
    """
    from jobs.concepts.normalise import merge_rate, node_key

    num_topics, num_concepts = vocabulary_sizes(docs)
    report = {"names": 0, "spellings": 0, "keys": 0, "split": 0, "fused": 0}
    names: list[str] = []
    spellings: list[str] = []
    for count, kinds, plural in ((num_topics, ("topic",), False), (num_concepts, _KINDS, True)):
        owners: dict[str, set[int]] = {}
        for i in range(0, count, max(1, count // sample)):
            name = coined(i, kinds)
            forms = [name, *variants(name, plural)]
            names.append(name)
            spellings += forms
            keys = {node_key(f) for f in forms}
            report["split"] += len(keys) > 1
            for key in keys:
                owners.setdefault(key, set()).add(i)
        report["keys"] += len(owners)
        report["fused"] += sum(len(o) > 1 for o in owners.values())
    report["names"], report["spellings"] = len(names), len(set(spellings))
    return {
        **report,
        "merge_rate_names": round(merge_rate(names), 4),
        "merge_rate_spellings": round(merge_rate(spellings), 4),
    }


class ZipfSampler:
    """Draws ranks 0..n-1 with probability proportional to ``1 / (rank + 1)^s``."""

    def __init__(self, n: int, s: float = ZIPF_S):
        weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
        self.cdf = np.cumsum(weights / weights.sum())
        self.n = n

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf, rng.random(size), side="right"), self.n - 1)


class SyntheticExtractor:
    """An engine for the ``concepts`` task that answers like a model that follows the format.

    Each document's reply is fixed by its id (a generator seeded with it): 1-5 topics drawn by
    Zipf rank, and per topic 5-20 concepts, 70 % from the topic's own neighbourhood of the
    concept ranking (so concepts cluster by topic, as in real extractions) and 30 % from the
    global ranking (the hubs every topic shares).
    """

    model_name = "synthetic-extractor"

    def __init__(self, docs: int, seed: int = 0):
        self.num_topics, self.num_concepts = vocabulary_sizes(docs)
        self.topics = ZipfSampler(self.num_topics)
        self.concepts = ZipfSampler(self.num_concepts)
        self.local = ZipfSampler(min(500, self.num_concepts))
        self.seed = seed

    def reply(self, custom_id: str) -> tuple[str, str]:
        """(text, finish_reason) for one request: the document index is in its id."""
        index = int(custom_id.rsplit("-", 1)[-1])
        rng = np.random.default_rng([self.seed, index])
        if index % 200 == 7:
            return "", "error"
        if index % 100 == 3:
            return "<level>High School</level>\nI cannot list concepts for this.", "stop"
        topics = list(dict.fromkeys(self.topics.draw(rng, int(rng.integers(1, 6))).tolist()))
        # One spelling per topic per reply: the list and its heading must name it alike.
        names = {t: spelled(coined(t, ("topic",)), rng, plural=False) for t in topics}
        lines = [
            f"<level>{_LEVELS[index % len(_LEVELS)]}</level>",
            f"<subject>{_FIELDS[index % len(_FIELDS)].title()}</subject>",
            "<topic>Topics: "
            + " ".join(f"{i}. {names[t]}" for i, t in enumerate(topics, 1))
            + "</topic>",
            "<key_concept>Key Concepts:",
        ]
        for i, topic in enumerate(topics, 1):
            count = int(rng.integers(5, 21))
            own = rng.random(count) < 0.7
            base = (topic * 7919) % self.num_concepts
            ranks = np.where(
                own,
                (base + self.local.draw(rng, count)) % self.num_concepts,
                self.concepts.draw(rng, count),
            )
            lines.append(f"{i}. {names[topic]}:")
            lines += [
                f"{i}.{j} {spelled(coined(int(c), _KINDS), rng, plural=True)}"
                for j, c in enumerate(ranks, 1)
            ]
        lines.append("</key_concept>")
        return "\n".join(lines), "stop"

    def generate(self, requests):
        from jobs.llm.engine import ChatResponse

        out = []
        for req in requests:
            text, finish = self.reply(req.custom_id)
            if finish == "error":
                out.append(ChatResponse.failed(req.custom_id, "synthetic engine error", 120))
            else:
                out.append(ChatResponse(req.custom_id, text, 120, len(text) // 4, finish))
        return out


def document_text(index: int) -> str:
    """A short mathematical text; the stages after extraction only carry it into prompts."""
    field_name = _FIELDS[index % len(_FIELDS)]
    return (
        f"Note {index} on {field_name}. Let $x_{index % 97} = {index % 13} + {index % 7}$; "
        f"then $x^2 - {index % 11}x + {index % 5} = 0$ has a discriminant we compute below, "
        "and the same argument bounds the sum of the series by its first term."
    )


def synthesise_documents(root: str, docs: int) -> None:
    """Commit the filtered ``documents`` table (doc_id, text, domain_score) of ``docs`` rows."""
    import pyarrow as pa

    from jobs.commit import StageOutput, StageStats
    from jobs.config import load_config
    from jobs.layout import Layout
    from jobs.storage import Storage
    from jobs.tables import write_table

    storage = Storage(load_config("local", None, overrides(root, docs)).storage)
    uri = Layout(root, SNAPSHOT).table("documents")
    out = StageOutput(storage, uri, "1")
    rows = pa.table(
        {
            "doc_id": [f"doc-{i:07d}" for i in range(docs)],
            "text": [document_text(i) for i in range(docs)],
            "domain_score": [1.0 - i / (2 * docs) for i in range(docs)],
        }
    )
    write_table(storage, rows.to_pandas(), out.begin())
    out.commit({"job": "benchmarks.scale"}, StageStats(rows_in=docs, rows_out=docs))


def answer_all(root: str, docs: int) -> dict[str, int]:
    """Run every request shard of the ``concepts`` task through the real runner.

    The shards are independent (each writes its own files), so they run one per core, as
    GPU pods would run them side by side.
    """
    import jobs.concepts.tasks  # noqa: F401  (registers the task)
    from jobs.config import load_config
    from jobs.layout import Layout
    from jobs.llm.results import task_shards
    from jobs.storage import Storage

    cfg = load_config("local", None, overrides(root, docs))
    shards = list(task_shards(Storage(cfg.storage), Layout(root, SNAPSHOT), "concepts"))
    totals = {"requests": 0, "errors": 0}
    workers = max(1, min(len(shards), os.cpu_count() or 1))
    with ProcessPoolExecutor(workers) as pool:
        for requests, errors in pool.map(_answer_shard, [(root, docs, s) for s in shards]):
            totals["requests"] += requests
            totals["errors"] += errors
    return totals


def _answer_shard(job: tuple) -> tuple[int, int]:
    """(requests, errors) of one shard answered by :class:`SyntheticExtractor`."""
    import jobs.concepts.tasks  # noqa: F401  (registers the task)
    from jobs.config import load_config
    from jobs.layout import Layout
    from jobs.llm.runner import run_shard
    from jobs.llm.tasks import get_task
    from jobs.storage import Storage

    root, docs, shard = job
    cfg = load_config("local", None, overrides(root, docs))
    storage, layout = Storage(cfg.storage), Layout(root, SNAPSHOT)
    engine = SyntheticExtractor(docs)
    task, manifest = get_task("concepts"), {"job": "benchmarks.scale"}
    marker = run_shard(storage, layout, task, shard, engine, cfg, manifest)
    return marker["requests"], marker["errors"]


def overrides(root: str, docs: int) -> list[str]:
    """The run's settings: every document extracted and prompted, all combinations kept."""
    return [
        f'storage.root_uri="{root}"',
        f"generation.max_documents={docs}",
        f"concepts.max_documents={docs}",
        # Every Level-2 and Level-3 combination gets its prompt (the local profile caps them).
        f"questions.max_combinations_l2={docs}",
        f"questions.max_combinations_l3={5 * docs}",
        "generation.batch_size=512",
    ]


@dataclass
class Peaks:
    """Peak resident memory (MB) per process class of one stage, sampled in a thread.

    ``*_private``: resident memory that is the process's own (RSS less file-backed and
    shared pages), which is what the walks' mapped graph files do not add to.
    """

    driver: float = 0.0
    jvm: float = 0.0
    worker: float = 0.0
    driver_private: float = 0.0
    worker_private: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def watch(self, pid: int) -> threading.Thread:
        import psutil

        def loop() -> None:
            try:
                root = psutil.Process(pid)
            except psutil.NoSuchProcess:
                return
            while not self._stop.is_set():
                try:
                    procs = [root, *root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    return
                for proc in procs:
                    try:
                        mem = proc.memory_info()
                        rss, private = mem.rss / 2**20, (mem.rss - mem.shared) / 2**20
                        name = proc.name()
                        cmd = " ".join(proc.cmdline())
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
                    if proc.pid == pid:
                        self.driver = max(self.driver, rss)
                        self.driver_private = max(self.driver_private, private)
                    elif "java" in name:
                        self.jvm = max(self.jvm, rss)
                    elif "pyspark" in cmd or "python" in name:  # Spark's, or a process pool's
                        self.worker = max(self.worker, rss)
                        self.worker_private = max(self.worker_private, private)
                self._stop.wait(0.2)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


@dataclass
class StageRun:
    stage: str
    seconds: float
    peaks: Peaks
    rows_in: int | None
    rows_out: int | None
    quarantined: int | None


def stage_command(stage: str, root: str, docs: int) -> list[str]:
    """The command line of one stage: the job's own CLI, or this script's answer step."""
    common = ["--snapshot", SNAPSHOT]
    for item in overrides(root, docs):
        common += ["--set", item]
    shards = ["--num-shards", str(max(1, math.ceil(docs / DOCS_PER_SHARD)))]
    modules = {
        "concepts.prepare": ["jobs.concepts.prepare", *common, *shards],
        "concepts.collect": ["jobs.concepts.collect", *common],
        "graph.build": ["jobs.graph.build", *common],
        "combinations": ["jobs.graph.combinations", *common],
        "questions.prepare": ["jobs.questions.prepare", *common, *shards],
    }
    if stage == "concepts.answer":
        return [sys.executable, __file__, "--answer", root, "--docs", str(docs)]
    return [sys.executable, "-m", *modules[stage]]


STATS_OF = {
    "concepts.prepare": "llm/concepts/requests",
    "concepts.collect": "doc_concepts",
    "graph.build": "graph",
    "combinations": "combinations",
}


def stage_rows(run_dir: Path, stage: str, answered: dict | None) -> tuple:
    """(rows in, rows out, quarantined) from the stage's committed ``_stats.json``."""
    if stage == "concepts.answer" and answered:
        n = answered["requests"]
        return n, n - answered["errors"], answered["errors"]
    if stage == "questions.prepare":
        total = [0, 0, 0]
        for level in (1, 2, 3):
            stats = run_dir / "llm" / f"questions_l{level}" / "requests" / "_stats.json"
            if stats.exists():
                s = json.loads(stats.read_text())
                total = [total[0] + s["rows_in"], total[1] + s["rows_out"],
                         total[2] + s["rows_quarantined"]]  # fmt: skip
        return tuple(total)
    stats = run_dir / STATS_OF.get(stage, stage) / "_stats.json"
    if not stats.exists():
        return None, None, None
    s = json.loads(stats.read_text())
    return s["rows_in"], s["rows_out"], s["rows_quarantined"]


def run_stage(stage: str, root: str, docs: int, log_dir: Path) -> StageRun:
    log_path = log_dir / f"{docs}-{stage}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            stage_command(stage, root, docs), stdout=log, stderr=subprocess.STDOUT, env=env
        )
        peaks = Peaks()
        peaks.watch(proc.pid)
        code = proc.wait()
        peaks.stop()
    seconds = time.perf_counter() - start
    if code != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(f"{stage} at {docs} documents exited {code}:\n" + "\n".join(tail))
    answered = None
    if stage == "concepts.answer":
        answered = json.loads(log_path.read_text().strip().splitlines()[-1])
    run_dir = Path(root.removeprefix("file://")) / "runs" / SNAPSHOT
    return StageRun(stage, seconds, peaks, *stage_rows(run_dir, stage, answered))


def exponent(a: float, b: float, n_a: int, n_b: int) -> str:
    if a <= 0 or b <= 0:
        return "-"
    return f"{math.log(b / a) / math.log(n_b / n_a):.2f}"


def fmt(value) -> str:
    return "-" if value is None else f"{value:,}"


def print_table(results: dict[int, list[StageRun]]) -> None:
    sizes = sorted(results)
    print()
    head = (f"{'docs':>8} {'stage':<18} {'rows in':>11} {'rows out':>11} {'quar.':>8} "
            f"{'wall s':>8} {'driver MB':>9} {'JVM MB':>7} {'worker MB':>9} {'drv priv':>8} "
            f"{'wkr priv':>8} {'k time':>6} {'k mem':>6}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for i, docs in enumerate(sizes):
        for run in results[docs]:
            k_t = k_m = "-"
            if i:
                prev = {r.stage: r for r in results[sizes[i - 1]]}.get(run.stage)
                if prev:
                    k_t = exponent(prev.seconds, run.seconds, sizes[i - 1], docs)
                    mem = max(run.peaks.driver, run.peaks.jvm, run.peaks.worker)
                    pmem = max(prev.peaks.driver, prev.peaks.jvm, prev.peaks.worker)
                    k_m = exponent(pmem, mem, sizes[i - 1], docs)
            print(
                f"{docs:>8,} {run.stage:<18} {fmt(run.rows_in):>11} {fmt(run.rows_out):>11} "
                f"{fmt(run.quarantined):>8} {run.seconds:>8.1f} {run.peaks.driver:>9.0f} "
                f"{run.peaks.jvm:>7.0f} {run.peaks.worker:>9.0f} "
                f"{run.peaks.driver_private:>8.0f} {run.peaks.worker_private:>8.0f} "
                f"{k_t:>6} {k_m:>6}",
                flush=True,
            )


def graph_summary(root: str) -> str:
    stats = Path(root.removeprefix("file://")) / "runs" / SNAPSHOT / "graph" / "_stats.json"
    if not stats.exists():
        return ""
    graph = json.loads(stats.read_text()).get("graph", {})
    return json.dumps({k: graph[k] for k in ("vertices", "edges") if k in graph})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, PAPER_DOCS])
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    p.add_argument("--keep", type=Path, help="keep outputs and logs here (default: a temp dir)")
    p.add_argument("--answer", help=argparse.SUPPRESS)  # internal: the concepts.answer step
    p.add_argument("--docs", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.answer:
        print(json.dumps(answer_all(args.answer, args.docs)), flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix="synthllm-scale-") as tmp:
        base = (args.keep or Path(tmp)).resolve()
        base.mkdir(parents=True, exist_ok=True)
        results: dict[int, list[StageRun]] = {}
        for docs in args.sizes:
            topics, concepts = vocabulary_sizes(docs)
            root = f"file://{base / f'docs-{docs}'}"
            print(f"== {docs:,} documents: vocabularies {topics:,} topics / {concepts:,} "
                  f"concepts; {root}", flush=True)  # fmt: skip
            print(f"   normalisation: {json.dumps(normalisation_report(docs))}", flush=True)
            started = time.perf_counter()
            synthesise_documents(root, docs)
            print(f"   synthesised documents in {time.perf_counter() - started:.1f}s", flush=True)
            results[docs] = []
            for stage in args.stages:
                try:
                    run = run_stage(stage, root, docs, base)
                except RuntimeError as exc:
                    print(f"   FAILED {exc}", flush=True)
                    break
                results[docs].append(run)
                pk = run.peaks  # a run stopped later keeps this stage's figures
                print(f"   {stage}: {run.seconds:.1f}s, rows {fmt(run.rows_in)} → "
                      f"{fmt(run.rows_out)}; peak MB driver {pk.driver:.0f} "
                      f"(private {pk.driver_private:.0f}), JVM {pk.jvm:.0f}, worker "
                      f"{pk.worker:.0f} (private {pk.worker_private:.0f})", flush=True)  # fmt: skip
            print(f"   graph: {graph_summary(root)}", flush=True)
        print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
