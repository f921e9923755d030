"""The engine's checkpoints and run folders: round-trips, atomic replacement, pruning,
``last/``, run folders accepted as checkpoints, refused pickles, clear errors."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from changen.engine.checkpoint import (
    STATE_NAME,
    checkpoint_kind,
    load_config,
    load_state,
    load_weights,
    save_checkpoint,
    unwrap,
)
from changen.engine.config import RunConfig
from changen.engine.run import (
    capture_rng,
    check_resume,
    latest_checkpoint,
    resolve_checkpoint,
    restore_rng,
    save_step,
    step_checkpoints,
)
from changen.errors import ConfigError, DataError


def test_round_trip_and_replace(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    state = {"step": 7, "optimizer": opt.state_dict(), "rng": torch.get_rng_state()}
    ckpt = save_checkpoint(tmp_path / "ckpt", {"net": net}, {"kind": "k", "width": 4}, state)
    assert load_config(ckpt) == {"kind": "k", "width": 4} and checkpoint_kind(ckpt) == "k"
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    load_weights(ckpt, {"net": other})
    for a, b in zip(net.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    loaded = load_state(ckpt)
    assert loaded["step"] == 7 and torch.equal(loaded["rng"], state["rng"])
    save_checkpoint(ckpt, {"net": net}, {"kind": "k", "width": 5})
    assert load_config(ckpt) == {"kind": "k", "width": 5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_unwrap_compiled_like_wrappers() -> None:
    inner = nn.Linear(2, 2)
    wrapper = nn.Module()
    wrapper.module = inner
    assert unwrap(wrapper) is inner


def test_missing_pieces_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a changen checkpoint"):
        load_config(tmp_path)
    with pytest.raises(ValueError, match="kind"):
        save_checkpoint(tmp_path / "nokind", {}, {"a": 1})
    ckpt = save_checkpoint(tmp_path / "c", {}, {"kind": "k"})
    with pytest.raises(DataError, match="no weights"):
        load_weights(ckpt, {"net": nn.Linear(1, 1)})
    with pytest.raises(DataError, match="training state"):
        load_state(ckpt)


class _Payload:
    """A pickle that would write a file when unpickled."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (str(self.target), "pwned"))  # type: ignore[return-value]


def test_a_malicious_state_is_refused_in_one_line(tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "c", {}, {"kind": "k"}, {"step": 1})
    target = tmp_path / "pwned.txt"
    with open(ckpt / STATE_NAME, "wb") as f:
        pickle.dump({"step": _Payload(target)}, f, protocol=2)
    with pytest.raises(DataError, match="refused or unreadable") as err:
        load_state(ckpt)
    assert "\n" not in str(err.value) and not target.exists()


def test_run_folder_keeps_the_newest_and_publishes_last(tmp_path: Path) -> None:
    net = nn.Linear(2, 2)
    for step in (2, 4, 6):
        save_step(tmp_path, step, {"net": net}, {"kind": "k", "step": step}, {"step": step}, 2)
    assert [s for s, _ in step_checkpoints(tmp_path)] == [4, 6]
    last = latest_checkpoint(tmp_path)
    assert last.name == "last" and load_config(last)["step"] == 6
    assert os.path.samefile(
        last / "net.safetensors", tmp_path / "checkpoints/step-6/net.safetensors"
    )
    assert resolve_checkpoint(tmp_path) == last  # a run folder stands for its last checkpoint
    assert resolve_checkpoint(tmp_path / "checkpoints/step-4").name == "step-4"
    with pytest.raises(DataError, match="neither a checkpoint"):
        resolve_checkpoint(tmp_path / "checkpoints")


def test_rng_round_trip() -> None:
    state = capture_rng()
    a = (torch.rand(3), np.random.rand(), random.random())
    restore_rng(state)
    b = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]


def test_resume_check_allows_runtime_settings_only(tmp_path: Path) -> None:
    saved = {"lr": 0.1, "steps": 10, "run": RunConfig().to_dict()}
    faster = {"lr": 0.1, "steps": 20, "run": RunConfig(workers=4, devices=2).to_dict()}
    check_resume(faster, saved, ("steps", "run"), tmp_path)
    with pytest.raises(ConfigError, match="lr"):
        check_resume({**faster, "lr": 0.2}, saved, ("steps", "run"), tmp_path)
    with pytest.raises(ConfigError, match=r"run\.precision"):
        bf16 = {**faster, "run": RunConfig(precision="bf16").to_dict()}
        check_resume(bf16, saved, ("steps", "run"), tmp_path)


def test_truncated_or_mismatched_weights_are_one_line_errors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from changen.engine.checkpoint import load_weights, read_safetensors
    from changen.errors import DataError

    model = nn.Linear(3, 2)
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    assert set(read_safetensors(tmp_path / "model.safetensors")) == {"weight", "bias"}
    with pytest.raises(DataError, match="do not fit the model"):
        load_weights(tmp_path, {"model": nn.Linear(4, 2)})
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[:20])
    with pytest.raises(DataError, match="truncated or damaged"):
        load_weights(tmp_path, {"model": model})
