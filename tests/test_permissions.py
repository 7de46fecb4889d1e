"""Outputs respect the umask like ordinary files (a store on shared lab storage must be readable by colleagues)."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from decode_helpers import make_problem

from eegvision.utils import atomic_path, write_text_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_follow_umask(tmp_path, umask_022):
    from safetensors.torch import save_file

    write_text_atomic(tmp_path / "config.json", "{}\n")
    with atomic_path(tmp_path / "emb.safetensors", suffix=".safetensors") as tmp:
        save_file({"x": torch.zeros(2)}, str(tmp))
    assert mode(tmp_path / "config.json") == 0o644
    assert mode(tmp_path / "emb.safetensors") == 0o644
    os.umask(0o077)
    write_text_atomic(tmp_path / "private.json", "{}\n")
    assert mode(tmp_path / "private.json") == 0o600


def test_store_files_follow_umask(tmp_path, umask_022):
    _, data = make_problem(tmp_path, real_store=True, n_subjects=1, n_train_concepts=6, n_test=4)
    files = [p for p in data.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"manifest.json", "training.npy", "training.tsv", "test.npy", "test.tsv"}
    assert {str(p.relative_to(data)): mode(p) for p in files} == {str(p.relative_to(data)): 0o644 for p in files}
