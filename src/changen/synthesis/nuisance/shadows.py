"""Shadows of created objects, all cast in the one sun direction of the image.

Real new buildings come with a shadow; pasted or generated ones do not, which is a cue a
detector should not learn. Each created object's footprint is shifted along the image's sun
azimuth by a length proportional to the objects' typical size (at strength 1: 20–50 % of the
median equivalent diameter), and the pixels it then covers outside created objects are
darkened by 35–55 % with a slight blue cast (skylight), with a soft one-pixel edge. The shadow
lies outside the change label, as annotators leave shadows out.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def cast_shadows(
    image: np.ndarray, created: np.ndarray, rng: np.random.Generator, strength: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """``image`` with the shadows of the ``created`` (H, W) bool pixels."""
    azimuth = rng.uniform(0.0, 2.0 * np.pi)
    darkness = min(0.9, rng.uniform(0.35, 0.55) * strength)
    length_factor = rng.uniform(0.2, 0.5) * strength
    if not created.any():
        return image, {}
    count, _, stats, _ = cv2.connectedComponentsWithStats(created.astype(np.uint8), connectivity=8)
    diameter = float(np.median(np.sqrt(stats[1:, cv2.CC_STAT_AREA])))
    length = length_factor * diameter
    dx, dy = float(length * np.cos(azimuth)), float(length * np.sin(azimuth))
    h, w = created.shape
    shift = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], np.float32)
    cast = cv2.warpAffine(created.astype(np.float32), shift, (w, h), flags=cv2.INTER_LINEAR)
    alpha = cv2.GaussianBlur(cast, (0, 0), 0.8) * (~created)
    tint = np.asarray([1.0, 1.0, 1.12], np.float32)
    shade = np.clip(1.0 - darkness * alpha[..., None] * (2.0 - tint), 0.0, 1.0)
    params = {
        "azimuth_deg": round(float(np.degrees(azimuth)), 2),
        "length_px": round(length, 2),
        "darkness": round(darkness, 4),
        "objects": count - 1,
    }
    return (image * shade).astype(np.float32), params
