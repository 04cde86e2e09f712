"""Shared fixtures: tiny real configs and paths to the shared data (skipped with a reason when absent)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
NB201_CSV = SHARED / "nb201" / "nb201.csv"
CIFAR_NPZ = SHARED / "cifar10" / "cifar10.npz"


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(2)


@pytest.fixture
def nb201_csv() -> Path:
    if not NB201_CSV.is_file():
        pytest.skip(f"NB201 table not found at {NB201_CSV} (../shared/data/nb201/nb201.csv)")
    return NB201_CSV
