"""Shared test fixtures: offline hub, the optional real samples, seeded generators."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REAL_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture
def real_root() -> Path:
    """The folder of real samples beside the project; the test is skipped when it is absent."""
    if not REAL_ROOT.is_dir():
        pytest.skip(f"real samples not found at {REAL_ROOT}")
    return REAL_ROOT


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run the test with one torch thread (the CPU kernels, and so the bits, of CI)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def fake_synthesizers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the generation tests' synthesizers (``noise_fill``, ``picky``) for one test."""
    from fixtures_generation import register_fakes

    register_fakes(monkeypatch)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small sample-world source (4 scenes of 64², OpenEarthMap classes)."""
    from fixtures_generation import world_source

    return world_source(tmp_path / "src")


@pytest.fixture(scope="session")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Sample worlds the detector tests share (64², OpenEarthMap classes): 8 change pairs, 4
    held-out pairs, 6 single-temporal scenes. Written once per session."""
    from changen.data.world import write_sample_world

    root = tmp_path_factory.mktemp("worlds")
    return {
        "pairs": write_sample_world(root / "pairs", 8, 0, size=64, pairs=True),
        "test": write_sample_world(root / "test", 4, 1, size=64, pairs=True),
        "scenes": write_sample_world(root / "scenes", 6, 2, size=64),
    }
