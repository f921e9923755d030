"""Misregistration: the post-event image is shifted, rotated and scaled a little, as two
acquisitions never co-register exactly.

**Labels keep the pre-event geometry.** Masks and change labels are not warped: like the
annotation of a real co-registered pair, they are drawn on the t1 grid, and the t2 image is
off by up to the drawn shift (at strength 1: up to 1.5 px in any direction, ±0.3° about the
image centre, ±0.4 % scale). Warping the t2 labels instead would mark every unchanged object's
border as change. The affine matrix is recorded so the t2 image can be re-aligned.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def misregistration_matrix(
    rng: np.random.Generator, shape: tuple[int, int], strength: float
) -> np.ndarray:
    """The (2, 3) affine matrix of one draw: t1 pixel → t2 pixel."""
    radius = 1.5 * strength * np.sqrt(rng.random())
    theta = rng.uniform(0.0, 2.0 * np.pi)
    angle = rng.uniform(-0.3, 0.3) * strength
    scale = 1.0 + rng.uniform(-0.004, 0.004) * strength
    centre = ((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    matrix[:, 2] += (radius * np.cos(theta), radius * np.sin(theta))
    return matrix


def misregister(
    image: np.ndarray, rng: np.random.Generator, strength: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """``image`` warped by a drawn matrix (bilinear; borders reflected, so no black edge)."""
    h, w = image.shape[:2]
    matrix = misregistration_matrix(rng, (h, w), strength)
    out = cv2.warpAffine(
        image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    return out, {"affine": [round(float(x), 5) for x in matrix.ravel()]}
