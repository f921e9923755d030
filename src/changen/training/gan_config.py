"""What a Changen GAN training run is: its config, the fields a resume may change, its networks.

Kept apart from the loop (:mod:`changen.training.gan`) and the run folder
(:mod:`changen.training.gan_run`) so that both can use the config without importing each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from changen.errors import ConfigError
from changen.synthesis.gan import GanConfig, preset
from changen.synthesis.gan.generator import STRIDE
from changen.training.augment import AugmentConfig
from changen.training.gan_data import GAN_IGNORE

PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed"}
RUNTIME_FIELDS = (
    "steps",
    "accelerator",
    "devices",
    "num_nodes",
    "workers",
    "log_every",
    "sample_every",
    "save_every",
    "keep",
    "fid_every",
    "fid_samples",
    "preview",
)
"""Fields a resumed run may change; every other field is fixed by the run's config.json."""


@dataclass(frozen=True)
class GanTrainConfig:
    """Everything that defines a GAN training run.

    Data: ``data`` (any single-temporal dataset), ``format``/``taxonomy`` (detected / the
    reader's when None), ``holdout`` (fraction never trained on; previews and FID use it).
    Model: ``preset`` (see :data:`changen.synthesis.gan.PRESETS`), ``width`` (multiplies every
    channel count), or ``gan`` (a full ``GanConfig`` dict, overriding both);
    ``encoder_weights`` (a local ResNet-18 file). Class counts come from the data.
    Optimisation: ``steps``, global ``batch_size``, ``lr_g``/``lr_d``, ``betas``,
    ``ema_decay``, ``precision`` ("32" or "bf16"). Augmentation: ``size`` (crop, multiple of
    32), ``scale`` jitter, ``flip``/``rotate``/``transpose``. ``events``: a
    ``ChangeProcess`` dict (None: :func:`~changen.training.gan_data.default_process`; the
    resolved process is recorded).
    Runtime (see :data:`RUNTIME_FIELDS`): Fabric's ``accelerator``/``devices``/``num_nodes``,
    DataLoader ``workers``, and how often to log, draw samples, save (keeping ``keep``
    step checkpoints) and compute FID/KID on ``fid_samples`` held-out crops (0: never).
    """

    data: str
    format: str | None = None
    taxonomy: str | None = None
    holdout: float = 0.1
    preset: str = "changen"
    width: float = 1.0
    gan: dict[str, Any] | None = None
    encoder_weights: str | None = None
    steps: int = 100_000
    batch_size: int = 32
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    betas: tuple[float, float] = (0.0, 0.999)
    ema_decay: float = 0.999
    precision: str = "32"
    size: int = 256
    scale: tuple[float, float] = (0.75, 1.25)
    flip: bool = True
    rotate: bool = True
    transpose: bool = True
    events: dict[str, Any] | None = None
    seed: int = 0
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    workers: int = 0
    log_every: int = 10
    sample_every: int = 500
    save_every: int = 2000
    keep: int = 3
    fid_every: int = 0
    fid_samples: int = 256
    preview: int = 4

    def __post_init__(self) -> None:
        if self.size < STRIDE or self.size % STRIDE:
            fix = max(STRIDE, round(self.size / STRIDE) * STRIDE)
            raise ConfigError(
                f"--size {self.size} is not a multiple of {STRIDE} (the generator halves it "
                f"5 times); use e.g. --size {fix}"
            )
        positive = ("steps", "batch_size", "devices", "num_nodes", "log_every", "keep")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("sample_every", "save_every", "fid_every", "workers", "preview"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0 (0 disables it)")
        if self.lr_g <= 0 or self.lr_d <= 0 or self.width <= 0:
            raise ConfigError("lr_g, lr_d and width must be positive")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay={self.ema_decay} must be in [0, 1)")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r}: choose one of {list(PRECISIONS)}")
        AugmentConfig(self.size, tuple(self.scale), self.flip, self.rotate, self.transpose)

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    @property
    def augment(self) -> AugmentConfig:
        return AugmentConfig(self.size, tuple(self.scale), self.flip, self.rotate, self.transpose)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GanTrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown training config keys {sorted(unknown)}; remove them")
        return cls(**{k: tuple(v) if k in ("betas", "scale") else v for k, v in data.items()})


def scale_widths(config: GanConfig, factor: float) -> GanConfig:
    """Every channel count of ``config`` times ``factor`` (rounded, at least 1)."""

    def w(values: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(max(1, round(v * factor)) for v in values)

    g, d = config.generator, config.discriminator
    return GanConfig(
        generator=dataclasses.replace(
            g,
            resnet_channels=w(g.resnet_channels),
            feature_channels=w(g.feature_channels),
            norm_hidden=w((g.norm_hidden,))[0],
        ),
        discriminator=dataclasses.replace(
            d, channels=w(d.channels), head_channels=w((d.head_channels,))[0]
        ),
    )


def resolve_gan(config: GanTrainConfig, num_classes: int) -> GanConfig:
    """The network configuration of a run: preset (or ``gan``), widths, the data's classes."""
    base = GanConfig.from_dict(config.gan) if config.gan is not None else preset(config.preset)
    if config.width != 1.0:
        base = scale_widths(base, config.width)
    return GanConfig(
        generator=dataclasses.replace(
            base.generator, num_classes=num_classes, ignore_index=GAN_IGNORE
        ),
        discriminator=dataclasses.replace(base.discriminator, num_classes=num_classes),
    )
