"""Masked change sampling: the post-event latent, guided by the pre-event one where nothing
changes.

From x_T ~ N(0, I) the sampler denoises under the post-event condition; during the first
``switch`` fraction of the steps it replaces, after each step, the unchanged region by the
forward-noised pre-event latent at the new noise level,

    x ← C ⊙ x + (1 − C) ⊙ q(z_pre, t_prev),    q(z, t) = √ᾱ_t · z + √(1 − ᾱ_t) · ε,

(x_T too), so changed regions are generated in the context of the pre-event scene while the
unchanged ones follow it. After the switch the whole latent is denoised freely, so unchanged
regions keep their layout but vary plausibly (illumination, phenology). ``switch = 1`` keeps
the unchanged region to the pre-event latent up to the last step, whose output there is z_pre
itself.

**ChangeAnywhere's two-phase sampling** (§2.4) is this sampler configured by
:meth:`SamplingConfig.from_two_phase`. Number the DDIM steps by the noise left: step k
(N ≥ k ≥ 1) denoises from the k-th of the N respaced timesteps counted from the clean end
(``scheduler.timesteps[N − k]``; step N starts at t = 999) and step 0 is the clean latent.
Sampling starts at step N_max (``start``): from x_T ~ N(0, I) when N_max = N, else from the
whole pre-event latent forward-noised to that level, q(z_pre, t), as in SDEdit (the paper
does not say what a run that starts below N starts from). Phase 1,
steps N_max → N_min: after each step Eq. 6 blends x = x̂ ⊙ Mask + q(z_pre, t) ⊙ (1 − Mask),
i.e. ``switch = (N_max − N_min) / N_max`` of the N_max steps run are masked. Phase 2, N_min → 0:
the whole latent is denoised freely under the post-event mask. N_min = 0 (the paper requires
N_min > 0) ends the unchanged region exactly on z_pre.

C is the change mask on the latent grid: a latent cell is changed when **any** pixel it covers
changed (max-pooling by the autoencoder's factor), so no changed pixel is left to the
pre-event content. Every random draw (x_T, ancestral noise, the forward noise of z_pre) comes
from one torch generator per sample, so a sample does not depend on its batch.
"""

from __future__ import annotations

import dataclasses
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
    fraction of the steps run (from the first) with the pre-event latent imposed on unchanged
    regions; ``eta`` DDIM's noise (0: deterministic given x_T); ``start`` the step sampling
    starts from (N_max, see the module; None: ``steps``, from pure noise)."""

    sampler: str = "ddim"
    steps: int = 50
    switch: float = 1.0
    eta: float = 0.0
    start: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.switch <= 1.0:
            raise ConfigError(f"switch={self.switch} must be within 0..1 (a fraction of steps)")
        if self.steps < 1:
            raise ConfigError(f"sampling steps={self.steps} must be at least 1")
        if self.start is not None and not 1 <= self.start <= self.steps:
            raise ConfigError(
                f"N_max={self.start} must be within 1..N={self.steps} (the sampling steps)"
            )

    @classmethod
    def from_two_phase(
        cls,
        steps: int,
        n_max: int | None = None,
        n_min: int = 0,
        *,
        sampler: str = "ddim",
        eta: float = 0.0,
    ) -> SamplingConfig:
        """ChangeAnywhere's N (``steps``), N_max (None: N) and N_min (see the module)."""
        top = steps if n_max is None else n_max
        if not 0 <= n_min <= top:
            raise ConfigError(f"N_min={n_min} must be within 0..N_max={top}")
        start = None if top == steps else top
        switch = (top - n_min) / top if top > 0 else 1.0
        return cls(sampler=sampler, steps=steps, switch=switch, eta=eta, start=start)

    @property
    def n_max(self) -> int:
        """The step sampling starts from: the number of steps run."""
        return self.steps if self.start is None else self.start

    @property
    def masked_steps(self) -> int:
        """Steps of phase 1 (N_max − N_min)."""
        return round(self.switch * self.n_max)

    @property
    def n_min(self) -> int:
        """The step from which the whole latent is denoised freely."""
        return self.n_max - self.masked_steps

    def to_dict(self) -> dict[str, Any]:
        """The fields, and ChangeAnywhere's N, N_max, N_min they amount to (provenance)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**fields, "two_phase": {"N": self.steps, "N_max": self.n_max, "N_min": self.n_min}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingConfig:
        """The config :meth:`to_dict` wrote (its ``two_phase`` summary is derived)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - {"two_phase"})
        if unknown:
            raise ConfigError(f"unknown sampling settings {unknown}; remove them")
        return cls(**{k: v for k, v in data.items() if k in names})


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
    see :func:`latent_change`) switch on masked change sampling (see the module docstring);
    a ``config.start`` below ``config.steps`` starts from the noised ``pre_latent``.
    ``trace(i, x, known)`` sees each masked step's blended latent and the noised pre-event
    latent blended in (tests use it).
    """
    if len(generators) != shape[0]:
        raise ConfigError(f"need one generator per sample ({shape[0]}), got {len(generators)}")
    partial = config.n_max < config.steps
    if partial and pre_latent is None:
        raise ConfigError(
            f"N_max={config.n_max} < N={config.steps} starts from the noised pre-event latent; "
            f"give pre_latent or start at N_max = N"
        )
    scheduler = schedule.sampler(config.sampler, config.steps)
    masked = pre_latent is not None and change is not None and config.masked_steps > 0
    probe = torch.empty(0, device=device)
    x = randn(shape, generators, probe)
    timesteps = [int(t) for t in scheduler.timesteps][config.steps - config.n_max :]
    keep = None
    if masked or partial:
        assert pre_latent is not None
        known = forward_noise(scheduler, pre_latent, randn(shape, generators, probe), timesteps[0])
        x = known if partial else x
    if masked:
        assert pre_latent is not None and change is not None
        keep = 1.0 - (change if change.ndim == 4 else change[:, None]).to(x)
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
