"""The I/O layer and the atomic commit, on local files and on a real S3 API (moto server)."""

import pytest

from jobs.commit import StageOutput, StageStats, UncommittedInputError, require_committed
from jobs.config import StorageConfig
from jobs.errors import EXIT_TRANSIENT, classify
from jobs.storage import DeleteFailedError, Storage, join, resolve_uri, to_spark_uri


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    """(Storage, root URI) for both back ends."""
    if request.param == "file":
        return Storage(StorageConfig(root_uri=f"file://{tmp_path}")), f"file://{tmp_path}"
    endpoint, bucket = request.getfixturevalue("s3_bucket")
    cfg = StorageConfig(root_uri=f"s3://{bucket}/root", s3_endpoint_url=endpoint)
    return Storage(cfg), f"s3://{bucket}/root"


def test_read_write_list_delete(store):
    st, root = store
    st.write_text(join(root, "a", "x.txt"), "hello")
    st.write_json(join(root, "a", "b", "y.json"), {"k": 1})
    assert st.read_text(join(root, "a", "x.txt")) == "hello"
    assert st.read_json(join(root, "a", "b", "y.json")) == {"k": 1}
    assert [u.rsplit("/", 1)[-1] for u in st.list(join(root, "a"))] == ["b", "x.txt"]
    assert len(st.walk_files(join(root, "a"))) == 2
    assert st.exists(join(root, "a", "b"))
    st.delete(join(root, "a"))
    assert not st.exists(join(root, "a", "x.txt"))
    assert st.list(join(root, "a")) == []


def test_local_delete_of_a_folder_another_process_removes_meanwhile(tmp_path, monkeypatch):
    """Two attempts of a stage may clear one staging folder at once: whatever the other one
    removed first is fine, and any other error still stops the delete."""
    import os

    st, root = Storage(StorageConfig(root_uri=f"file://{tmp_path}")), f"file://{tmp_path}"
    for name in ("x", "y"):
        st.write_text(join(root, "stage", "sub", f"{name}.txt"), name)
    real_rmdir = os.rmdir

    def rmdir_raced(path, *args, **kwargs):  # the other attempt got there first
        real_rmdir(path, *args, **kwargs)
        raise FileNotFoundError(2, "No such file or directory", str(path))

    monkeypatch.setattr(os, "rmdir", rmdir_raced)
    st.delete(join(root, "stage"))
    assert not (tmp_path / "stage").exists()
    st.delete(join(root, "stage", "sub", "x.txt"))  # a file already gone
    assert st.list(join(root, "stage")) == []

    st.write_text(join(root, "kept", "z.txt"), "z")

    def rmdir_refused(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "rmdir", rmdir_refused)
    with pytest.raises(PermissionError):
        st.delete(join(root, "kept"))


def test_append_and_move(store):
    st, root = store
    uri = join(root, "j.jsonl")
    st.append_text(uri, "1\n")
    st.append_text(uri, "2\n")
    assert st.read_text(uri) == "1\n2\n"
    st.move(uri, join(root, "moved", "j.jsonl"))
    assert not st.exists(uri)
    assert st.read_text(join(root, "moved", "j.jsonl")) == "1\n2\n"


def test_commit_is_atomic_and_rerun_replaces(store):
    st, root = store
    out_uri = join(root, "runs", "s1", "t")
    out = StageOutput(st, out_uri, attempt="1")
    tmp = out.begin()
    st.write_text(join(tmp, "part-0.txt"), "first")
    with pytest.raises(UncommittedInputError):
        require_committed(st, out_uri)
    out.commit({"job": "t"}, StageStats(rows_in=3, rows_out=2, quarantined={"bad": 1}))
    require_committed(st, out_uri)
    stats = st.read_json(join(out_uri, "_stats.json"))
    assert (stats["rows_in"], stats["rows_out"], stats["rows_quarantined"]) == (3, 2, 1)
    manifest = st.read_json(join(out_uri, "_manifest.json"))
    assert manifest["job"] == "t"
    assert manifest["commit"] == {"attempt": out.token, "generation": 1, "files": ["part-0.txt"]}
    assert st.read_json(join(out_uri, "_SUCCESS"))["attempt"] == out.token

    second = StageOutput(st, out_uri, attempt="2")
    st.write_text(join(second.begin(), "part-9.txt"), "second")
    second.commit({"job": "t"}, None)
    names = sorted(u.rsplit("/", 1)[-1] for u in st.list(out_uri))
    # _commits holds the newest claim only (the fence's state), _tmp is gone.
    assert names == ["_SUCCESS", "_commits", "_manifest.json", "part-9.txt"]
    assert [u.rsplit("/", 1)[-1] for u in st.list(join(out_uri, "_commits"))] == ["0000000002.json"]
    assert st.read_json(join(out_uri, "_manifest.json"))["commit"]["files"] == ["part-9.txt"]


def test_create_exclusive_writes_only_if_absent(store):
    st, root = store
    uri = join(root, "claims", "0000000001.json")
    assert st.create_exclusive(uri, b"first")
    assert not st.create_exclusive(uri, b"second")  # S3: PutObject If-None-Match: * -> 412
    assert st.read_bytes(uri) == b"first"
    assert [u.rsplit("/", 1)[-1] for u in st.list(join(root, "claims"))] == ["0000000001.json"]


def test_s3_batch_delete_with_per_key_errors_raises_transient(s3_bucket):
    endpoint, bucket = s3_bucket
    st = Storage(StorageConfig(root_uri=f"s3://{bucket}/root", s3_endpoint_url=endpoint))
    root = f"s3://{bucket}/root"
    st.write_text(join(root, "d", "a.txt"), "a")
    st.write_text(join(root, "d", "b.txt"), "b")
    seen: list[str] = []

    def refuse_b(http_response, parsed, **_):  # S3's answer: 200, one key in Errors
        seen.append("DeleteObjects")
        parsed["Errors"] = [{"Key": "root/d/b.txt", "Code": "InternalError", "Message": "x"}]

    st.s3.meta.events.register("after-call.s3.DeleteObjects", refuse_b)
    with pytest.raises(DeleteFailedError, match=r"1 of \d keys not deleted: root/d/b.txt") as exc:
        st.delete(join(root, "d"))
    assert seen == ["DeleteObjects"] and classify(exc.value) == EXIT_TRANSIENT


def test_stats_balance_check():
    StageStats(rows_in=5, rows_out=3, quarantined={"a": 2}).check_balance()
    with pytest.raises(AssertionError, match="row accounting"):
        StageStats(rows_in=5, rows_out=3, quarantined={"a": 1}).check_balance()


def test_uri_helpers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_uri("data") == f"file://{tmp_path}/data"
    assert resolve_uri("s3://b/k") == "s3://b/k"
    assert to_spark_uri("s3://b/k") == "s3a://b/k"
    with pytest.raises(ValueError, match="unsupported"):
        resolve_uri("gs://b/k")


def test_large_s3_moves_and_copies_use_multipart_copy(s3_bucket, tmp_path):
    """With the part-size limit set to S3's 5 MB minimum, a 12 MB object moves in 3 parts."""
    endpoint, bucket = s3_bucket
    cfg = StorageConfig(
        root_uri=f"s3://{bucket}/root",
        s3_endpoint_url=endpoint,
        multipart_threshold_mb=5,
        multipart_chunk_mb=5,
    )
    st, root = Storage(cfg), f"s3://{bucket}/root"
    calls: list[str] = []
    for op in ("CopyObject", "UploadPartCopy", "UploadPart"):
        st.s3.meta.events.register(
            f"before-call.s3.{op}", lambda model, **_: calls.append(model.name)
        )
    payload = bytes(range(256)) * (12 * 1024 * 1024 // 256)
    src = tmp_path / "big.bin"
    src.write_bytes(payload)
    st.upload_file(src, join(root, "tmp", "big.bin"))
    assert calls.count("UploadPart") == 3
    calls.clear()
    st.move(join(root, "tmp"), join(root, "final"))
    assert calls == ["UploadPartCopy"] * 3  # 5 + 5 + 2 MB; no single CopyObject
    st.copy(join(root, "final", "big.bin"), join(root, "again.bin"))
    assert calls.count("UploadPartCopy") == 6
    head = st.s3.head_object(Bucket=bucket, Key="root/again.bin")
    assert head["ETag"].strip('"').endswith("-3")
    assert not st.exists(join(root, "tmp"))
    out = tmp_path / "back.bin"
    st.download_file(join(root, "final", "big.bin"), out)
    assert out.read_bytes() == payload
    assert st.read_bytes(join(root, "again.bin")) == payload
    # Below the threshold a copy stays one CopyObject call.
    calls.clear()
    st.write_bytes(join(root, "small.txt"), b"x")
    st.copy(join(root, "small.txt"), join(root, "small2.txt"))
    assert calls == ["CopyObject"]
