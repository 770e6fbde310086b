"""OpenAI batch-format shards: naming, splitting, round trips and torn-line tolerance."""

from __future__ import annotations

import json

import pytest

from jobs.llm import batchfile
from jobs.llm.batchfile import (
    RequestShardWriter,
    ResponseLine,
    ShardSpec,
    dumps_lines,
    parse_journal,
    read_requests,
    read_responses,
    request_to_line,
    response_to_line,
    shard_name,
    split_requests,
    write_request_shards,
)
from jobs.llm.engine import ChatRequest, ChatResponse
from jobs.storage import Storage


def _req(i: int, **kw) -> ChatRequest:
    return ChatRequest(f"r{i}", ({"role": "user", "content": f"question {i} ∑"},), **kw)


@pytest.fixture
def storage(make_config):
    return Storage(make_config().storage)


def test_shard_names_and_spec():
    assert shard_name(3, 16) == "shard-00003-of-00016.jsonl"
    spec = ShardSpec.parse(" 3/16 ")
    assert (spec.index, spec.count, spec.stem) == (3, 16, "shard-00003-of-00016")
    for bad in ("16/16", "3", "-1/4", "a/b"):
        with pytest.raises(ValueError, match="shard"):
            ShardSpec.parse(bad)


def test_round_robin_split_and_round_trip(storage, tmp_path):
    reqs = [_req(i, temperature=0.5, top_p=0.8, max_tokens=7, seed=i) for i in range(5)]
    reqs[1] = ChatRequest("r1", reqs[1].messages, json_schema={"type": "object"})
    uri = f"file://{tmp_path}/req"
    uris = write_request_shards(storage, uri, reqs, 2, "m")
    assert [u.rsplit("/", 1)[1] for u in uris] == [shard_name(0, 2), shard_name(1, 2)]
    first = read_requests(storage, uris[0])
    second = read_requests(storage, uris[1])
    assert [r.custom_id for r in first] == ["r0", "r2", "r4"]
    assert first == [reqs[0], reqs[2], reqs[4]]
    assert second[0].json_schema == {"type": "object"}
    line = json.loads(storage.read_text(uris[0]).splitlines()[0])
    assert line["url"] == "/v1/chat/completions" and line["method"] == "POST"
    assert line["body"] == {
        "model": "m",
        "messages": [{"role": "user", "content": "question 0 ∑"}],
        "temperature": 0.5,
        "top_p": 0.8,
        "max_tokens": 7,
        "seed": 0,
    }


def test_hash_split_is_order_independent():
    reqs = [_req(i) for i in range(40)]
    a = split_requests(reqs, 4, "hash")
    b = split_requests(list(reversed(reqs)), 4, "hash")
    assert [sorted(r.custom_id for r in s) for s in a] == [
        sorted(r.custom_id for r in s) for s in b
    ]
    assert sum(len(s) for s in a) == 40 and all(s for s in a)


def test_duplicate_ids_rejected():
    with pytest.raises(ValueError, match="duplicate custom_id 'r1'"):
        split_requests([_req(1), _req(1)], 2)


@pytest.mark.parametrize("count", [0, 2, 7])
def test_streamed_shards_are_the_bytes_of_the_whole_list(storage, tmp_path, count):
    reqs = [_req(i, seed=i) for i in range(count)]
    uris = write_request_shards(storage, f"file://{tmp_path}/whole", reqs, 3, "m")
    (tmp_path / "streamed").mkdir()
    writer = RequestShardWriter(tmp_path / "streamed", 3, "m")
    for r in reqs:
        writer.add(r)
    paths = writer.close()
    assert writer.count == count and [p.name for p in paths] == [shard_name(i, 3) for i in range(3)]
    assert [p.read_bytes() for p in paths] == [storage.read_bytes(u) for u in uris]


def test_streamed_shards_reject_a_repeated_id_and_not_a_shared_hash(tmp_path, monkeypatch):
    writer = RequestShardWriter(tmp_path, 2, "m")
    for i in (1, 2, 1):
        writer.add(_req(i))
    with pytest.raises(ValueError, match="duplicate custom_id 'r1'"):
        writer.close()
    # Every id with one hash: the files are read back, and distinct ids pass.
    monkeypatch.setattr(batchfile, "_id_hash", lambda custom_id: 7)
    (tmp_path / "same-hash").mkdir()
    writer = RequestShardWriter(tmp_path / "same-hash", 2, "m")
    for i in range(5):
        writer.add(_req(i))
    assert len(writer.close()) == 2
    with pytest.raises(ValueError, match="num_shards must be >= 1"):
        RequestShardWriter(tmp_path, 0, "m")


def test_request_defaults_and_bad_lines(storage, tmp_path):
    uri = f"file://{tmp_path}/r.jsonl"
    body = {"messages": [{"role": "user", "content": "hi"}]}
    storage.write_text(uri, json.dumps({"custom_id": "a", "body": body}) + "\n")
    (req,) = read_requests(storage, uri, {"temperature": 0.0, "max_tokens": 9})
    assert (req.temperature, req.max_tokens, req.seed) == (0.0, 9, None)
    storage.write_text(uri, json.dumps({"custom_id": "a", "body": body}) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"r\.jsonl:2: invalid JSON"):
        read_requests(storage, uri)
    storage.write_text(uri, json.dumps({"custom_id": "b", "body": {"messages": []}}) + "\n")
    with pytest.raises(ValueError, match=r"r\.jsonl:1: body.messages"):
        read_requests(storage, uri)


def test_response_line_round_trip():
    first = ChatResponse("r1", "bad", 10, 4, "stop")
    final = ChatResponse("r1", "good", 20, 6, "length")
    obj = json.loads(dumps_lines([response_to_line(final, "m", 2, first)]))
    assert obj["response"]["body"]["choices"][0]["message"] == {
        "role": "assistant",
        "content": "good",
    }
    assert obj["response"]["body"]["usage"] == {
        "prompt_tokens": 20,
        "completion_tokens": 6,
        "total_tokens": 26,
    }
    line = ResponseLine.from_json(obj)
    assert (line.text, line.finish_reason, line.attempts, line.first_attempt) == (
        "good",
        "length",
        2,
        "bad",
    )
    assert (line.spent_prompt_tokens, line.spent_completion_tokens) == (30, 10)
    err = ResponseLine.from_json(
        response_to_line(ChatResponse.failed("r2", "prompt too long", 9), "m")
    )
    assert (err.error, err.text, err.attempts, err.prompt_tokens) == ("prompt too long", "", 1, 9)


def test_torn_last_line_is_dropped(storage, tmp_path):
    lines = dumps_lines(
        [response_to_line(ChatResponse(f"r{i}", "x", 1, 1, "stop"), "m") for i in range(3)]
    ).encode()
    cut = lines.rfind(b"\n", 0, len(lines) - 1) + 1  # start of the third line
    torn = lines[: cut + 15]
    journal = parse_journal(torn)
    assert [x["custom_id"] for x in journal.lines] == ["r0", "r1"]
    assert journal.torn and journal.good_bytes == cut
    clean = parse_journal(lines)
    assert not clean.torn and len(clean.lines) == 3
    uri = f"file://{tmp_path}/resp.jsonl"
    assert read_responses(storage, uri).lines == []
    storage.write_bytes(uri, torn)
    assert len(read_responses(storage, uri).lines) == 2


def test_corrupt_middle_line_is_an_error():
    data = b'{"custom_id": "a"}\n{broken\n{"custom_id": "c"}\n'
    with pytest.raises(ValueError, match="j.jsonl:2: corrupt response line"):
        parse_journal(data, "j.jsonl")


def test_request_line_keeps_json_schema():
    line = request_to_line(
        ChatRequest("a", ({"role": "user", "content": "x"},), json_schema={}), "m"
    )
    assert line["body"]["response_format"]["type"] == "json_schema"
