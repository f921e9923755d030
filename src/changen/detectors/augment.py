"""Bitemporal augmentations for change-detector training: shared geometry, independent colour.

Both dates of a pair and every label map that goes with them get **one** geometric plan of
:mod:`changen.data.augment` (scale jitter + crop, flips, 90° rotations, transpose; label
maps take nearest pixels), so they stay co-registered. Colour jitter (brightness, contrast,
saturation) is then drawn **independently** per date, as illumination differs between
acquisitions. Every draw comes from an explicit ``numpy.random.Generator`` in a fixed order,
so a sample's augmentation depends only on its generator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from changen.data.augment import AugmentConfig, apply_plan, draw_plan
from changen.errors import ConfigError, DataError

IGNORE = 255


@dataclass(frozen=True)
class PairAugmentConfig:
    """Training crop (a multiple of 32), scale jitter, dihedral transforms, colour jitter."""

    crop: int = 256
    scale: tuple[float, float] = (0.75, 1.25)
    dihedral: bool = True
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def __post_init__(self) -> None:
        if self.crop <= 0 or self.crop % 32:
            raise ConfigError(
                f"crop {self.crop} must be a positive multiple of 32 (detectors downsample x32)"
            )
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} jitter {getattr(self, name)} must lie in [0, 1)")
        self.geometry()  # validates the scale range

    def geometry(self) -> AugmentConfig:
        """The shared geometric part, as :mod:`changen.data.augment` draws it."""
        d = self.dihedral
        return AugmentConfig(size=self.crop, scale=self.scale, flip=d, rotate=d, transpose=d)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "scale": list(self.scale)}


def color_jitter(
    image: np.ndarray, rng: np.random.Generator, config: PairAugmentConfig
) -> np.ndarray:
    """Random brightness, contrast and saturation of a uint8 RGB image (3 draws, in order)."""
    b, c, s = (
        rng.uniform(1 - amount, 1 + amount)
        for amount in (config.brightness, config.contrast, config.saturation)
    )
    x = image.astype(np.float32) * b
    x = (x - x.mean()) * c + x.mean()
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = grey[..., None] + (x - grey[..., None]) * s
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def augment(
    rng: np.random.Generator,
    images: Mapping[str, np.ndarray],
    labels: Mapping[str, np.ndarray],
    config: PairAugmentConfig,
    source: str = "<sample>",
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One shared geometric plan for all ``images`` (HWC uint8) and ``labels`` (HW), then
    colour jitter per image (in the mapping's order, independently). All share one size."""
    shapes = {a.shape[:2] for a in [*images.values(), *labels.values()]}
    if len(shapes) != 1:
        raise DataError(f"{source}: the dates and labels differ in size: {sorted(shapes)}")
    h, w = shapes.pop()
    if min(h, w) < config.crop:
        raise DataError(
            f"{source}: image is {w}×{h}, smaller than the {config.crop}×{config.crop} "
            f"training crop; pass a smaller --crop (a multiple of 32 up to {min(h, w) // 32 * 32})"
        )
    plan = draw_plan((h, w), config.geometry(), rng, source)
    out_images = {
        k: color_jitter(apply_plan(v, plan, "image"), rng, config) for k, v in images.items()
    }
    out_labels = {k: apply_plan(v, plan, "labels") for k, v in labels.items()}
    return out_images, out_labels
