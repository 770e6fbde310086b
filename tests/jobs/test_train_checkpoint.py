"""Checkpoint store: pruning, fingerprints, damaged objects, RNG round trips."""

from __future__ import annotations

import random

import numpy as np
import torch

from jobs.storage import Storage
from jobs.train.checkpoint import CheckpointStore, checkpoint_name, rng_state, set_rng_state


def _store(make_config, tmp_path, keep=2) -> CheckpointStore:
    cfg = make_config()
    return CheckpointStore(Storage(cfg.storage), f"file://{tmp_path}/ckpt", keep)


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_rng_states_round_trip_through_a_checkpoint(make_config, tmp_path):
    store = _store(make_config, tmp_path)
    state = rng_state()
    store.save(1, {"fingerprint": "f", "rng": [state]})
    expected = _draws()
    _draws()
    set_rng_state(store.load_latest("f")["rng"][0])  # loaded with weights_only=True
    assert _draws() == expected


def test_old_checkpoints_are_pruned_and_the_newest_is_loaded(make_config, tmp_path):
    store = _store(make_config, tmp_path, keep=2)
    for step in (3, 6, 9):
        store.save(step, {"fingerprint": "f", "step": step, "w": torch.full((4,), step)})
    assert store.steps() == [6, 9]
    assert not list((tmp_path / "ckpt").glob("*.partial"))
    payload = store.load_latest("f")
    assert payload["step"] == 9 and payload["w"].tolist() == [9.0] * 4


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(make_config, tmp_path):
    store = _store(make_config, tmp_path)
    store.save(2, {"fingerprint": "f", "step": 2})
    store.save(4, {"fingerprint": "f", "step": 4})
    (tmp_path / "ckpt" / checkpoint_name(4)).write_bytes(b"half a checkpoint")
    assert store.load_latest("f")["step"] == 2


def test_checkpoints_of_another_run_are_discarded(make_config, tmp_path):
    store = _store(make_config, tmp_path)
    store.save(5, {"fingerprint": "other data", "step": 5})
    assert store.load_latest("this run") is None
    assert store.steps() == []
