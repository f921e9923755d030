"""How strong each part of the nuisance model is: one number per component, 0 turns it off.

A strength of 1 is the ``default`` preset's range for that component (the ranges are in each
component's module); strengths scale those ranges, so 0.5 is half as far from the pre-event
acquisition and 0 skips the component entirely (the image is left byte-identical).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from changen.errors import ConfigError

COMPONENTS = (
    "shadows",
    "seasonal",
    "style",
    "photometric",
    "local",
    "misregistration",
    "sensor",
)
"""The components in the order they are applied (scene content first, the sensor last)."""


@dataclass(frozen=True, kw_only=True)
class NuisanceConfig:
    """Strength of each component (see :data:`COMPONENTS` and their modules):

    ``shadows`` cast shadows of created objects (one sun direction per image); ``seasonal``
    class-aware colour change of vegetation, bare soil and water; ``style`` colour statistics
    of a donor scene of the source (another acquisition); ``photometric`` global brightness,
    contrast, gamma, white balance, hue, saturation and haze; ``local`` smooth brightness and
    colour fields; ``misregistration`` sub-pixel to few-pixel shift, small rotation and scale of
    the post-event image (labels keep the pre-event geometry); ``sensor`` blur or sharpening,
    noise and JPEG compression."""

    shadows: float = 1.0
    seasonal: float = 1.0
    style: float = 1.0
    photometric: float = 1.0
    local: float = 1.0
    misregistration: float = 1.0
    sensor: float = 1.0

    def __post_init__(self) -> None:
        for name in COMPONENTS:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= 4:
                raise ConfigError(
                    f"nuisance {name}={value!r}: give a strength between 0 (off) and 4"
                )

    @property
    def active(self) -> bool:
        """Whether any component is on."""
        return any(getattr(self, name) > 0 for name in COMPONENTS)

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


PRESETS: dict[str, NuisanceConfig] = {
    "off": NuisanceConfig(**dict.fromkeys(COMPONENTS, 0.0)),
    "mild": NuisanceConfig(**dict.fromkeys(COMPONENTS, 0.5)),
    "default": NuisanceConfig(),
    "strong": NuisanceConfig(**dict.fromkeys(COMPONENTS, 2.0)),
}


def nuisance_config(spec: str | Path) -> NuisanceConfig:
    """A preset name of :data:`PRESETS` or a JSON file ``{"preset": "mild", "sensor": 0}``
    (every key optional; ``preset`` is the base, default ``default``)."""
    if str(spec) in PRESETS:
        return PRESETS[str(spec)]
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"--nuisance {spec}: not a preset ({', '.join(PRESETS)}) nor a JSON file")
    try:
        values: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a readable JSON nuisance config ({e})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a nuisance config is a JSON object of strengths")
    base = values.pop("preset", "default")
    if base not in PRESETS:
        raise ConfigError(f"{path}: preset {base!r} is not one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(NuisanceConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{path}: unknown nuisance keys {', '.join(unknown)}; use {', '.join(COMPONENTS)}"
        )
    return replace(PRESETS[base], **values)
