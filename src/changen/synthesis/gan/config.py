"""Frozen, JSON-round-trippable configurations of the Changen GAN and its presets.

Widths follow the Changen paper: the pre-event image encoder is a ResNet-18 U-Net whose
features ``f_t,i`` (i = 0..5) have ``512 / 2**i`` channels at ``h / 2**(5 - i)``; the decoder's
post-event features ``f_t+1,i`` have the same widths so that the masked transition layer can mix
them. The discriminator widths are those of OASIS. Presets are a plain dict; ``preset`` sets the
class count of a dataset.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

from changen.errors import ConfigError

NORMS = ("group", "batch")
MASKINGS = ("objects+changed", "objects", "none")
_LEGACY_KEYS = frozenset({"foreground_classes"})
_T = TypeVar("_T")


def _positive(name: str, values: tuple[int, ...], length: int) -> None:
    if len(values) != length or any(int(v) < 1 for v in values):
        raise ConfigError(
            f"{name}={values!r} must be {length} positive channel counts; fix the config"
        )


@dataclass(frozen=True)
class GeneratorConfig:
    """Changen generator: ResNet-18 U-Net encoder, masked transitions, SPADE-style decoder.

    ``use_encoder=False`` drops the encoder and transitions, leaving a P(I_t+1 | S_t+1) decoder
    (the OASIS+GPCM / SPADE+GPCM baselines). ``masking`` / ``destyling`` switch the two parts of
    the masked transition layer (the paper's ablations). ``norm`` is the parameter-free norm
    inside the spatially-adaptive normalisation ("group" as Changen, "batch" as SPADE/OASIS).
    ``ignore_index`` pixels are treated as background (class 0) for conditioning.

    ``masking`` names which pre-event positions the transition layers mask (their encoder
    features are replaced by the decoder's, so no pre-event content can leak into them):

    - ``"objects+changed"``: pixels whose S_t class is in ``object_classes`` (model ids, e.g.
      building) and pixels whose class differs between S_t and S_t+1. Unchanged land cover
      keeps its pre-event features, so the generator is guided by I_t wherever the scene stays.
    - ``"objects"``: only the ``object_classes`` pixels (the paper's building setting).
    - ``"none"``: nothing is masked (the paper's ablation "without Masking").

    ``mask_input`` also blanks I_t (to 0, mid-grey) at the masked pixels before the encoder, so
    that masked content cannot reach unmasked features through the encoder's receptive field.
    Configs written before ``masking`` was a rule (``masking`` a bool, ``foreground_classes``)
    load as :func:`legacy_masking` says.
    """

    num_classes: int = 2
    use_encoder: bool = True
    masking: str = "objects+changed"
    object_classes: tuple[int, ...] = ()
    mask_input: bool = True
    destyling: bool = True
    resnet_channels: tuple[int, ...] = (64, 128, 256, 512)
    feature_channels: tuple[int, ...] = (512, 256, 128, 64, 32, 16)
    z_dim: int = 64
    norm: str = "group"
    norm_groups: int = 32
    norm_hidden: int = 128
    ignore_index: int = 255

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ConfigError(f"num_classes={self.num_classes} must be at least 1")
        _positive("resnet_channels", self.resnet_channels, 4)
        _positive("feature_channels", self.feature_channels, 6)
        if self.use_encoder and self.feature_channels[0] != self.resnet_channels[3]:
            raise ConfigError(
                f"feature_channels[0]={self.feature_channels[0]} must equal the last ResNet "
                f"width resnet_channels[3]={self.resnet_channels[3]} (f_t,0 is that stage)"
            )
        if self.z_dim < 0:
            raise ConfigError(f"z_dim={self.z_dim} must be >= 0 (0 disables the noise input)")
        if self.norm not in NORMS:
            raise ConfigError(f"norm={self.norm!r} is unknown; use one of {NORMS}")
        if self.norm_groups < 1 or self.norm_hidden < 1:
            raise ConfigError("norm_groups and norm_hidden must be positive")
        if 0 <= self.ignore_index < self.num_classes:
            raise ConfigError(
                f"ignore_index={self.ignore_index} collides with a class id "
                f"(num_classes={self.num_classes}); pick an id outside 0..{self.num_classes - 1}"
            )
        if self.masking not in MASKINGS:
            raise ConfigError(
                f"masking={self.masking!r} is unknown; use one of {MASKINGS} "
                f"(a bool is only read from old config files)"
            )
        bad = [c for c in self.object_classes if not 0 <= c < self.num_classes]
        if bad:
            raise ConfigError(
                f"object_classes {bad} are outside 0..{self.num_classes - 1}; fix the config"
            )

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        return _from_dict(cls, legacy_masking(data))


def legacy_masking(data: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a generator config from before the masking rule into the current fields.

    Old files say ``"masking": true|false`` and ``"foreground_classes": [ids] | null``; the
    generator they describe masked the features of every pre-event class but 0 (or of the
    listed ids) and never blanked I_t. They load as ``masking="objects"`` with those ids as
    ``object_classes`` (``"none"`` when masking was off) and ``mask_input=False``, so an old
    checkpoint computes exactly what it was trained to compute.
    """
    if not isinstance(data.get("masking"), bool) and not _LEGACY_KEYS & set(data):
        return data
    new = {k: v for k, v in data.items() if k not in _LEGACY_KEYS}
    num_classes = int(data.get("num_classes", GeneratorConfig.num_classes))
    listed = data.get("foreground_classes")
    objects = range(1, num_classes) if listed is None else listed
    on = bool(data.get("masking", True))
    new.update(
        masking="objects" if on else "none",
        object_classes=list(objects) if on else [],
        mask_input=False,
    )
    return new


@dataclass(frozen=True)
class DiscriminatorConfig:
    """OASIS-style U-Net segmentation discriminator with N + 1 output channels.

    ``channels`` are the widths of the downsampling residual blocks (one per factor of 2);
    ``head_channels`` is the width of the last, full-resolution block before the 1×1 classifier.
    """

    num_classes: int = 2
    channels: tuple[int, ...] = (128, 128, 256, 256, 512, 512)
    head_channels: int = 64

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ConfigError(f"num_classes={self.num_classes} must be at least 1")
        if len(self.channels) < 2:
            raise ConfigError(f"channels={self.channels!r} needs at least 2 levels")
        _positive("channels", self.channels, len(self.channels))
        if self.head_channels < 1:
            raise ConfigError(f"head_channels={self.head_channels} must be positive")

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiscriminatorConfig:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class GanConfig:
    """A generator and a discriminator that agree on the class count."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self) -> None:
        if self.generator.num_classes != self.discriminator.num_classes:
            raise ConfigError(
                f"generator has {self.generator.num_classes} classes but discriminator has "
                f"{self.discriminator.num_classes}; give both the dataset's class count"
            )

    @property
    def num_classes(self) -> int:
        return self.generator.num_classes

    def to_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.to_dict(),
            "discriminator": self.discriminator.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GanConfig:
        parts = _object(data, "GAN config")
        unknown = set(parts) - {"generator", "discriminator"}
        if unknown:
            raise ConfigError(f"unknown GAN config keys {sorted(unknown)}; remove them")
        return cls(
            generator=GeneratorConfig.from_dict(_object(parts.get("generator", {}), "generator")),
            discriminator=DiscriminatorConfig.from_dict(
                _object(parts.get("discriminator", {}), "discriminator")
            ),
        )


def _object(data: Any, what: str) -> dict[str, Any]:
    """``data`` if it is a JSON object, else a :class:`ConfigError` naming ``what``."""
    if not isinstance(data, dict):
        raise ConfigError(f"the {what} must be a JSON object of fields, got {data!r}")
    return data


def _to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON-ready dict: tuples become lists."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()
    }


def _from_dict(cls: type[_T], data: dict[str, Any]) -> _T:
    """Inverse of ``_to_dict``; unknown keys, and values not of their field's type, are an
    error; lists become tuples."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(defaults)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {sorted(unknown)}; remove them")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    for key, value in values.items():
        if not _same_type(value, defaults[key]):
            raise ConfigError(
                f"{cls.__name__} {key}={value!r}: expected a value like {defaults[key]!r}"
            )
    return cls(**values)


def _same_type(value: Any, default: Any) -> bool:
    """Whether ``value`` has the type of its field's ``default`` (a tuple holds ints; a bool
    is no int)."""
    if isinstance(default, tuple):
        return isinstance(value, tuple) and all(type(v) is int for v in value)
    return type(value) is type(default)


_TINY_G = GeneratorConfig(
    resnet_channels=(8, 8, 16, 16),
    feature_channels=(16, 16, 8, 8, 8, 8),
    z_dim=4,
    norm_groups=4,
    norm_hidden=8,
)
_TINY_D = DiscriminatorConfig(channels=(8, 8, 16, 16, 16), head_channels=8)

PRESETS: dict[str, GanConfig] = {
    "changen": GanConfig(),
    "changen_no_destyle": GanConfig(generator=GeneratorConfig(destyling=False)),
    "changen_no_mask_destyle": GanConfig(
        generator=GeneratorConfig(masking="none", destyling=False)
    ),
    "oasis_gpcm": GanConfig(
        generator=GeneratorConfig(use_encoder=False, masking="none", destyling=False, norm="batch")
    ),
    "spade_gpcm": GanConfig(
        generator=GeneratorConfig(
            use_encoder=False, masking="none", destyling=False, norm="batch", z_dim=0
        )
    ),
    "tiny": GanConfig(generator=_TINY_G, discriminator=_TINY_D),
}
"""Paper configuration, its two ablations, the two baselines (OASIS with 3D noise, SPADE
without noise, both with batch-norm SPADE and no pre-event image), and test widths."""


def preset(
    name: str, num_classes: int | None = None, object_classes: tuple[int, ...] = ()
) -> GanConfig:
    """The preset ``name`` with the dataset's class count and object classes (model ids)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown GAN preset {name!r}; choose one of {sorted(PRESETS)}")
    config = PRESETS[name]
    n = config.num_classes if num_classes is None else num_classes
    return GanConfig(
        generator=dataclasses.replace(
            config.generator, num_classes=n, object_classes=tuple(object_classes)
        ),
        discriminator=dataclasses.replace(config.discriminator, num_classes=n),
    )
