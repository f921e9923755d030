"""The engine's training loop: a family writes only its step and its checkpoint; logging,
periodic actions, checkpoint cadence and exact resume come from the engine."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from changen.engine.checkpoint import load_state, load_weights
from changen.engine.config import RunConfig
from changen.engine.loop import Periodic, TrainTask, Window, due, run_loop
from changen.engine.metrics import MetricsLog, read_metrics
from changen.engine.run import capture_rng, latest_checkpoint, restore_rng, save_step


class Regression(TrainTask):
    """A whole family in a few lines: fit y = 3x by SGD on batches drawn from (seed, step)."""

    def __init__(self, run: Path, config: RunConfig, resume: bool = False) -> None:
        self.run, self.config = run, config
        self.model = nn.Linear(1, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.step, self.loop_state = 0, {}
        if resume:
            folder = latest_checkpoint(run)
            load_weights(folder, {"model": self.model})
            state = load_state(folder)
            self.optimizer.load_state_dict(state["optimizer"])
            self.step, self.loop_state = state["step"], state["loop"]
            restore_rng(state["rng"])

    def update(self) -> dict[str, torch.Tensor]:
        x = torch.randn(8, 1, generator=torch.Generator().manual_seed(self.step))
        loss = ((self.model(x) - 3 * x) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return {"loss": loss.detach()}

    def log_extras(self) -> dict[str, float]:
        return {"weight": float(self.model.weight.detach())}

    def at_boundary(self) -> bool:
        return self.step % 5 == 0

    def save(self, loop_state: dict[str, Any]) -> None:
        state = {
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "rng": capture_rng(),
            "loop": loop_state,
        }
        save_step(self.run, self.step, {"model": self.model}, {"kind": "toy"}, state, keep=10)


def train(run: Path, total: int, config: RunConfig, resume: bool = False) -> Regression:
    torch.manual_seed(0)
    task = Regression(run, config, resume)
    log = MetricsLog(run / "metrics.csv", resume_step=task.step if resume else None)
    run_loop(
        task,
        total,
        config,
        log=log,
        window=Window.from_state(task.loop_state.get("window")),
        periodic=[Periodic(0, lambda step: {"epoch_end": float(step)})],
    )
    return task


@pytest.mark.parametrize(
    ("step", "period", "boundary", "end", "expected"),
    [
        (4, 2, False, False, True),
        (5, 2, True, False, False),
        (5, 0, True, False, True),
        (5, 0, False, False, False),
        (7, 3, False, True, True),
    ],
)
def test_due(step: int, period: int, boundary: bool, end: bool, expected: bool) -> None:
    assert due(step, period, boundary, end) is expected


def test_loop_logs_acts_and_saves_on_its_cadence(tmp_path: Path) -> None:
    config = RunConfig(accelerator="cpu", log_every=4, save_every=3)
    task = train(tmp_path / "run", 10, config)
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [s for s, r in rows if "loss" in r] == [4, 8, 10]
    assert [s for s, r in rows if "epoch_end" in r] == [5, 10]
    assert all("weight" in r and "s_per_step" in r for _, r in rows if "loss" in r)
    saved = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert saved == ["last", "step-10", "step-3", "step-6", "step-9"]
    assert task.step == 10 and abs(float(task.model.weight.detach()) - 3) < 0.5


def test_resume_after_a_crash_inside_a_window_is_exact(tmp_path: Path) -> None:
    """Checkpoint at step 6 falls inside the window 5..8: the resumed run's row at step 8
    averages the same steps, and the weights match bit for bit."""
    config = RunConfig(accelerator="cpu", log_every=4, save_every=3)
    straight = train(tmp_path / "a", 10, config)
    train(tmp_path / "b", 10, config)
    for path in (tmp_path / "b" / "checkpoints").iterdir():
        if path.name != "step-6":
            shutil.rmtree(path)
    resumed = train(tmp_path / "b", 10, config, resume=True)
    rows_a, rows_b = (read_metrics(tmp_path / r / "metrics.csv") for r in "ab")
    strip = [(s, {k: v for k, v in r.items() if k != "s_per_step"}) for s, r in rows_a]
    assert strip == [(s, {k: v for k, v in r.items() if k != "s_per_step"}) for s, r in rows_b]
    assert torch.equal(straight.model.weight, resumed.model.weight)


def test_window_state_round_trips_as_plain_floats() -> None:
    window = Window()
    window.add({"loss": torch.tensor(0.5)}, 1.0)
    window.add({"loss": 1.5, "lr": 0.1}, 3.0)
    restored = Window.from_state(window.state())
    assert restored.means() == window.means() == {"loss": 1.0, "lr": 0.1}
    assert restored.seconds_per_step() == 2.0
    assert Window.from_state(None).means() == {}
