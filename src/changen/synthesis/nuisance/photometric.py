"""Global and smooth-local photometric change: what another date's illumination, atmosphere and
radiometric processing do to the whole scene.

Images are float32 RGB in [0, 1]. At strength 1: brightness ±0.06, contrast and gamma ×/÷1.2,
white balance ×/÷1.06 per channel, saturation ×/÷1.2, hue ±6°, haze up to 12 % towards a grey-
blue airlight; the local fields vary brightness with σ 0.03 and colour with σ 2 % over a few
smooth cells across the image.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def _log_uniform(rng: np.random.Generator, factor: float, strength: float) -> float:
    return float(np.exp(rng.uniform(-1.0, 1.0) * np.log(factor) * strength))


def shift_hsv(image: np.ndarray, hue: float, saturation: float, value: float) -> np.ndarray:
    """``image`` with hue rotated by ``hue`` degrees, saturation and value scaled."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = np.mod(hsv[..., 0] + hue, 360.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * saturation, 0.0, 1.0)
    hsv[..., 2] = hsv[..., 2] * value
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def global_change(
    image: np.ndarray, rng: np.random.Generator, strength: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """Brightness, contrast, gamma, white balance, hue, saturation and haze, drawn once."""
    brightness = rng.uniform(-0.06, 0.06) * strength
    contrast = _log_uniform(rng, 1.2, strength)
    gamma = _log_uniform(rng, 1.2, strength)
    balance = [_log_uniform(rng, 1.06, strength) for _ in range(3)]
    saturation = _log_uniform(rng, 1.2, strength)
    hue = rng.uniform(-6.0, 6.0) * strength
    haze = rng.uniform(0.0, 0.12) * min(strength, 2.0)
    out = np.power(np.clip(image, 0.0, 1.0), gamma)
    mean = float(out.mean())
    out = (out - mean) * contrast + mean + brightness
    out = out * np.asarray(balance, np.float32)
    out = shift_hsv(np.clip(out, 0.0, 1.0).astype(np.float32), hue, saturation, 1.0)
    airlight = np.asarray([0.74, 0.77, 0.82], np.float32)
    out = out * (1.0 - haze) + airlight * haze
    p = {
        "brightness": brightness,
        "contrast": contrast,
        "gamma": gamma,
        "white_balance": balance,
        "saturation": saturation,
        "hue": hue,
        "haze": haze,
    }
    return out.astype(np.float32), _rounded(p)


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], channels: int, cells: int
) -> np.ndarray:
    """A (H, W, channels) field of unit-ish amplitude varying smoothly over ``cells`` cells."""
    grid = rng.standard_normal((cells + 1, cells + 1, channels)).astype(np.float32)
    field = cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return field.reshape(shape[0], shape[1], channels)


def local_change(
    image: np.ndarray, rng: np.random.Generator, strength: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """Smooth brightness and per-channel gain fields (uneven illumination, thin cloud)."""
    cells = int(rng.integers(2, 6))
    brightness = smooth_field(rng, image.shape[:2], 1, cells) * (0.03 * strength)
    gain = np.exp(smooth_field(rng, image.shape[:2], 3, cells) * (0.02 * strength))
    return (image * gain + brightness).astype(np.float32), {"cells": cells}


def _rounded(params: dict[str, Any]) -> dict[str, Any]:
    return {
        k: [round(float(x), 4) for x in v] if isinstance(v, list) else round(float(v), 4)
        for k, v in params.items()
    }
