"""Test-wide settings: offline, quiet, single-threaded and deterministic."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("EEGVISION_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The small real fixtures shipped in the repository (see tests/data/README.md)."""
    return DATA


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread (tiny models on a loaded 2-core machine are faster that way)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
