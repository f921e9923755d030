"""Sensor and processing effects: optics (blur or over-sharpening), noise and JPEG compression.

At strength 1: half the images are blurred with σ between 0.3 and 1.0 px and the others sharpened
(unsharp mask, amount up to 0.6); Gaussian noise with σ up to 1.5 % of full scale; and half the
images are JPEG-compressed at quality 55–95. The output is uint8.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def sensor_effects(
    image: np.ndarray, rng: np.random.Generator, strength: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """``image`` (float32 RGB in [0, 1]) through blur/sharpening, noise, 8-bit quantisation and
    JPEG."""
    params: dict[str, Any] = {}
    soft = cv2.GaussianBlur(image, (0, 0), 1.0)
    if rng.random() < 0.5:
        sigma = rng.uniform(0.3, 1.0) * strength
        out = cv2.GaussianBlur(image, (0, 0), sigma)
        params["blur"] = round(sigma, 4)
    else:
        amount = rng.uniform(0.0, 0.6) * strength
        out = image + amount * (image - soft)
        params["sharpen"] = round(amount, 4)
    noise = rng.uniform(0.0, 0.015) * strength
    out = out + rng.standard_normal(out.shape, dtype=np.float32) * noise
    params["noise"] = round(noise, 5)
    pixels = to_uint8(out)
    if rng.random() < min(0.5 * strength, 1.0):
        quality = int(rng.integers(55, 96))
        ok, data = cv2.imencode(".jpg", pixels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            pixels = np.ascontiguousarray(decoded[..., ::-1])
            params["jpeg"] = quality
    return pixels.astype(np.float32) / 255.0, params


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] to uint8, rounded and clipped."""
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
