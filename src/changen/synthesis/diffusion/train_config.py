"""What a diffusion training run is: its config, the fields a resume may change, its network.

Kept apart from the loop (:mod:`changen.synthesis.diffusion.train`) so that the CLI can build
and check a config without importing Lightning.

Families. A family (:data:`changen.synthesis.diffusion.model.FAMILIES`) is a module with a
``PRESETS`` dict (name → network settings) beside its builder; a run's network config is its
preset's settings plus the three the data and the family decide: ``in_channels`` (the latent
space's), ``label_channels`` (the label encoding's) and ``learn_sigma`` (RS-DiT learns its
variance as DiT does; the latent UNet of ChangeAnywhere, family ``ldm``, predicts ε only and
builds its settings with :func:`changen.synthesis.diffusion.unet.preset_config`).
"""

from __future__ import annotations

import dataclasses
import importlib
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
from changen.synthesis.crops import UNLABELED_MODES
from changen.synthesis.diffusion.labels import ENCODINGS, LabelSpec
from changen.synthesis.diffusion.model import FAMILIES
from changen.synthesis.diffusion.schedule import ScheduleConfig

RUNTIME_FIELDS = (
    "steps",
    "run",
    "sample_every",
    "sample_steps",
    "fid_every",
    "fid_samples",
    "preview",
)
"""Fields a resumed run may change (``run`` but its precision); every other field is fixed by
the run's config.json."""

LEARN_SIGMA = {"rsdit": True, "ldm": False}
"""Whether a family learns its variance (iDDPM / DiT) by default."""

DEFAULT_PRESET = {"rsdit": "S/2", "ldm": "paper"}
"""A family's preset when none is given (else the first of its ``PRESETS``)."""

SMALL_PRESETS = ("tiny", "small")
"""Presets whose EMA decays faster by default (0.999: they train for few steps)."""


def default_run() -> RunConfig:
    """The diffusion run defaults: a checkpoint every 5000 steps, the newest 3 kept."""
    return RunConfig(save_every=5000, keep=3, log_every=10)


@dataclass(frozen=True)
class DiffusionTrainConfig:
    """Everything that defines a diffusion training run.

    Data: ``data`` (single-temporal scenes; a list of source-entry dicts is pooled, see
    :func:`~changen.data.readers.pooled.open_data_spec`), ``format``/``taxonomy`` (detected /
    the reader's),
    ``holdout`` (fraction never trained on; sample grids and FID use it), ``unlabeled``
    (``instances``/``slic``/``felzenszwalb``: Changen2's unlabeled mode, class-agnostic
    instances and a contour condition). Model: ``family`` and its ``preset``, ``labels``
    (encoding; None: ``contour`` when unlabeled, ``binary`` for a 2-class taxonomy, else
    ``onehot``), ``latent`` (``pixel``, a diffusers autoencoder folder or a
    ``changen train autoencoder`` run), ``learn_sigma`` (None: the family's).
    Optimisation: ``steps``, global ``batch_size``, AdamW ``lr``/``weight_decay`` (DiT:
    1e-4, 0), ``ema_decay`` (None: 0.9999, 0.999 for the tiny/small presets), ``size`` crop
    side, ``scale``/``flip``/``rotate``/``transpose`` augmentation, ``cache_latents`` (encode
    each item's crop once; see :mod:`changen.synthesis.diffusion.train`).
    Runtime (:data:`RUNTIME_FIELDS`): ``run``, sample grids of ``preview`` held-out masks
    every ``sample_every`` steps with ``sample_steps`` DDIM steps, FID/KID on ``fid_samples``
    held-out crops every ``fid_every`` steps (0: never).
    """

    data: str | list[dict[str, Any]]
    format: str | None = None
    taxonomy: str | None = None
    holdout: float = 0.1
    unlabeled: str | None = None
    family: str = "rsdit"
    preset: str | None = None
    labels: str | None = None
    latent: str = "pixel"
    learn_sigma: bool | None = None
    steps: int = 400_000
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    ema_decay: float | None = None
    size: int = 256
    scale: tuple[float, float] = (1.0, 1.0)
    flip: bool = True
    rotate: bool = True
    transpose: bool = True
    cache_latents: bool = False
    seed: int = 0
    run: RunConfig = dataclasses.field(default_factory=default_run)
    sample_every: int = 1000
    sample_steps: int = 25
    fid_every: int = 0
    fid_samples: int = 256
    preview: int = 4

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"--family {self.family!r}: choose one of {', '.join(FAMILIES)}")
        if self.unlabeled is not None and self.unlabeled not in UNLABELED_MODES:
            raise ConfigError(
                f"--unlabeled {self.unlabeled!r}: choose one of {', '.join(UNLABELED_MODES)}"
            )
        if self.labels is not None and self.labels not in ENCODINGS:
            raise ConfigError(f"--labels {self.labels!r}: choose one of {', '.join(ENCODINGS)}")
        for name in ("steps", "batch_size", "sample_steps", "fid_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("sample_every", "fid_every", "preview"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0 (0 disables it)")
        if self.size < 8 or self.size % 8:
            raise ConfigError(f"--size {self.size} must be a positive multiple of 8")
        if self.lr <= 0:
            raise ConfigError(f"--lr {self.lr} must be positive")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay={self.weight_decay} must be >= 0")
        if self.ema_decay is None:
            decay = 0.999 if self.preset in SMALL_PRESETS else 0.9999
            object.__setattr__(self, "ema_decay", decay)
        if not 0.0 <= self.decay < 1.0:
            raise ConfigError(f"--ema-decay {self.ema_decay} must be in [0, 1)")
        if self.learn_sigma is None:
            object.__setattr__(self, "learn_sigma", LEARN_SIGMA.get(self.family, False))
        _ = self.augment  # AugmentConfig checks the scale range
        presets = family_presets(self.family)
        if self.preset is None:
            default = DEFAULT_PRESET.get(self.family) or next(iter(presets), None)
            object.__setattr__(self, "preset", default)
        if self.preset not in presets:
            raise ConfigError(
                f"--preset {self.preset!r} is not a {self.family} preset; choose one of "
                f"{', '.join(presets) or 'none'}"
            )

    @property
    def decay(self) -> float:
        """The resolved EMA decay."""
        return float(self.ema_decay if self.ema_decay is not None else 0.9999)

    @property
    def augment(self) -> AugmentConfig:
        lo, hi = self.scale
        return AugmentConfig(self.size, (lo, hi), self.flip, self.rotate, self.transpose)

    def label_encoding(self, taxonomy: Taxonomy) -> str:
        """The label encoding of the run (see the class docstring)."""
        if self.labels is not None:
            return self.labels
        if self.unlabeled is not None:
            return "contour"
        return "binary" if taxonomy.num_classes == 2 else "onehot"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiffusionTrainConfig:
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown training config keys {unknown}; remove them")
        values: dict[str, Any] = {k: tuple(v) if k == "scale" else v for k, v in data.items()}
        if "run" in values:
            values["run"] = RunConfig.from_dict(values["run"])
        return cls(**values)


def family_presets(family: str) -> dict[str, dict[str, Any]]:
    """The ``PRESETS`` dict of a family's module."""
    module = importlib.import_module(FAMILIES[family].split(":")[0])
    presets: dict[str, dict[str, Any]] = getattr(module, "PRESETS", {})
    return presets


def network_config(
    config: DiffusionTrainConfig, in_channels: int, labels: LabelSpec
) -> dict[str, Any]:
    """The network settings of a run (see the module docstring); the ``ldm`` family's UNet
    also picks how its label map reaches the latent grid from the encoding
    (:func:`changen.synthesis.diffusion.unet.preset_config`)."""
    preset, learn_sigma = str(config.preset), bool(config.learn_sigma)
    if config.family == "ldm":
        from changen.synthesis.diffusion import unet

        return unet.preset_config(preset, labels, in_channels=in_channels, learn_sigma=learn_sigma)
    return {
        **family_presets(config.family)[preset],
        "in_channels": in_channels,
        "label_channels": labels.channels,
        "learn_sigma": learn_sigma,
    }


def network_stride(network: dict[str, Any]) -> int:
    """The side, in latent cells, that a network's input must be a multiple of: RS-DiT's
    patch, or the UNet's total downsampling (one halving per block but the last)."""
    if "patch_size" in network:
        return int(network["patch_size"])
    return 2 ** (len(network.get("block_out_channels", (1,))) - 1)


def schedule_config(config: DiffusionTrainConfig) -> ScheduleConfig:
    """The noise schedule of a run: DiT's (linear β 1e-4…0.02, 1000 steps), or latent
    diffusion's for the ``ldm`` family's ``paper`` preset."""
    if config.family == "ldm" and config.preset == "paper":
        from changen.synthesis.diffusion.unet import PAPER_SCHEDULE

        return dataclasses.replace(PAPER_SCHEDULE, learn_sigma=bool(config.learn_sigma))
    return ScheduleConfig(learn_sigma=bool(config.learn_sigma))


def resume_config(folder: Path, **overrides: Any) -> DiffusionTrainConfig:
    """The training config of the run in ``folder`` with the runtime fields in ``overrides``
    replaced (``run`` as a dict of the :class:`RunConfig` fields to change)."""
    fixed = sorted(k for k in overrides if k not in RUNTIME_FIELDS)
    if fixed:
        raise ConfigError(
            f"{', '.join(fixed)} cannot change when resuming (the run's config.json fixes "
            f"them); drop them, or start a new run"
        )
    saved = DiffusionTrainConfig.from_dict(load_config(latest_checkpoint(folder))["train"])
    if isinstance(overrides.get("run"), Mapping):
        overrides["run"] = dataclasses.replace(saved.run, **overrides["run"])
    config = dataclasses.replace(saved, **overrides)
    check_resume(config.to_dict(), saved.to_dict(), RUNTIME_FIELDS, folder)
    return config


def check_diffusion_resume(
    config: DiffusionTrainConfig, saved: DiffusionTrainConfig, where: Path
) -> None:
    """A resumed run may only change runtime fields (``labels`` None means the saved one)."""
    mine, theirs = config.to_dict(), saved.to_dict()
    if mine["labels"] is None:
        mine["labels"] = theirs["labels"]
    check_resume(mine, theirs, RUNTIME_FIELDS, where)
