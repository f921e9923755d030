"""Typed settings of the procedural sample world: what a scene holds and how a pair changes."""

from __future__ import annotations

from dataclasses import dataclass, fields

from changen.errors import ConfigError

Range = tuple[int, int]
FloatRange = tuple[float, float]


def _check_range(owner: str, name: str, value: tuple[float, float], low: float = 0.0) -> None:
    lo, hi = value
    if not low <= lo <= hi:
        raise ConfigError(
            f"{owner}.{name}={value!r}: expected (low, high) with {low} <= low <= high; "
            f"fix the range"
        )


@dataclass(frozen=True)
class WorldConfig:
    """What one procedural scene contains.

    Object counts are per 256×256 pixels and scale with the scene's area (roads with its side),
    so a 512² scene holds about four times the buildings of a 256² one. Sizes are in pixels at
    about 0.5 m ground sampling distance. Buildings keep at least ``building_gap`` pixels of
    open ground between them and never touch, so connected components separate them. Each
    scene draws an "urbanity" in [0, 1] that moves the counts between their bounds (dense
    suburb ↔ fields and woods).
    """

    size: int = 256
    buildings: Range = (0, 18)
    building_size: FloatRange = (12.0, 30.0)
    building_gap: float = 3.0
    roads: Range = (0, 3)
    fields: Range = (0, 5)
    bare_patches: Range = (0, 3)
    lots: Range = (0, 2)
    tree_density: float = 0.12
    water_probability: float = 0.25
    cars: bool = True
    texture: float = 1.0
    sensor_noise: float = 2.0

    def __post_init__(self) -> None:
        if not 32 <= self.size <= 8192:
            raise ConfigError(f"WorldConfig.size={self.size}: must be 32..8192 pixels")
        for name in ("buildings", "building_size", "roads", "fields", "bare_patches", "lots"):
            _check_range("WorldConfig", name, getattr(self, name))
        if self.building_size[0] < 4:
            raise ConfigError(
                f"WorldConfig.building_size={self.building_size}: "
                f"buildings need at least 4 px per side"
            )
        for name in ("tree_density", "water_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"WorldConfig.{name}={value}: must be a fraction in [0, 1]")
        for name in ("building_gap", "texture", "sensor_noise"):
            if getattr(self, name) < 0:
                raise ConfigError(f"WorldConfig.{name}={getattr(self, name)}: must be >= 0")

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ChangeConfig:
    """How the second date of a change pair differs from the first.

    Semantic edits (``add``, ``remove``, ``reclass``: counts per 256² pixels, scaled with area)
    change the labels. Nuisances change only the image: a global ``gain``/``gamma`` and
    per-channel white balance, a vegetation ``season`` tint, a new sun azimuth (``sun_jitter``
    degrees, moving every shadow), re-sown crops, other cars, fresh sensor noise and an integer
    registration shift of up to ``max_shift`` pixels of the t2 image.
    """

    add: Range = (1, 4)
    remove: Range = (0, 2)
    reclass: Range = (0, 2)
    max_shift: int = 2
    gain: FloatRange = (0.88, 1.12)
    gamma: FloatRange = (0.9, 1.1)
    white_balance: float = 0.04
    season: float = 0.4
    sun_jitter: float = 30.0
    recrop_probability: float = 0.3

    def __post_init__(self) -> None:
        for name in ("add", "remove", "reclass"):
            _check_range("ChangeConfig", name, getattr(self, name))
        for name in ("gain", "gamma"):
            _check_range("ChangeConfig", name, getattr(self, name), low=0.1)
        if self.max_shift < 0:
            raise ConfigError(f"ChangeConfig.max_shift={self.max_shift}: must be >= 0 pixels")
        if not 0.0 <= self.recrop_probability <= 1.0:
            raise ConfigError(
                f"ChangeConfig.recrop_probability={self.recrop_probability}: "
                f"must be a fraction in [0, 1]"
            )
        for name in ("white_balance", "season", "sun_jitter"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ChangeConfig.{name}={getattr(self, name)}: must be >= 0")
        if self.add[1] + self.remove[1] + self.reclass[1] == 0:
            raise ConfigError(
                "ChangeConfig: add, remove and reclass are all (0, 0); "
                "allow at least one edit so the pair has a change"
            )

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
