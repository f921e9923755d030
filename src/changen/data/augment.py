"""Geometric training augmentations applied identically to an image and its label maps.

The Changen paper trains its generator with random flip, rotation, transpose, scale jitter and
256×256 crops. An :class:`AugmentPlan` is drawn once per sample from its
``numpy.random.Generator`` and then applied to every layer of the sample, so the image, the
semantic mask and the instance map stay pixel-aligned:

1. **scale jitter + crop**: a window of ``size / scale`` pixels is cut from the source and
   resized to ``size`` (the same as resizing the whole image by ``scale`` and cropping
   ``size``, at a fraction of the cost on large tiles). Images are resized with area
   interpolation when shrinking and bilinear when enlarging; label maps take the
   centre-aligned nearest source pixel, so no new class or instance ids appear and label
   edges fall where the image edges do.
2. **dihedral transform**: left-right and up-down flips, a 90°·k rotation and a transpose,
   all lossless.

Scale factors below ``size / min(h, w)`` would need pixels outside the image; they are raised
to that bound. An image smaller than ``size`` on either side is a :class:`DataError` (choose a
smaller ``size``): padding would feed the discriminator borders that no real image has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from changen.errors import ConfigError, DataError

Kind = Literal["image", "labels"]


@dataclass(frozen=True)
class AugmentConfig:
    """Crop ``size``, scale-jitter range and which dihedral transforms are drawn."""

    size: int = 256
    scale: tuple[float, float] = (0.75, 1.25)
    flip: bool = True
    rotate: bool = True
    transpose: bool = True

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"crop size {self.size} must be positive")
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise ConfigError(f"scale jitter {self.scale} must satisfy 0 < low <= high")

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "scale": list(self.scale),
            "flip": self.flip,
            "rotate": self.rotate,
            "transpose": self.transpose,
        }


@dataclass(frozen=True)
class AugmentPlan:
    """One draw: source window ``(y0, x0, side)``, output ``size`` and the dihedral transform."""

    y0: int
    x0: int
    side: int
    size: int
    hflip: bool = False
    vflip: bool = False
    rot90: int = 0
    transpose: bool = False


def draw_plan(
    shape: tuple[int, int],
    config: AugmentConfig,
    rng: np.random.Generator,
    source: str = "<image>",
) -> AugmentPlan:
    """Draw a random plan for an image of ``shape`` (h, w)."""
    h, w = shape
    size = config.size
    check_size(shape, size, source)
    lo, hi = config.scale
    scale = max(float(rng.uniform(lo, hi)), size / min(h, w))
    side = min(max(round(size / scale), 1), h, w)
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    return AugmentPlan(
        y0,
        x0,
        side,
        size,
        hflip=config.flip and bool(rng.random() < 0.5),
        vflip=config.flip and bool(rng.random() < 0.5),
        rot90=int(rng.integers(0, 4)) if config.rotate else 0,
        transpose=config.transpose and bool(rng.random() < 0.5),
    )


def center_plan(shape: tuple[int, int], size: int, source: str = "<image>") -> AugmentPlan:
    """The deterministic plan of evaluation: a central ``size`` crop at scale 1, no transform."""
    h, w = shape
    check_size(shape, size, source)
    return AugmentPlan((h - size) // 2, (w - size) // 2, size, size)


def check_size(shape: tuple[int, int], size: int, source: str) -> None:
    """Raise :class:`DataError` when an image of ``shape`` cannot give a ``size`` crop."""
    h, w = shape
    if h < size or w < size:
        raise DataError(
            f"{source}: image is {w}×{h}, smaller than the {size}×{size} training crop; "
            f"pass a smaller --size (a multiple of 32 up to {min(h, w) // 32 * 32})"
        )


def apply_plan(array: np.ndarray, plan: AugmentPlan, kind: Kind) -> np.ndarray:
    """Apply ``plan`` to an HW or HWC array: ``kind="image"`` interpolates, ``"labels"`` takes
    nearest pixels (any dtype)."""
    window = array[plan.y0 : plan.y0 + plan.side, plan.x0 : plan.x0 + plan.side]
    if plan.side != plan.size:
        resize = _resize_image if kind == "image" else _resize_labels
        window = resize(window, plan.size)
    out = window
    if plan.hflip:
        out = out[:, ::-1]
    if plan.vflip:
        out = out[::-1]
    if plan.rot90:
        out = np.rot90(out, plan.rot90, axes=(0, 1))
    if plan.transpose:
        out = out.swapaxes(0, 1)
    return np.ascontiguousarray(out)


def _resize_image(window: np.ndarray, size: int) -> np.ndarray:
    interpolation = cv2.INTER_AREA if window.shape[0] > size else cv2.INTER_LINEAR
    out = cv2.resize(window, (size, size), interpolation=interpolation)
    return out.reshape(size, size, *window.shape[2:])


def _resize_labels(window: np.ndarray, size: int) -> np.ndarray:
    """Centre-aligned nearest neighbour: output pixel i reads source floor((i + 0.5) · s)."""
    side = window.shape[0]
    idx = np.minimum(((np.arange(size) + 0.5) * (side / size)).astype(np.intp), side - 1)
    return window[idx[:, None], idx[None, :]]
