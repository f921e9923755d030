"""Noise schedules and samplers: diffusers' schedulers, configured the way the papers train.

Training uses a :class:`diffusers.DDPMScheduler` (1000 steps, DiT's linear β 1e-4 … 0.02,
``variance_type="learned_range"`` when the model learns its variance as iDDPM / DiT do) for
``add_noise`` and the ᾱ table. Sampling uses DDIM (Song et al.; ChangeAnywhere) or ancestral
DDPM (DiT, Changen2), respaced to any number of steps by diffusers' ``set_timesteps``. Nothing
here re-implements a scheduler; :class:`ScheduleConfig` only records the choices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

from changen.errors import ConfigError

SAMPLERS = ("ddim", "ddpm")
Scheduler = DDPMScheduler | DDIMScheduler


@dataclass(frozen=True)
class ScheduleConfig:
    """The training noise schedule (shared by the sampler)."""

    train_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear"
    learn_sigma: bool = True

    def __post_init__(self) -> None:
        if self.train_steps < 2:
            raise ConfigError(f"train_steps={self.train_steps} must be at least 2")
        if not 0 < self.beta_start < self.beta_end < 1:
            raise ConfigError(
                f"betas {self.beta_start}..{self.beta_end} must satisfy 0 < start < end < 1"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScheduleConfig:
        return cls(**data)

    def _common(self) -> dict[str, Any]:
        return {
            "num_train_timesteps": self.train_steps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "beta_schedule": self.beta_schedule,
            "clip_sample": False,
        }

    def training(self) -> DDPMScheduler:
        """The training scheduler (``add_noise``, ``alphas_cumprod``)."""
        variance = "learned_range" if self.learn_sigma else "fixed_small"
        return DDPMScheduler(**self._common(), variance_type=variance)

    def sampler(self, name: str, steps: int) -> Scheduler:
        """A sampler (``"ddim"`` or ``"ddpm"``) respaced to ``steps`` steps."""
        if name not in SAMPLERS:
            raise ConfigError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
        if not 1 <= steps <= self.train_steps:
            raise ConfigError(f"sampling steps={steps} must be within 1..{self.train_steps}")
        scheduler: Scheduler
        if name == "ddim":
            scheduler = DDIMScheduler(**self._common(), timestep_spacing="trailing")
        else:
            variance = "learned_range" if self.learn_sigma else "fixed_small"
            scheduler = DDPMScheduler(
                **self._common(), variance_type=variance, timestep_spacing="trailing"
            )
        scheduler.set_timesteps(steps)
        return scheduler
