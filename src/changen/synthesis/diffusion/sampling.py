"""Masked change sampling: the post-event latent, guided by the pre-event one where nothing
changes.

From x_T ~ N(0, I) the sampler denoises under the post-event condition; during the first
``switch`` fraction of the steps it replaces, after each step, the unchanged region by the
forward-noised pre-event latent at the new noise level,

    x ← C ⊙ x + (1 − C) ⊙ q(z_pre, t_prev),    q(z, t) = √ᾱ_t · z + √(1 − ᾱ_t) · ε,

(x_T too), so changed regions are generated in the context of the pre-event scene while the
unchanged ones follow it. After the switch the whole latent is denoised freely, so unchanged
regions keep their layout but vary plausibly (illumination, phenology): ChangeAnywhere's
two-phase sampling (its Eq. 6, N_min = (1 − switch) · steps) is this with ``switch < 1``;
``switch = 1`` keeps the unchanged region to the pre-event latent up to the last step, whose
output there is z_pre itself.

C is the change mask on the latent grid: a latent cell is changed when **any** pixel it covers
changed (max-pooling by the autoencoder's factor), so no changed pixel is left to the
pre-event content. Every random draw (x_T, ancestral noise, the forward noise of z_pre) comes
from one torch generator per sample, so a sample does not depend on its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from torch import Tensor

from changen.errors import ConfigError
from changen.synthesis.diffusion.schedule import ScheduleConfig, Scheduler

Denoiser = Callable[[Tensor, Tensor], Tensor]
"""``denoiser(x_t, t)`` → the model output (ε, and the variance values if learned)."""


@dataclass(frozen=True)
class SamplingConfig:
    """``sampler`` ``"ddim"`` or ``"ddpm"`` over ``steps`` respaced steps; ``switch`` the
    fraction of steps (from the start) with the pre-event latent imposed on unchanged
    regions; ``eta`` DDIM's noise (0: deterministic given x_T)."""

    sampler: str = "ddim"
    steps: int = 50
    switch: float = 1.0
    eta: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.switch <= 1.0:
            raise ConfigError(f"switch={self.switch} must be within 0..1 (a fraction of steps)")
        if self.steps < 1:
            raise ConfigError(f"sampling steps={self.steps} must be at least 1")

    @property
    def masked_steps(self) -> int:
        return round(self.switch * self.steps)


def latent_change(change: Tensor, latent_size: tuple[int, int]) -> Tensor:
    """(N, H, W) change mask (bool or 0/1) → (N, 1, h, w) float on the latent grid: a cell is
    changed when any pixel it covers is."""
    c = change.float()[:, None]
    if c.shape[-2:] == latent_size:
        return c
    return F.adaptive_max_pool2d(c, latent_size)


def randn(shape: Sequence[int], generators: Sequence[torch.Generator], like: Tensor) -> Tensor:
    """Standard normal noise of ``shape`` (batch first), sample ``i`` from ``generators[i]``."""
    noise = [torch.randn(tuple(shape[1:]), generator=g, dtype=torch.float32) for g in generators]
    return torch.stack(noise).to(device=like.device, dtype=like.dtype)


def forward_noise(scheduler: Scheduler, z: Tensor, noise: Tensor, t: int) -> Tensor:
    """q(z, t) with the scheduler's ᾱ table."""
    steps = torch.full((z.shape[0],), t, dtype=torch.long)
    return scheduler.add_noise(z, noise, cast(torch.IntTensor, steps))


def sample(
    denoiser: Denoiser,
    schedule: ScheduleConfig,
    shape: Sequence[int],
    generators: Sequence[torch.Generator],
    config: SamplingConfig,
    *,
    pre_latent: Tensor | None = None,
    change: Tensor | None = None,
    device: torch.device | str = "cpu",
    trace: Callable[[int, Tensor, Tensor], None] | None = None,
) -> Tensor:
    """Latents of ``shape`` (N, C, h, w) by ``config``'s sampler over the training
    ``schedule`` respaced to ``config.steps``.

    ``pre_latent`` (N, C, h, w) and ``change`` ((N, h, w) or (N, 1, h, w) on the latent grid,
    see :func:`latent_change`) switch on masked change sampling (see the module docstring).
    ``trace(i, x, known)`` sees each masked step's blended latent and the noised pre-event
    latent blended in (tests use it).
    """
    if len(generators) != shape[0]:
        raise ConfigError(f"need one generator per sample ({shape[0]}), got {len(generators)}")
    scheduler = schedule.sampler(config.sampler, config.steps)
    masked = pre_latent is not None and change is not None and config.masked_steps > 0
    probe = torch.empty(0, device=device)
    x = randn(shape, generators, probe)
    timesteps = [int(t) for t in scheduler.timesteps]
    keep = None
    if masked:
        assert pre_latent is not None and change is not None
        keep = 1.0 - (change if change.ndim == 4 else change[:, None]).to(x)
        known = forward_noise(scheduler, pre_latent, randn(shape, generators, probe), timesteps[0])
        x = keep * known + (1 - keep) * x
    channels = shape[1]
    for i, t in enumerate(timesteps):
        t_batch = torch.full((shape[0],), t, device=device, dtype=torch.long)
        output = denoiser(x, t_batch)
        x = _step(scheduler, output, t, x, generators, config, channels)
        if keep is not None and i < config.masked_steps:
            assert pre_latent is not None
            if i + 1 < len(timesteps):
                noise = randn(shape, generators, probe)
                known = forward_noise(scheduler, pre_latent, noise, timesteps[i + 1])
            else:
                known = pre_latent.to(x)
            x = keep * known + (1 - keep) * x
            if trace is not None:
                trace(i, x, known)
    return x


def _step(
    scheduler: Scheduler,
    output: Tensor,
    t: int,
    x: Tensor,
    generators: Sequence[torch.Generator],
    config: SamplingConfig,
    channels: int,
) -> Tensor:
    """One scheduler step; its noise comes from the per-sample generators."""
    if isinstance(scheduler, DDIMScheduler):
        eps = output[:, :channels]
        noise = randn(x.shape, generators, x) if config.eta > 0 else None
        out = scheduler.step(eps, t, x, eta=config.eta, variance_noise=noise, return_dict=False)
    else:
        # diffusers draws the ancestral noise with randn_tensor, which takes one generator
        # per sample although step() is annotated with a single one
        gens: Any = list(generators)
        out = scheduler.step(output, t, x, generator=gens, return_dict=False)
    return cast(Tensor, out[0])
