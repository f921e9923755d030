"""Band rules that turn any raster into the 3-band uint8 image models expect.

* **1 band** (panchromatic, grey): replicated to 3 bands.
* **2 bands**: grey + alpha (alpha is handled as below).
* **4 bands** from PNG/JPEG (RGBA): the 4th band is alpha; pixels with alpha 0 are no-data.
* **more bands** (multispectral GeoTIFF): the first three, unless ``bands`` chooses others
  (1-based, like GDAL), e.g. ``(4, 3, 2)`` for Sentinel-2 true colour.
* **uint16** (and other non-uint8): per-band percentile stretch, by default the 2nd–98th
  percentile of valid pixels mapped linearly to 0–255 and clipped. uint8 is never stretched.
"""

from __future__ import annotations

import numpy as np

from changen.errors import DataError

DEFAULT_STRETCH = (2.0, 98.0)


def stretch_to_uint8(
    image: np.ndarray,
    percentiles: tuple[float, float] = DEFAULT_STRETCH,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Linearly map each band's ``percentiles`` (of valid pixels) to 0..255, clipped."""
    if image.dtype == np.uint8:
        return image
    out = np.empty(image.shape, np.uint8)
    for b in range(image.shape[2]):
        band = image[..., b].astype(np.float32)
        values = band[valid] if valid is not None and valid.any() else band
        lo, hi = np.percentile(values, percentiles)
        out[..., b] = stretch_band(band, lo, hi)
    return out


def stretch_band(band: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """One band mapped linearly from ``lo``..``hi`` to 0..255 (clipped, rounded) as uint8.

    Split out so that a raster read window by window is stretched with whole-image ``lo``/``hi``.
    """
    scale = 255.0 / max(float(hi - lo), 1e-6)
    scaled = (band.astype(np.float32) - np.float64(lo)) * scale
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


def to_rgb8(
    image: np.ndarray,
    bands: tuple[int, ...] | None = None,
    stretch: tuple[float, float] = DEFAULT_STRETCH,
    has_alpha: bool | None = None,
    source: str = "<array>",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply the band rules above; returns the RGB uint8 image and a valid-pixel mask (or None).

    ``has_alpha`` says whether a 2nd/4th band is alpha; by default it is assumed for 2 and
    4 bands of uint8 data (PNG-style) and not for multispectral (uint16) rasters.
    """
    if image.ndim == 2:
        image = image[..., None]
    n = image.shape[2]
    valid = None
    if bands is not None:
        if any(not 1 <= b <= n for b in bands):
            raise DataError(f"{source}: bands {bands} requested but the raster has {n} band(s)")
        image = image[..., [b - 1 for b in bands]]
        n = image.shape[2]
    else:
        alpha = has_alpha if has_alpha is not None else (n in (2, 4) and image.dtype == np.uint8)
        if alpha and n in (2, 4):
            valid = image[..., -1] > 0
            image = image[..., :-1]
            n -= 1
        if n > 3:
            image = image[..., :3]
            n = 3
    if n == 1:
        image = np.repeat(image, 3, axis=2)
    elif n == 2:
        image = np.concatenate([image, image[..., :1]], axis=2)
    if image.dtype != np.uint8:
        image = stretch_to_uint8(image, stretch, valid)
    return np.ascontiguousarray(image), valid
