"""Engines that batch internally (vLLM) get bounded chunks of a shard, one part file each."""

from __future__ import annotations

import json
import math

import pytest

from jobs.layout import Layout
from jobs.llm.batchfile import ShardSpec, write_request_shards
from jobs.llm.engine import ChatRequest, ChatResponse
from jobs.llm.journal import read_shard_lines
from jobs.llm.runner import ShardFiles, derive_seed, run_shard
from jobs.llm.tasks import LLMTask
from jobs.storage import Storage, join

PLAIN = LLMTask("plain")
SHARD = ShardSpec(0, 1)


class VLLMLike:
    """A test double of VLLMEngine's contract: any number of requests per call."""

    batches_internally = True
    model_name = "vllm-like"

    def __init__(self, die_at: int | None = None) -> None:
        self.calls: list[list[ChatRequest]] = []
        self.die_at = die_at

    def generate(self, requests):
        if self.die_at is not None and len(self.calls) + 1 == self.die_at:
            raise MemoryError("pod preempted")  # the call in flight is lost
        self.calls.append(list(requests))
        return [ChatResponse(r.custom_id, f"ok:{r.custom_id}", 5, 2, "stop") for r in requests]


def _setup(make_config, num_requests: int, *overrides: str):
    cfg = make_config("generation.batch_size=3", "generation.seed=11", *overrides)
    storage = Storage(cfg.storage)
    layout = Layout(cfg.storage.root_uri, "snap1")
    ids = [f"r{i:02d}" for i in range(num_requests)]
    reqs = [ChatRequest(i, ({"role": "user", "content": f"q {i}"},)) for i in ids]
    requests_uri = join(layout.llm_task("plain"), "requests")
    write_request_shards(storage, requests_uri, reqs, 1, "vllm-like")
    storage.write_text(join(requests_uri, "_SUCCESS"), "")
    return cfg, storage, layout, ids


def _parts(storage, files) -> list[str]:
    return sorted("/".join(u.split("/")[-2:]) for u in storage.walk_files(files.responses))


def _planned_seeds(ids, batch_size=3, seed=11):
    return {cid: derive_seed(seed, 0, i // batch_size) for i, cid in enumerate(ids)}


@pytest.mark.parametrize(("num_requests", "chunk"), [(10, 4), (8, 4), (5, 1), (3, 1024)])
def test_chunks_of_at_most_chunk_size_one_part_file_each(make_config, num_requests, chunk):
    cfg, storage, layout, ids = _setup(make_config, num_requests, f"generation.chunk_size={chunk}")
    engine = VLLMLike()
    marker = run_shard(storage, layout, PLAIN, SHARD, engine, cfg)
    expected = math.ceil(num_requests / chunk)
    assert [len(c) for c in engine.calls] == [
        min(chunk, num_requests - i * chunk) for i in range(expected)
    ]
    assert [r.custom_id for c in engine.calls for r in c] == ids
    files = ShardFiles.of(layout, "plain", SHARD)
    assert len(_parts(storage, files)) == expected
    assert marker["responses"] == num_requests and marker["errors"] == 0
    # Seeds follow the planned batches (batch_size 3), not the chunks.
    assert {r.custom_id: r.seed for c in engine.calls for r in c} == _planned_seeds(ids)


def test_kill_after_the_first_chunk_regenerates_only_the_rest(make_config):
    cfg, storage, layout, ids = _setup(make_config, 10, "generation.chunk_size=4")
    files = ShardFiles.of(layout, "plain", SHARD)
    with pytest.raises(MemoryError):
        run_shard(storage, layout, PLAIN, SHARD, VLLMLike(die_at=2), cfg)
    assert not storage.exists(files.done)
    [first_part] = _parts(storage, files)
    [first_uri] = storage.walk_files(files.responses)
    written = [json.loads(line)["custom_id"] for line in storage.read_text(first_uri).splitlines()]
    assert written == ids[:4]

    engine = VLLMLike()
    marker = run_shard(storage, layout, PLAIN, SHARD, engine, cfg)
    assert [[r.custom_id for r in c] for c in engine.calls] == [ids[4:8], ids[8:]]
    # The same seeds an uninterrupted run gives them.
    assert {r.custom_id: r.seed for c in engine.calls for r in c} == {
        cid: s for cid, s in _planned_seeds(ids).items() if cid in ids[4:]
    }
    parts = _parts(storage, files)
    assert parts[0] == first_part and len(parts) == 3
    assert (marker["generated_this_attempt"], marker["resumed_with"]) == (6, 4)
    assert sorted(x["custom_id"] for x in read_shard_lines(storage, files)) == ids


def test_chunk_size_is_validated(make_config):
    from jobs.config import ConfigError

    with pytest.raises(ConfigError, match="chunk_size"):
        make_config("generation.chunk_size=0")
