"""Loading images into the local cluster's node: the disk they need and what is removed after.

scripts/cluster/import-lib.sh is sourced with stand-ins for ``ctr`` and ``podman`` (shell
functions that print listings and record their calls), so no cluster or image is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts/cluster"))
from import_space import import_space  # noqa: E402

GIB = 1 << 30


def layer(digest: str, size: int) -> dict:
    return {"id": digest[-4:], "diff-digest": digest, "diff-size": size}


def image(*layers: str) -> dict:
    return {"RootFS": {"Type": "layers", "Layers": list(layers)}}


def test_import_space_counts_shared_layers_once_and_only_missing_as_new():
    layers = [layer("sha256:base", 100), layer("sha256:deps", 5000), layer("sha256:code", 7)]
    layers += [layer("sha256:java", 300), layer("sha256:spark-code", 9)]
    python = image("sha256:base", "sha256:deps", "sha256:code")
    spark = image("sha256:base", "sha256:deps", "sha256:java", "sha256:spark-code")
    assert import_space([python, spark], layers, set()) == (5416, 5416)
    have = {"sha256:base", "sha256:deps", "sha256:java", "sha256:unrelated"}
    assert import_space([python, spark], layers, have) == (5416, 16)
    assert import_space([python], layers, have) == (5107, 7)


def test_import_space_refuses_a_layer_of_unknown_size(tmp_path):
    with pytest.raises(LookupError, match="sha256:gone"):
        import_space([image("sha256:gone")], [layer("sha256:base", 1)], set())
    (tmp_path / "layers.json").write_text(json.dumps([layer("sha256:base", 1)]))
    (tmp_path / "have").write_text("sha256:base\n")
    run = subprocess.run(
        [sys.executable, str(REPO / "scripts/cluster/import_space.py")]
        + [str(tmp_path / "layers.json"), str(tmp_path / "have")],
        input=json.dumps([image("sha256:base", "sha256:gone")]),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and run.stdout == "" and "sha256:gone" in run.stderr
    ok = subprocess.run(
        [sys.executable, str(REPO / "scripts/cluster/import_space.py")]
        + [str(tmp_path / "layers.json"), str(tmp_path / "have")],
        input=json.dumps([image("sha256:base")]),
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ok.stdout.split() == ["1", "0"]


# ``ctr images ls``: REF TYPE DIGEST SIZE PLATFORMS LABELS. The CRI plugin names each image by
# its ID (sha256:<config digest>) too, with the same manifest digest as the tag.
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CTR_REFS = [
    ("localhost/synthllm-pause:1.0", "m-pause"),
    ("localhost/synthllm/python:new", "m-new"),
    ("localhost/synthllm/python:old", "m-old"),
    ("localhost/synthllm/spark:new", "m-spark"),
    ("sha256:id-gone", "m-gone"),
    ("sha256:id-new", "m-new"),
    ("sha256:id-old", "m-old"),
    ("sha256:id-pause", "m-pause"),
    ("sha256:id-spark", "m-spark"),
]


def ctr_listing(refs: list[tuple[str, str]]) -> str:
    rows = [f"{ref} {MANIFEST} sha256:{digest} 1.0 GiB linux/amd64 -" for ref, digest in refs]
    return "".join(line + "\n" for line in ["REF TYPE DIGEST SIZE PLATFORMS LABELS", *rows])


CTR_LISTING = ctr_listing(CTR_REFS)


def run_lib(tmp_path: Path, script: str, **env: str) -> subprocess.CompletedProcess:
    """``script`` after lib.sh and import-lib.sh, ``ctr`` answered from files in tmp_path."""
    (tmp_path / "listing").write_text(env.pop("listing", CTR_LISTING))
    (tmp_path / "root").mkdir(exist_ok=True)
    stand_ins = f"""
ctr_k8s() {{
  case "$1 $2" in
    "images ls") if [[ ${{3:-}} == -q ]]; then tail -n +2 {tmp_path}/listing | cut -d' ' -f1;
                 else cat {tmp_path}/listing; fi ;;
    "images rm") shift 2; printf '%s\\n' "$@" >>{tmp_path}/removed ;;
    "content ls") cat {tmp_path}/have ;;
    *) echo "unexpected ctr $*" >&2; return 1 ;;
  esac
}}
"""
    return subprocess.run(
        [
            "bash",
            "-c",
            "set -euo pipefail; source scripts/cluster/lib.sh;"
            " source scripts/cluster/import-lib.sh;" + stand_ins + script,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "CONTAINERD_ROOT": str(tmp_path / "root"),
            "SYNTHLLM_CACHE_DIR": str(tmp_path / "cache"),
            **env,
        },
        timeout=60,
    )


def test_older_tags_and_ids_no_tag_points_to_are_removed(tmp_path):
    done = run_lib(tmp_path, "drop_other_tags localhost/synthllm/python:new")
    assert done.returncode == 0, done.stderr
    removed = (tmp_path / "removed").read_text().split()
    # One call, waiting for garbage collection; the current images and their IDs stay.
    assert removed == ["--sync", "localhost/synthllm/python:old", "sha256:id-gone", "sha256:id-old"]
    assert "freed" in done.stdout


def test_nothing_is_removed_when_every_image_is_current(tmp_path):
    current = ctr_listing([(r, d) for r, d in CTR_REFS if d not in {"m-old", "m-gone"}])
    done = run_lib(tmp_path, "drop_other_tags localhost/synthllm/python:new", listing=current)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "removed").exists()


def check_space(
    tmp_path: Path, sizes: dict[str, int], have: list[str]
) -> subprocess.CompletedProcess:
    store = tmp_path / "store"
    (store / "overlay-layers").mkdir(parents=True, exist_ok=True)
    layers = [layer(d, s) for d, s in sizes.items()]
    (store / "overlay-layers/layers.json").write_text(json.dumps(layers))
    (tmp_path / "have").write_text("".join(d + "\n" for d in have))
    inspect = json.dumps([image(*sizes)])
    podman = f"""
podman() {{
  case $1 in
    info) echo {store} ;;
    image) printf '%s' '{inspect}' ;;
  esac
}}
"""
    return run_lib(tmp_path, podman + "new_save_tmp; check_space localhost/synthllm/python:new")


def test_an_import_the_disk_cannot_hold_stops_before_it_starts(tmp_path):
    huge = 1 << 60  # more than any disk has free
    done = check_space(tmp_path, {"sha256:base": GIB, "sha256:deps": huge}, ["sha256:base"])
    assert done.returncode == 1
    assert "not enough disk for the import" in done.stderr
    assert "1073741825.0 GiB" in done.stderr.replace(",", "")  # 2^60 + 2^30 bytes, in GiB
    # A layer containerd already holds needs no room there, but podman's archive holds it all.
    held = check_space(tmp_path, {"sha256:base": huge, "sha256:deps": 1 << 20}, ["sha256:base"])
    assert held.returncode == 1 and "containerd's new layers 0.0 GiB" in held.stderr
    small = check_space(tmp_path, {"sha256:base": 1 << 20, "sha256:deps": 1 << 20}, [])
    assert small.returncode == 0, small.stderr
    assert "needs 0.0 GiB for podman's archive" in small.stdout


def test_a_layer_of_unknown_size_imports_without_a_check(tmp_path):
    store = tmp_path / "store"
    (store / "overlay-layers").mkdir(parents=True)
    (store / "overlay-layers/layers.json").write_text("[]")
    (tmp_path / "have").write_text("")
    inspect = json.dumps([image("sha256:x")])
    podman = f"podman() {{ case $1 in info) echo {store} ;; image) echo '{inspect}' ;; esac; }}\n"
    done = run_lib(tmp_path, podman + "new_save_tmp; check_space img")
    assert done.returncode == 0, done.stderr
    assert "importing without a disk check" in done.stdout


def test_a_killed_imports_archive_folder_goes_at_the_next_and_a_live_ones_stays(tmp_path):
    tmp = tmp_path / "cache/tmp"
    dead = subprocess.run(["bash", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    (tmp / f"podman-save.{dead}").mkdir(parents=True)
    (tmp / f"podman-save.{dead}/123456").write_bytes(b"x" * 4096)
    (tmp / f"podman-save.{os.getpid()}").mkdir()
    done = run_lib(tmp_path, 'new_save_tmp; echo "tmp=$save_tmp"')
    assert done.returncode == 0, done.stderr
    left = sorted(p.name for p in tmp.iterdir())
    mine = done.stdout.split("tmp=")[1].strip()
    assert f"podman-save.{dead}" not in left and f"podman-save.{os.getpid()}" in left
    assert Path(mine).parent == tmp and Path(mine).name in left
