"""Which engine a task runs with (``generation_for``), and ``${NAME}`` in ``openai_base_url``.

The answers task with ``answers.engine`` set goes through prepare, run_shard and collect with
a real OpenAIEngine whose HTTP call is replaced: the engine's model names the requests, the
responses and the qa rows, and the shard key is not the generation engine's.
"""

from __future__ import annotations

import json

import pytest
from committed import commit_table

from jobs.answers import collect, prepare
from jobs.config import (
    ConfigError,
    GenerationConfig,
    PermanentError,
    UnsetVariableError,
    env_references,
    expand_env,
)
from jobs.errors import EXIT_PERMANENT, classify
from jobs.layout import Layout
from jobs.llm import run_shard as run_shard_job
from jobs.llm.batchfile import ShardSpec
from jobs.llm.engine import ChatResponse, make_engine
from jobs.llm.fingerprint import model_fingerprint
from jobs.llm.openai_engine import OpenAIEngine
from jobs.llm.runner import ShardFiles, run_shard
from jobs.llm.tasks import generation_for, generation_key, get_task
from jobs.storage import Storage, join
from jobs.tables import read_table, schema

SNAP = "s1"
URL = "http://${SYNTHLLM_LLM_SERVICE_HOST}:${SYNTHLLM_LLM_SERVICE_PORT}/v1"
ANSWERS_ENGINE = (
    'answers.engine={engine="openai", model="answerer", model_revision="r1", '
    f'openai_base_url="{URL}", max_new_tokens=77}}'
)
SERVICE_ENV = {"SYNTHLLM_LLM_SERVICE_HOST": "10.0.0.9", "SYNTHLLM_LLM_SERVICE_PORT": "8000"}


def _question(qid: str, text: str) -> dict:
    return {
        "question_id": qid,
        "combo_id": "l1-d1",
        "level": 1,
        "question": text,
        "selected_concepts": [],
        "orig_tag": "newly_created",
        "edu_level": "college",
        "source_doc_ids": ["d1"],
        "model": "smollm2-135m-instruct",
        "prompt_version": "p-l1/v1",
        "snapshot": SNAP,
    }


def test_generation_for_picks_the_tasks_own_engine(make_config):
    plain = make_config()
    assert generation_for(plain, "answers") is plain.generation
    assert generation_key(plain, "answers") == "generation"
    own = make_config(ANSWERS_ENGINE, 'refine.engine={engine="llamacpp", model="rater.gguf"}')
    assert generation_for(own, "answers") is own.answers.engine
    assert generation_for(own, "answers").model == "answerer"
    assert generation_key(own, "answers") == "answers.engine"
    assert generation_for(own, "refine").model == "rater.gguf"
    for task in ("concepts", "questions_l1", "questions_l3", "anything"):
        assert generation_for(own, task) is own.generation


@pytest.fixture
def answered_with_own_engine(make_config, monkeypatch):
    """prepare → run_shard → collect of the answers task with ``answers.engine`` set."""
    cfg = make_config(ANSWERS_ENGINE)
    root = f'storage.root_uri="{cfg.storage.root_uri}"'
    argv = ["--snapshot", SNAP, "--set", root, "--set", ANSWERS_ENGINE]
    storage, layout = Storage(cfg.storage), Layout(cfg.storage.root_uri, SNAP)
    rows = [_question("q1", "What is $2+2$?"), _question("q2", "What is $3+3$?")]
    for table in ("questions", "questions_clean"):
        commit_table(storage, layout.table(table), rows=rows, table_schema=schema("questions"))
    for name, value in SERVICE_ENV.items():
        monkeypatch.setenv(name, value)
    urls: list[str] = []

    def answer(self, requests):  # the HTTP round trip, replaced
        urls.append(self.url)
        return [ChatResponse(r.custom_id, "So \\boxed{4}.", 20, 5, "stop") for r in requests]

    monkeypatch.setattr(OpenAIEngine, "generate", answer)
    assert prepare.main([*argv, "--num-shards", "1"]) == 0
    assert run_shard_job.main([*argv, "--task", "answers", "--shard", "0/1"]) == 0
    assert collect.main(argv) == 0
    return cfg, storage, layout, urls


def test_answers_engine_names_requests_responses_and_qa_rows(answered_with_own_engine):
    cfg, storage, layout, urls = answered_with_own_engine
    assert urls == ["http://10.0.0.9:8000/v1/chat/completions"]
    task_uri = layout.llm_task("answers")
    request_lines = [
        json.loads(line)
        for line in storage.read_text(
            join(task_uri, "requests", "shard-00000-of-00001.jsonl")
        ).splitlines()
    ]
    assert {x["body"]["model"] for x in request_lines} == {"answerer"}
    assert {x["body"]["max_tokens"] for x in request_lines} == {77}  # the engine's setting
    assert storage.read_json(join(task_uri, "requests", "_manifest.json"))["model"] == "answerer"
    files = ShardFiles.of(layout, "answers", ShardSpec(0, 1))
    marker = storage.read_json(files.done)
    assert marker["model"] == "answerer"
    assert marker["model_fingerprint"] == model_fingerprint(cfg.answers.engine)
    assert marker["model_fingerprint"]["engine"] == "openai"
    # The config recorded keeps the reference, not the cluster's address.
    assert marker["config"]["answers"]["engine"]["openai_base_url"] == URL
    bodies = [
        json.loads(line)["response"]["body"]
        for uri in storage.walk_files(files.responses)
        for line in storage.read_text(uri).splitlines()
    ]
    assert [b["model"] for b in bodies] == ["answerer", "answerer"]
    qa = read_table(storage, layout.table("qa"))
    assert list(qa["model"]) == ["answerer", "answerer"]


class Boxed:
    model_name = "smollm2-135m-instruct"

    def __init__(self):
        self.generated: list[str] = []

    def generate(self, requests):
        self.generated += [r.custom_id for r in requests]
        return [ChatResponse(r.custom_id, "So \\boxed{4}.", 20, 5, "stop") for r in requests]


def test_the_shard_key_is_the_answering_engines(answered_with_own_engine, make_config):
    cfg, storage, layout, _ = answered_with_own_engine
    files = ShardFiles.of(layout, "answers", ShardSpec(0, 1))
    own_key = storage.read_json(files.done)["shard_key"]
    without = make_config(root=None)  # same root (tmp_path/data), no answers.engine
    assert without.storage.root_uri == cfg.storage.root_uri
    engine = Boxed()
    marker = run_shard(storage, layout, get_task("answers"), ShardSpec(0, 1), engine, without)
    assert marker["shard_key"] != own_key
    assert marker["model_fingerprint"] == model_fingerprint(without.generation)
    assert engine.generated == ["ans-q1", "ans-q2"]  # nothing reused across engines
    # Back to the answering engine: its stored responses are found again under its key.
    again = Boxed()
    marker = run_shard(storage, layout, get_task("answers"), ShardSpec(0, 1), again, cfg)
    assert marker["shard_key"] == own_key and again.generated == []


# -- ${NAME} in openai_base_url -------------------------------------------------------------


def _openai(url: str) -> GenerationConfig:
    return GenerationConfig(engine="openai", model="generator", openai_base_url=url)


def test_make_engine_expands_the_url_from_the_environment(monkeypatch):
    for name, value in SERVICE_ENV.items():
        monkeypatch.setenv(name, value)
    engine = make_engine(_openai(URL))
    assert engine.url == "http://10.0.0.9:8000/v1/chat/completions"
    assert engine.model_name == "generator"
    engine.close()


@pytest.mark.parametrize("empty", [False, True])
def test_an_unset_variable_is_a_permanent_error_naming_it(monkeypatch, empty):
    monkeypatch.setenv("SYNTHLLM_LLM_SERVICE_HOST", "10.0.0.9")
    if empty:
        monkeypatch.setenv("SYNTHLLM_LLM_SERVICE_PORT", "")
    else:
        monkeypatch.delenv("SYNTHLLM_LLM_SERVICE_PORT", raising=False)
    with pytest.raises(UnsetVariableError) as exc:
        make_engine(_openai(URL))
    message = str(exc.value)
    assert "SYNTHLLM_LLM_SERVICE_PORT is not set" in message
    assert "SYNTHLLM_LLM_SERVICE_HOST" not in message.split("environment variable")[1]
    assert isinstance(exc.value, ConfigError) and isinstance(exc.value, PermanentError)
    assert classify(exc.value) == EXIT_PERMANENT


def test_expand_env_replaces_each_reference_and_leaves_other_text():
    env = {"A": "x", "B_2": "y"}
    assert expand_env("http://${A}:${B_2}/${A}", "k", env) == "http://x:y/x"
    assert expand_env("http://host:8000/v1", "k", {}) == "http://host:8000/v1"
    assert expand_env("$A and $", "k", env) == "$A and $"  # only ${NAME} is a reference
    assert env_references(URL) == ["SYNTHLLM_LLM_SERVICE_HOST", "SYNTHLLM_LLM_SERVICE_PORT"]
    with pytest.raises(UnsetVariableError, match="k = 'http://\\$\\{A\\}/\\$\\{C\\}'.*C is"):
        expand_env("http://${A}/${C}", "k", env)


@pytest.mark.parametrize("url", ["http://${HOST:8000/v1", "http://${}/v1", "http://${1A}/v1"])
def test_a_malformed_reference_stops_the_config_at_load(make_config, url):
    with pytest.raises(ValueError, match="NAME"):
        _openai(url)
    with pytest.raises(ConfigError, match="openai_base_url"):
        make_config('generation.engine="openai"', f'generation.openai_base_url="{url}"')
