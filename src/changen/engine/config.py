"""How and where a training run runs: one vocabulary for every trainer, and its Fabric.

Every family's training config holds a :class:`RunConfig` as its ``run`` field; the CLI's run
flags (``--accelerator``, ``--devices``, ``--precision``, ``--workers``, ``--save-every``,
``--keep``…) map onto it one to one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from changen.errors import ConfigError

if TYPE_CHECKING:
    from lightning_fabric import Fabric

Precision = Literal["fp32", "bf16"]
PRECISIONS: dict[str, str] = {"fp32": "32-true", "bf16": "bf16-mixed"}
"""changen's precision names → Lightning's."""

ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps", "tpu")
"""Lightning Fabric's accelerator names."""

FIXED_FIELDS = ("precision",)
"""RunConfig fields a resumed run may not change (they change the numbers, not the speed)."""


@dataclass(frozen=True)
class RunConfig:
    """Where a run executes and how often it saves.

    ``accelerator`` / ``devices`` / ``num_nodes`` / ``strategy`` are Lightning Fabric's
    (``devices`` an int or ``"auto"``); ``precision`` is ``"fp32"`` or ``"bf16"`` (autocast);
    ``workers`` DataLoader processes (0: load in the training process); a checkpoint every
    ``save_every`` steps (0: the family's natural cadence, e.g. each epoch, and always at the
    end), keeping the newest ``keep``; a metrics row every ``log_every`` steps.
    """

    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: Precision = "fp32"
    workers: int = 0
    save_every: int = 2000
    keep: int = 3
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.accelerator not in ACCELERATORS:
            raise ConfigError(
                f"accelerator {self.accelerator!r}: choose one of {', '.join(ACCELERATORS)}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}"
            )
        if isinstance(self.devices, str) and self.devices != "auto":
            if not self.devices.isdigit():
                raise ConfigError(f"devices {self.devices!r}: give a number or 'auto'")
            object.__setattr__(self, "devices", int(self.devices))
        for name in ("num_nodes", "keep", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("workers", "save_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0")
        if isinstance(self.devices, int) and self.devices < 1:
            raise ConfigError(f"devices={self.devices} must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown run settings {unknown}; remove them")
        return cls(**data)


def make_fabric(run: RunConfig) -> Fabric:
    """Lightning Fabric for ``run`` (not launched): DDP when more than one process is asked
    for and the strategy is left to choose."""
    from lightning_fabric import Fabric

    processes = run.devices * run.num_nodes if isinstance(run.devices, int) else 1
    strategy = "ddp" if run.strategy == "auto" and processes > 1 else run.strategy
    return Fabric(
        accelerator=run.accelerator,
        devices=run.devices,
        num_nodes=run.num_nodes,
        strategy=strategy,
        precision=PRECISIONS[run.precision],  # type: ignore[arg-type]  # a str Literal of Lightning's
    )


def fixed_differences(now: Mapping[str, Any], saved: Mapping[str, Any]) -> list[str]:
    """Names of the :data:`FIXED_FIELDS` that differ between two ``RunConfig`` dicts."""
    return [k for k in FIXED_FIELDS if now.get(k) != saved.get(k)]
