"""The training loop every family runs: a family writes its step, the engine does the rest.

A family subclasses :class:`TrainTask` with one optimisation step (:meth:`TrainTask.update`)
and one way to save a checkpoint (:meth:`TrainTask.save`); :func:`run_loop` then takes the
steps up to ``total`` and, after each, in this order:

1. a metrics row every ``run.log_every`` steps and at the end: the mean of each figure the
   steps returned since the last row (plus :meth:`TrainTask.log_extras`, figures computed
   only when a row is written, and ``s_per_step``), averaged over processes under DDP;
2. each periodic action (:class:`Periodic`: previews, validation, FID…), whose figures, if
   any, are logged at that step;
3. a checkpoint every ``run.save_every`` steps and at the end.

A period of 0 means "at the task's natural boundary" (:meth:`TrainTask.at_boundary`, e.g. an
epoch end; never for a task without one) and always at the end. The figures of the window
not yet logged travel in the checkpoint (:meth:`Window.state`), so a resumed run writes the
same rows as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from changen.engine.config import RunConfig
from changen.engine.metrics import MetricsLog
from changen.engine.progress import Advance

Figures = Mapping[str, Tensor | float]
"""Named scalar figures of a step (tensors are read only when a row is written)."""


class TrainTask:
    """One family's training: its state, its step and its checkpoint.

    ``step`` counts the optimisation steps done; :meth:`update` takes the next one and
    advances it.
    """

    step: int = 0

    def update(self) -> Figures:
        """Take one optimisation step on the next batch; return its figures (e.g. losses)."""
        raise NotImplementedError

    def save(self, loop_state: dict[str, Any]) -> None:
        """Write the checkpoint of the current step, with ``loop_state`` in its state."""
        raise NotImplementedError

    def log_extras(self) -> Figures:
        """Figures of the last step computed only when a metrics row is written."""
        return {}

    def at_boundary(self) -> bool:
        """Whether the last step ended a natural period of the task (an epoch)."""
        return False


@dataclass(frozen=True)
class Periodic:
    """An action due every ``period`` steps (0: at the task's boundary) and at the end;
    ``action(step)`` may return figures to log at that step."""

    period: int
    action: Callable[[int], Mapping[str, float] | None]


@dataclass
class Window:
    """The figures of the steps since the last metrics row, and the time they took."""

    figures: list[dict[str, Tensor | float]] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, figures: Figures, seconds: float) -> None:
        self.figures.append(dict(figures))
        self.seconds += seconds

    def means(self) -> dict[str, float]:
        """Mean of each figure over the steps that returned it."""
        names = dict.fromkeys(k for f in self.figures for k in f)
        means = {}
        for name in names:
            values = [float(f[name]) for f in self.figures if name in f]
            means[name] = math.fsum(values) / len(values)
        return means

    def seconds_per_step(self) -> float:
        return self.seconds / max(len(self.figures), 1)

    def state(self) -> dict[str, Any]:
        """The window as plain floats, for a checkpoint."""
        figures = [{k: float(v) for k, v in f.items()} for f in self.figures]
        return {"figures": figures, "seconds": self.seconds}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> Window:
        if not state:
            return cls()
        return cls([dict(f) for f in state["figures"]], float(state["seconds"]))


def due(step: int, period: int, boundary: bool, end: bool) -> bool:
    """Whether an action with ``period`` runs after ``step`` (see the module docstring)."""
    return end or (step % period == 0 if period else boundary)


def run_loop(
    task: TrainTask,
    total: int,
    run: RunConfig,
    *,
    log: MetricsLog | None = None,
    advance: Advance | None = None,
    periodic: Sequence[Periodic] = (),
    window: Window | None = None,
    reduce: Callable[[dict[str, float]], dict[str, float]] | None = None,
    shown: Sequence[str] = ("loss",),
) -> None:
    """Train ``task`` from its current step up to ``total`` (see the module docstring).

    ``log``: the metrics log (rank 0's; None elsewhere). ``advance``: the progress task,
    moved on per step with the ``shown`` figures of the last row. ``window``: the unlogged
    figures restored from a checkpoint. ``reduce``: averages a row over processes (called on
    every rank; None in one process).
    """
    window = window or Window()
    info: dict[str, float] | None = None
    while task.step < total:
        tick = time.perf_counter()
        figures = task.update()
        window.add(figures, time.perf_counter() - tick)
        step, end, boundary = task.step, task.step >= total, task.at_boundary()
        if step % run.log_every == 0 or end:
            row = _row(window, task.log_extras())
            row = reduce(row) if reduce is not None else row
            if log is not None:
                log.log(step, **row)
            info = {k: row[k] for k in shown if k in row}
            window = Window()
        for action in periodic:
            if due(step, action.period, boundary, end):
                extra = action.action(step)
                if extra and log is not None:
                    log.log(step, **extra)
        if due(step, run.save_every, boundary, end):
            task.save({"window": window.state()})
        if advance is not None:
            advance(1, info)


def mean_over_processes(fabric: Any) -> Callable[[dict[str, float]], dict[str, float]] | None:
    """A ``reduce`` for :func:`run_loop` averaging rows over ``fabric``'s processes (None in
    one process)."""
    if fabric.world_size == 1:
        return None

    def reduce(row: dict[str, float]) -> dict[str, float]:
        values = torch.tensor(list(row.values()), dtype=torch.float64, device=fabric.device)
        mean = fabric.all_reduce(values, reduce_op="mean")
        return dict(zip(row, mean.tolist(), strict=True))

    return reduce


def _row(window: Window, extras: Figures) -> dict[str, float]:
    row = window.means()
    row.update({k: float(v) for k, v in extras.items()})
    row["s_per_step"] = window.seconds_per_step()
    return row
