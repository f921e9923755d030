"""Checkpoint folders: weights + config + state round-trip, atomic replacement, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from changen.errors import DataError
from changen.training.checkpoint import (
    load_config,
    load_state,
    load_weights,
    save_checkpoint,
    unwrap,
)


def test_round_trip_and_replace(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    state = {"step": 7, "optimizer": opt.state_dict(), "rng": torch.get_rng_state()}
    ckpt = save_checkpoint(tmp_path / "ckpt", {"net": net}, {"width": 4}, state)
    assert load_config(ckpt) == {"width": 4}
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    load_weights(ckpt, {"net": other})
    for a, b in zip(net.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    loaded = load_state(ckpt)
    assert loaded["step"] == 7 and torch.equal(loaded["rng"], state["rng"])
    save_checkpoint(ckpt, {"net": net}, {"width": 5})
    assert load_config(ckpt) == {"width": 5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_unwrap_compiled_like_wrappers() -> None:
    inner = nn.Linear(2, 2)
    wrapper = nn.Module()
    wrapper.module = inner
    assert unwrap(wrapper) is inner


def test_missing_pieces_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a changen checkpoint"):
        load_config(tmp_path)
    ckpt = save_checkpoint(tmp_path / "c", {}, {"a": 1})
    with pytest.raises(DataError, match="no weights"):
        load_weights(ckpt, {"net": nn.Linear(1, 1)})
    with pytest.raises(DataError, match="training state"):
        load_state(ckpt)
