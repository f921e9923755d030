"""Shared test fixtures: offline hub, the optional real samples, seeded generators."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

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
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def fake_synthesizers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the generation tests' synthesizers (``noise_fill``, ``picky``) for one test."""
    from test_generation_fixtures import register_fakes

    register_fakes(monkeypatch)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small sample-world source (4 scenes of 64², OpenEarthMap classes)."""
    from test_generation_fixtures import world_source

    return world_source(tmp_path / "src")
