"""Seeded noise fields that give the sample world its texture (float32, about unit scale).

Uniform draws are used throughout (several times cheaper than normal ones); blurring makes
them near-Gaussian where that matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_UNIT = np.float32(np.sqrt(12.0))  # scales U(-0.5, 0.5) to unit variance


def uniform_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean, unit-variance uniform noise."""
    noise = rng.random(shape, dtype=np.float32)
    noise -= np.float32(0.5)
    noise *= _UNIT
    return noise


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Band-limited noise: one random value per ``cell`` pixels, bicubic-upsampled."""
    grid = uniform_noise(rng, (height // cell + 2, width // cell + 2))
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


@dataclass(frozen=True)
class Textures:
    """``patch``: very low-frequency colour mixing; ``coarse``: brightness mottling;
    ``fine``: grain; ``shrub``: sparse dark speckles of bushes on open ground (0..1)."""

    patch: np.ndarray
    coarse: np.ndarray
    fine: np.ndarray
    shrub: np.ndarray


def make_textures(seed: int, height: int, width: int) -> Textures:
    rng = np.random.default_rng(seed)
    patch = smooth_noise(rng, height, width, 64)
    coarse = 0.7 * smooth_noise(rng, height, width, 40) + 0.5 * smooth_noise(rng, height, width, 10)
    fine: np.ndarray = cv2.GaussianBlur(uniform_noise(rng, (height, width)), (0, 0), 0.7)
    fine *= np.float32(2.2)
    density = rng.uniform(0.004, 0.02)
    spots = (rng.random((height, width), dtype=np.float32) < density).astype(np.float32)
    shrub: np.ndarray = cv2.GaussianBlur(spots, (0, 0), 1.0)
    shrub *= np.float32(4.0)
    return Textures(patch, coarse, fine, np.minimum(shrub, np.float32(1.0)))
