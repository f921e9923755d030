"""What a Changen GAN training run is: its config, the fields a resume may change, its networks.

Kept apart from the loop (:mod:`changen.synthesis.gan.train`) so that the CLI can build and
check a config without importing Lightning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from changen.data.augment import AugmentConfig
from changen.engine.checkpoint import load_config
from changen.engine.config import RunConfig
from changen.engine.run import check_resume, latest_checkpoint
from changen.errors import ConfigError
from changen.sample import Taxonomy
from changen.synthesis.classes import model_object_classes
from changen.synthesis.gan import GanConfig, preset
from changen.synthesis.gan.generator import STRIDE
from changen.synthesis.gan.train_data import GAN_IGNORE

RUNTIME_FIELDS = ("steps", "run", "sample_every", "fid_every", "fid_samples", "preview")
"""Fields a resumed run may change (``run`` but its precision); every other field is fixed by
the run's config.json."""


def default_run() -> RunConfig:
    """The GAN's run defaults: a checkpoint every 2000 steps, the newest 3 kept."""
    return RunConfig(save_every=2000, keep=3, log_every=10)


@dataclass(frozen=True)
class GanTrainConfig:
    """Everything that defines a GAN training run.

    Data: ``data`` (any single-temporal dataset, or a list of source-entry dicts pooled as
    :func:`~changen.data.readers.pooled.open_data_spec` reads them), ``format``/``taxonomy``
    (detected / the reader's when None), ``split`` (one split of the dataset; all when None),
    ``holdout`` (fraction never trained on; previews and FID use it).
    Model: ``preset`` (see :data:`changen.synthesis.gan.PRESETS`), ``width`` (multiplies every
    channel count), or ``gan`` (a full ``GanConfig`` dict, overriding both);
    ``encoder_weights`` (a local ResNet-18 file). Class counts come from the data.
    Optimisation: ``steps``, global ``batch_size``, ``lr_g``/``lr_d``, ``betas``,
    ``ema_decay``. Augmentation: ``size`` (crop, multiple of
    32), ``scale`` jitter, ``flip``/``rotate``/``transpose``. ``events``: a
    ``ChangeProcess`` dict (None: :func:`~changen.events.policy.default_process`; the
    resolved process is recorded).
    Runtime (see :data:`RUNTIME_FIELDS`): ``run`` (devices, precision, workers, how often to
    log and save — :class:`~changen.engine.config.RunConfig`), and how often to draw samples
    and compute FID/KID on ``fid_samples`` held-out crops (0: never).
    """

    data: str | list[dict[str, Any]]
    format: str | None = None
    taxonomy: str | None = None
    split: str | None = None
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
    size: int = 256
    scale: tuple[float, float] = (0.75, 1.25)
    flip: bool = True
    rotate: bool = True
    transpose: bool = True
    events: dict[str, Any] | None = None
    seed: int = 0
    run: RunConfig = dataclasses.field(default_factory=default_run)
    sample_every: int = 500
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
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("sample_every", "fid_every", "preview"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0 (0 disables it)")
        if self.lr_g <= 0 or self.lr_d <= 0 or self.width <= 0:
            raise ConfigError("lr_g, lr_d and width must be positive")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay={self.ema_decay} must be in [0, 1)")
        _ = self.augment  # AugmentConfig checks the crop size and the scale range

    @property
    def augment(self) -> AugmentConfig:
        lo, hi = self.scale
        return AugmentConfig(self.size, (lo, hi), self.flip, self.rotate, self.transpose)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GanTrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown training config keys {sorted(unknown)}; remove them")
        values: dict[str, Any] = {
            k: tuple(v) if k in ("betas", "scale") else v for k, v in data.items()
        }
        if "run" in values:
            values["run"] = RunConfig.from_dict(values["run"])
        return cls(**values)


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


def resolve_gan(config: GanTrainConfig, taxonomy: Taxonomy) -> GanConfig:
    """The network configuration of a run: preset (or ``gan``), widths, the data's classes and
    (unless the ``gan`` config names them) its object classes, which the generator masks."""
    base = GanConfig.from_dict(config.gan) if config.gan is not None else preset(config.preset)
    if config.width != 1.0:
        base = scale_widths(base, config.width)
    num_classes = taxonomy.num_classes
    objects = base.generator.object_classes or model_object_classes(taxonomy)
    return GanConfig(
        generator=dataclasses.replace(
            base.generator,
            num_classes=num_classes,
            ignore_index=GAN_IGNORE,
            object_classes=objects,
        ),
        discriminator=dataclasses.replace(base.discriminator, num_classes=num_classes),
    )


def resume_config(folder: Path, **overrides: Any) -> GanTrainConfig:
    """The training config of the run in ``folder`` with the runtime fields in ``overrides``
    replaced (``run`` as a dict of the :class:`RunConfig` fields to change)."""
    fixed = sorted(k for k in overrides if k not in RUNTIME_FIELDS)
    if fixed:
        raise ConfigError(
            f"{', '.join(fixed)} cannot change when resuming (the run's config.json fixes "
            f"them); drop them, or start a new run"
        )
    saved = GanTrainConfig.from_dict(load_config(latest_checkpoint(folder))["train"])
    if isinstance(overrides.get("run"), Mapping):
        overrides["run"] = dataclasses.replace(saved.run, **overrides["run"])
    config = dataclasses.replace(saved, **overrides)
    check_resume(config.to_dict(), saved.to_dict(), RUNTIME_FIELDS, folder)
    return config


def check_gan_resume(config: GanTrainConfig, saved: GanTrainConfig, where: Path) -> None:
    """A resumed run may only change runtime fields (``events`` None means the saved one)."""
    mine, theirs = config.to_dict(), saved.to_dict()
    if mine["events"] is None:
        mine["events"] = theirs["events"]
    check_resume(mine, theirs, RUNTIME_FIELDS, where)
