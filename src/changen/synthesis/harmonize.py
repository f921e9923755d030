"""Colour harmonisation of a pasted object to its new surroundings (used by :mod:`.copy_paste`).

A copied object carries the illumination of where it came from; pasted elsewhere unchanged it
stands out by its colour statistics and its seam. Two learning-free remedies, both driven by
the *difference of surroundings* (a ring of t1 pixels around the source object versus one
around the destination), so a red roof stays a red roof but takes the local light:

- ``"stats"``: Reinhard-style statistics transfer in Lab. Per channel, the affine map that
  takes the source ring's mean and std to the destination ring's (the gain clamped to
  :data:`GAIN_RANGE`, so a ring of flat ground does not blow up the object's contrast) is
  applied to the object's pixels.
- ``"poisson"``: gradient-domain blending (``cv2.seamlessClone``, ``NORMAL_CLONE``, in Lab
  so offsets are perceptual rather than RGB-additive) of the object into the destination
  canvas, the object's old surroundings stood in by the source ring's mean colour: the object
  keeps its own gradients and its edge contrast, while the offset to the new surroundings
  varies smoothly along its rim (no seam). The canvas is mirrored past the image border, so
  objects touching it blend too; an object whose bbox is thinner than
  :data:`POISSON_MIN_SIDE` falls back to ``"stats"``, as does any OpenCV error.

``"none"`` leaves the pixels as they are.
"""

from __future__ import annotations

import cv2
import numpy as np

from changen.events.regions import Region

HARMONIZE = ("none", "stats", "poisson")
RING = 6
"""Width in pixels of the ring of surroundings whose statistics are compared."""
MIN_RING = 16
"""Fewest ring pixels off other objects for the ring to leave objects out."""
GAIN_RANGE = (2.0 / 3.0, 1.5)
"""Clamp of the per-channel std ratio of ``"stats"``."""
POISSON_MIN_SIDE = 8
"""Smallest bbox side (pixels) of an object ``"poisson"`` blends; smaller ones use stats."""
# cv2.seamlessClone erodes its mask 3 times (3x3); the mask is dilated once more, so the
# object's rim gradients (to its stand-in surroundings) come from the source
_ERODE = 3
_PAD = _ERODE + 3  # margin around the dilated mask, past the border pixel OpenCV zeroes


def ring(image: np.ndarray, region: Region, objects: np.ndarray, width: int = RING) -> np.ndarray:
    """The (n, 3) pixels of ``image`` within ``width`` pixels outside ``region`` (clipped to
    the image), those of other ``objects`` (bool map) left out so neighbours do not count as
    surroundings — unless fewer than :data:`MIN_RING` pixels would remain."""
    big_h, big_w = image.shape[:2]
    h, w = region.footprint.shape
    y0, x0 = max(region.y0 - width, 0), max(region.x0 - width, 0)
    y1, x1 = min(region.y0 + h + width, big_h), min(region.x0 + w + width, big_w)
    win = np.zeros((y1 - y0, x1 - x0), np.uint8)
    win[region.y0 - y0 : region.y0 - y0 + h, region.x0 - x0 : region.x0 - x0 + w] = region.footprint
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    around = cv2.dilate(win, kernel).astype(bool) & ~win.astype(bool)
    free = around & ~objects[y0:y1, x0:x1]
    return image[y0:y1, x0:x1][free if np.count_nonzero(free) >= MIN_RING else around]


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB pixels (any leading shape, last axis 3) as float32 Lab (L in 0..100)."""
    flat = np.ascontiguousarray(rgb.reshape(-1, 1, 3), np.float32) / np.float32(255.0)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2LAB).reshape(rgb.shape)


def from_lab(lab: np.ndarray) -> np.ndarray:
    """float32 Lab pixels back to uint8 RGB (out-of-gamut values clipped)."""
    flat = np.ascontiguousarray(lab.reshape(-1, 1, 3), np.float32)
    rgb = cv2.cvtColor(flat, cv2.COLOR_LAB2RGB).reshape(lab.shape)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def stats_transfer(
    pixels: np.ndarray, source_ring: np.ndarray, dest_ring: np.ndarray
) -> np.ndarray:
    """``pixels`` (..., 3) uint8 mapped per Lab channel by the affine map taking the source
    ring's mean/std to the destination ring's (unchanged when a ring is empty)."""
    if source_ring.size == 0 or dest_ring.size == 0:
        return pixels
    src, dst = to_lab(source_ring), to_lab(dest_ring)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    gain = np.clip(dst.std(axis=0) / np.maximum(src.std(axis=0), 1e-3), *GAIN_RANGE)
    return from_lab((to_lab(pixels) - mu_s) * gain.astype(np.float32) + mu_d)


def poisson_blend(
    canvas: np.ndarray, region: Region, pixels: np.ndarray, source_ring: np.ndarray
) -> np.ndarray | None:
    """``pixels`` (h, w, 3) of ``region`` blended in the gradient domain into ``canvas``
    (H, W, 3) uint8, the object's old surroundings stood in by ``source_ring``'s mean colour;
    None when the object is too small or thin for it or OpenCV fails."""
    fp = region.footprint.view(np.uint8)
    h, w = fp.shape
    if min(h, w) < POISSON_MIN_SIDE or source_ring.size == 0:
        return None
    big_h, big_w = canvas.shape[:2]
    y0, x0, y1, x1 = region.y0 - _PAD, region.x0 - _PAD, region.y0 + h + _PAD, region.x0 + w + _PAD
    cy0, cx0 = max(y0, 0), max(x0, 0)
    crop = canvas[cy0 : min(y1, big_h), cx0 : min(x1, big_w)]
    hole = np.zeros(crop.shape[:2], np.uint8)
    hole[region.y0 - cy0 : region.y0 - cy0 + h, region.x0 - cx0 : region.x0 - cx0 + w] = fp
    # what lies under the object must not leak into the boundary, nor be mirrored past the
    # image border: the destination is the canvas with the footprint inpainted
    ground = cv2.inpaint(np.ascontiguousarray(crop), hole, 3, cv2.INPAINT_TELEA)
    border = (cy0 - y0, max(y1 - big_h, 0), cx0 - x0, max(x1 - big_w, 0))
    dst = cv2.copyMakeBorder(ground, *border, cv2.BORDER_REFLECT_101)
    inner = slice(_PAD, _PAD + h), slice(_PAD, _PAD + w)
    mask = np.zeros(dst.shape[:2], np.uint8)
    mask[inner] = fp * 255
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=_ERODE + 1)
    src = np.empty_like(dst)
    src[:] = np.rint(source_ring.mean(axis=0)).astype(np.uint8)
    src[inner][region.footprint] = pixels[region.footprint]
    bx, by, bw, bh = cv2.boundingRect(mask)
    lab_src, lab_dst = (cv2.cvtColor(a, cv2.COLOR_RGB2LAB) for a in (src, dst))
    try:
        out = cv2.seamlessClone(
            lab_src, lab_dst, mask, (bx + bw // 2, by + bh // 2), cv2.NORMAL_CLONE
        )
    except cv2.error:
        return None
    return cv2.cvtColor(np.ascontiguousarray(out[inner]), cv2.COLOR_LAB2RGB)
