"""The fenced commit (jobs/commit.py): two attempts of one stage at once, a zombie resuming
after its retry committed or paused inside its own commit, reruns, and readers that read
exactly the files a commit lists. On local files and on a real S3 API (moto server)."""

from __future__ import annotations

import threading

import pytest

from jobs import commit as commit_mod
from jobs.commit import (
    CommitConflictError,
    CommitSupersededError,
    StageOutput,
    StageStats,
    UncommittedInputError,
    committed_files,
    require_committed,
)
from jobs.config import StorageConfig
from jobs.storage import Storage, basename, join, resolve_uri
from jobs.tables import read_table, write_table


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    """(Storage, output URI) for both back ends; the S3 client exists before any thread."""
    if request.param == "file":
        st = Storage(StorageConfig(root_uri=f"file://{tmp_path}"))
        return st, f"file://{tmp_path}/runs/s1/t"
    endpoint, bucket = request.getfixturevalue("s3_bucket")
    st = Storage(StorageConfig(root_uri=f"s3://{bucket}/root", s3_endpoint_url=endpoint))
    assert st.s3 is not None  # boto3 builds clients unsafely across threads: build it here
    return st, f"s3://{bucket}/root/runs/s1/t"


class Attempt(StageOutput):
    """An attempt with a name, which the files it stages carry."""

    name = ""


def stage(st: Storage, uri: str, name: str, attempt: str, run_id: str = "r") -> Attempt:
    """An attempt named ``name`` that staged three rows and a file only it writes."""
    out = Attempt(st, uri, attempt, run_id)
    out.name = name
    tmp = out.begin()
    write_table(st, [{"doc_id": f"{name}-{i}"} for i in range(3)], tmp)  # part-00000.parquet
    st.write_text(join(tmp, f"only-{name}.txt"), name)
    return out


def commit(out: StageOutput) -> None:
    out.commit({"job": "t", "run_id": out.run_id}, StageStats(3, 3))


def data_files(st: Storage, uri: str) -> list[str]:
    """What physically lies in the prefix, fence state (_commits, _tmp) aside."""
    base = resolve_uri(uri) + "/"
    rel = [f[len(base) :] for f in st.walk_files(uri)]
    return sorted(r for r in rel if not r.startswith(("_commits/", "_tmp/")))


def assert_whole(st: Storage, uri: str, winner: Attempt) -> None:
    """``uri`` holds exactly ``winner``'s commit, and readers read exactly its files."""
    name = winner.name
    require_committed(st, uri)
    assert st.read_json(join(uri, "_SUCCESS"))["attempt"] == winner.token
    manifest = st.read_json(join(uri, "_manifest.json"))
    assert manifest["commit"]["attempt"] == winner.token
    assert manifest["commit"]["files"] == [f"only-{name}.txt", "part-00000.parquet"]
    assert data_files(st, uri) == sorted(
        ["_SUCCESS", "_manifest.json", "_stats.json", f"only-{name}.txt", "part-00000.parquet"]
    )
    assert st.read_text(join(uri, f"only-{name}.txt")) == name
    assert sorted(read_table(st, uri)["doc_id"]) == [f"{name}-{i}" for i in range(3)]
    assert [basename(u) for u in committed_files(st, uri)] == manifest["commit"]["files"]


def race(outs: list[Attempt]) -> dict[str, str]:
    """Commit ``outs`` from one thread each, released together; name -> what happened."""
    barrier, results = threading.Barrier(len(outs)), {}

    def run(out):
        barrier.wait(60)
        try:
            commit(out)
            results[out.name] = "committed"
        except CommitSupersededError:
            results[out.name] = "superseded"

    threads = [threading.Thread(target=run, args=(o,)) for o in outs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_two_attempts_committing_at_once_leave_one_whole_output(store):
    st, uri = store
    for rnd in range(3):  # each round replaces the last one's commit
        outs = [
            stage(st, uri, f"zombie{rnd}", str(2 * rnd + 1)),
            stage(st, uri, f"retry{rnd}", str(2 * rnd + 2)),
        ]
        results = race(outs)
        assert sorted(results.values()) == ["committed", "superseded"], results
        (winner,) = [o for o in outs if results[o.name] == "committed"]
        assert_whole(st, uri, winner)
        assert not st.exists(join(uri, "_tmp"))  # both stagings gone: its own and the loser's


def test_a_zombie_resuming_after_its_retry_committed_is_refused(store):
    st, uri = store
    zombie = StageOutput(st, uri, "1", "r")
    zombie.begin()  # began, then lost its heartbeat
    retry = stage(st, uri, "retry", "2")
    commit(retry)
    st.write_text(join(zombie.tmp_uri, "late.txt"), "staged after the retry's clean-up")
    with pytest.raises(CommitSupersededError, match="claimed after it began"):
        commit(zombie)
    assert_whole(st, uri, retry)
    assert not st.exists(join(uri, "_tmp"))


def test_a_zombie_that_begins_after_its_retry_committed_is_refused_by_its_try(store):
    st, uri = store
    retry = stage(st, uri, "retry", "2")
    commit(retry)
    zombie = stage(st, uri, "zombie", "1")  # stalled before it even began its output
    with pytest.raises(CommitSupersededError, match="try 2 of run r claimed"):
        commit(zombie)
    assert_whole(st, uri, retry)
    rerun = stage(st, uri, "rerun", "1", run_id="r-backfill")  # another run replaces it
    commit(rerun)
    assert_whole(st, uri, rerun)


class Pause:
    """Stops the thread named ``who`` at commit point ``point`` until ``go`` is set."""

    def __init__(self, who: str, point: str) -> None:
        self.who, self.point = who, point
        self.reached, self.go = threading.Event(), threading.Event()

    def __call__(self, point: str, uri: str) -> None:
        if point == self.point and threading.current_thread().name == self.who:
            self.reached.set()
            assert self.go.wait(60)


@pytest.mark.parametrize(
    "point", ["after_claim", "after_delete_success", "after_moves", "before_success"]
)
def test_a_zombie_paused_inside_its_commit_cannot_touch_the_newer_one(store, point, monkeypatch):
    st, uri = store
    commit(stage(st, uri, "old", "1", run_id="earlier"))
    pause = Pause("zombie", point)
    monkeypatch.setattr(commit_mod, "_fault_point", pause)
    zombie, errors = stage(st, uri, "zombie", "1"), []

    def run():
        try:
            commit(zombie)
        except CommitSupersededError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="zombie")
    thread.start()
    assert pause.reached.wait(60)
    retry = stage(st, uri, "retry", "2")  # begins after the zombie's claim
    commit(retry)
    pause.go.set()
    thread.join(60)
    assert len(errors) == 1 and "superseded" in str(errors[0])
    assert_whole(st, uri, retry)


def test_staging_is_the_attempts_own_and_a_later_attempts_survives_a_commit(store, monkeypatch):
    st, uri = store
    first, second = StageOutput(st, uri, "1"), StageOutput(st, uri, "1")
    assert first.begin() != second.begin()  # same try number, still two folders
    st.write_text(join(first.tmp_uri, "x.txt"), "staged before the winner's claim")
    winner = stage(st, uri, "winner", "1")
    pause = Pause("winner", "after_success")  # committed, not yet cleaned up
    monkeypatch.setattr(commit_mod, "_fault_point", pause)
    thread = threading.Thread(target=commit, args=(winner,), name="winner")
    thread.start()
    assert pause.reached.wait(60)
    later = stage(st, uri, "later", "2")  # began after the winner's claim
    pause.go.set()
    thread.join(60)
    assert st.walk_files(later.tmp_uri)  # not the winner's to delete
    assert not st.walk_files(first.tmp_uri)  # fenced out by the winner's claim: deleted
    commit(later)
    assert_whole(st, uri, later)


def test_a_rerun_replaces_its_own_commit_and_old_prefixes_still_read(store):
    st, uri = store
    # A prefix committed before commits were fenced: an empty _SUCCESS, no file list.
    write_table(st, [{"doc_id": "legacy"}], uri)
    st.write_json(join(uri, "_manifest.json"), {"job": "t"})
    st.write_text(join(uri, "_SUCCESS"), "")
    assert committed_files(st, uri) is None
    assert list(read_table(st, uri)["doc_id"]) == ["legacy"]
    for n, name in enumerate(["one", "two"], start=1):
        out = stage(st, uri, name, "1", run_id=f"run{n}")
        commit(out)
        assert_whole(st, uri, out)
        assert st.read_json(join(uri, "_manifest.json"))["commit"]["generation"] == n


def test_readers_read_only_the_files_the_commit_lists(store):
    st, uri = store
    out = stage(st, uri, "one", "1")
    commit(out)
    # A file moved in by a fenced-out attempt that lost its claim mid-move.
    write_table(st, [{"doc_id": "stray"}], join(uri, "late"))
    assert sorted(read_table(st, uri)["doc_id"]) == ["one-0", "one-1", "one-2"]


def test_readers_refuse_a_prefix_whose_marker_and_manifest_disagree(store):
    st, uri = store
    out = stage(st, uri, "one", "1")
    commit(out)
    st.write_json(join(uri, "_SUCCESS"), {"attempt": "someone-else", "generation": 9})
    with pytest.raises(UncommittedInputError, match="another commit is replacing it"):
        read_table(st, uri)
    with pytest.raises(UncommittedInputError):
        require_committed(st, uri)
    st.delete(join(uri, "_SUCCESS"))
    with pytest.raises(UncommittedInputError, match="a commit is claimed"):
        read_table(st, uri)


def test_a_delete_that_leaves_files_stops_the_commit_before_it_moves(store, monkeypatch):
    st, uri = store
    old = stage(st, uri, "old", "1")
    commit(old)
    new = stage(st, uri, "new", "2")
    real_delete = st.delete

    def keeps_data(target):  # a store that answers "deleted" and keeps this object
        return None if basename(target) == "only-old.txt" else real_delete(target)

    monkeypatch.setattr(st, "delete", keeps_data)
    with pytest.raises(CommitConflictError, match="after deleting the old commit"):
        commit(new)
    monkeypatch.setattr(st, "delete", real_delete)
    with pytest.raises(UncommittedInputError):
        require_committed(st, uri)
    retry = stage(st, uri, "retry", "3")
    commit(retry)
    assert_whole(st, uri, retry)
