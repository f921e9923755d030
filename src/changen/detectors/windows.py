"""The window plan of sliding-window prediction, and image pairs read window by window.

**Plan.** :func:`plan_windows` lays windows of ``tile`` pixels (rounded up to the model's
multiple of 32, and never larger than the image) over the scene with
:func:`changen.data.tiling.tile_windows`, so that neighbours overlap by at least ``overlap``.
Each window *keeps* only its centre: overlapping neighbours split their shared band at its
middle, so every pixel comes from exactly one window, at least ``overlap // 2`` pixels away
from that window's inner edges. The kept regions tile the image: the result is written
window by window without seams and without a whole-image buffer. All windows have one size,
so they batch.

**Pairs.** A :class:`PairSource` gives both dates of a window as uint8 RGB (the band rules
of :mod:`changen.data.bands`, applied exactly as :func:`~changen.data.readers.change_folders.
load_image` applies them to the whole image; both dates must have as many colour bands):

* :class:`RasterPair` reads two GeoTIFFs window by window with rasterio (memory does not grow
  with the scene). A non-uint8 raster is stretched with whole-image percentiles: for 8- and
  16-bit integers from a per-band histogram gathered in a first windowed pass (exactly
  :func:`numpy.percentile`'s values), for wider or float rasters from a decimated read of at
  most :data:`SAMPLE_PIXELS` pixels per band (an approximation).
* :class:`ArrayPair` serves two in-memory arrays: PNG and JPEG cannot be read by window (their
  rows are compressed as one stream), and images in those formats are small anyway.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from changen.data.bands import DEFAULT_STRETCH, stretch_band, to_rgb8
from changen.data.imageio import read_image
from changen.data.raster import raster_info, read_raster
from changen.data.tiling import tile_windows, window_slices
from changen.errors import ConfigError, DataError
from changen.sample import GeoRef

MULTIPLE = 32
"""Window sides are multiples of this (the detectors' total stride), padded when the image is
smaller."""
SAMPLE_PIXELS = 2048 * 2048
"""At most this many pixels per band estimate the stretch of a float or 32-bit raster."""
TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class Piece:
    """One window of the plan: ``read`` goes through the model, ``keep`` (inside it) is kept."""

    read: Window
    keep: Window

    def crop(self, result: np.ndarray) -> np.ndarray:
        """The ``keep`` part of a result computed on ``read`` (HW or HWC, unpadded)."""
        r = int(self.keep.row_off - self.read.row_off)
        c = int(self.keep.col_off - self.read.col_off)
        return result[r : r + int(self.keep.height), c : c + int(self.keep.width)]


def _keep_bounds(offsets: list[int], size: int, length: int) -> list[tuple[int, int]]:
    """Per window along one axis, the kept interval: overlaps are split at their middle."""
    cuts = [(prev + size + nxt) // 2 for prev, nxt in pairwise(offsets)]
    starts, ends = [0, *cuts], [*cuts, length]
    return list(zip(starts, ends, strict=True))


def plan_windows(
    height: int, width: int, tile: int = 512, overlap: int = 64, multiple: int = MULTIPLE
) -> list[Piece]:
    """The windows (row-major) of a ``height``×``width`` scene; see the module docstring."""
    if tile <= 0:
        raise ConfigError(f"tile size {tile} must be positive")
    side = math.ceil(tile / multiple) * multiple
    if not 0 <= overlap < side:
        raise ConfigError(f"overlap {overlap} must be >= 0 and smaller than the tile ({side} px)")
    size = (min(side, height), min(side, width))
    # Along an axis no longer than a window there is one window, so nothing overlaps.
    overlaps = (overlap if height > side else 0, overlap if width > side else 0)
    windows = tile_windows(height, width, size, overlaps)
    rows = sorted({int(w.row_off) for w in windows})
    cols = sorted({int(w.col_off) for w in windows})
    keep_rows = dict(zip(rows, _keep_bounds(rows, size[0], height), strict=True))
    keep_cols = dict(zip(cols, _keep_bounds(cols, size[1], width), strict=True))
    pieces = []
    for w in windows:
        (r0, r1), (c0, c1) = keep_rows[int(w.row_off)], keep_cols[int(w.col_off)]
        pieces.append(Piece(w, Window(c0, r0, c1 - c0, r1 - r0)))
    return pieces


class PairSource(Protocol):
    """Both dates of a scene, served window by window as uint8 RGB."""

    height: int
    width: int
    georef: GeoRef | None

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """The t1 and t2 pixels of ``window`` (HWC uint8 RGB each)."""
        ...


@dataclass
class ArrayPair:
    """Two in-memory uint8 RGB images of one size (and the t1 georeference, if any)."""

    t1: np.ndarray
    t2: np.ndarray
    georef: GeoRef | None = None

    def __post_init__(self) -> None:
        if self.t1.shape != self.t2.shape or self.t1.ndim != 3 or self.t1.shape[2] != 3:
            raise DataError(
                f"the two dates must be RGB images of one size, got {self.t1.shape} "
                f"and {self.t2.shape}"
            )
        self.height, self.width = self.t1.shape[:2]

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        sl = window_slices(window)
        return self.t1[sl], self.t2[sl]


@dataclass(frozen=True)
class _BandPlan:
    """How one GeoTIFF becomes RGB: the bands read, and each one's stretch (None for uint8)."""

    path: Path
    bands: tuple[int, ...]
    ranges: tuple[tuple[float, float], ...] | None

    def read(self, window: Window) -> np.ndarray:
        raw, _ = read_raster(self.path, self.bands, window)
        if self.ranges is not None:
            raw = np.stack(
                [stretch_band(raw[..., i], lo, hi) for i, (lo, hi) in enumerate(self.ranges)],
                axis=-1,
            )
        rgb, _ = to_rgb8(raw, has_alpha=False, source=str(self.path))
        return rgb


def _colour_bands(count: int, dtype: np.dtype) -> tuple[int, ...]:
    """The 1-based bands :func:`~changen.data.bands.to_rgb8` turns into RGB (alpha dropped)."""
    alpha = count in (2, 4) and dtype == np.uint8
    colour = count - 1 if alpha else count
    return tuple(range(1, min(colour, 3) + 1))


def histogram_percentiles(
    hist: np.ndarray, offset: int, percentiles: tuple[float, float]
) -> tuple[float, float]:
    """:func:`numpy.percentile` (method ``linear``) of the integers counted in ``hist``.

    ``hist[i]`` counts the value ``i + offset``. The interpolation is numpy's own (float64,
    measured from the nearer end), so the values are numpy's exactly.
    """
    n = int(hist.sum())
    cumulative = np.cumsum(hist)
    virtual = (n - 1) * (np.asarray(percentiles, np.float64) / 100)
    below = np.floor(virtual)
    gamma = virtual - below
    low = below.astype(np.int64)
    high = np.minimum(low + 1, n - 1)
    a = (np.searchsorted(cumulative, low, side="right") + offset).astype(np.float64)
    b = (np.searchsorted(cumulative, high, side="right") + offset).astype(np.float64)
    diff = b - a
    value = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return float(value[0]), float(value[1])


def _histograms(
    path: Path, bands: tuple[int, ...], dtype: np.dtype, height: int, width: int
) -> list[tuple[float, float]]:
    info = np.iinfo(dtype)
    bins = int(info.max) - int(info.min) + 1
    hists = np.zeros((len(bands), bins), np.int64)
    for window in tile_windows(height, width, 1024):
        raw, _ = read_raster(path, bands, window)
        for i in range(len(bands)):
            band = raw[..., i].ravel().astype(np.int64) - int(info.min)
            hists[i] += np.bincount(band, minlength=bins)
    return [histogram_percentiles(h, int(info.min), DEFAULT_STRETCH) for h in hists]


def _sampled_ranges(
    path: Path, bands: tuple[int, ...], height: int, width: int
) -> list[tuple[float, float]]:
    step = max(1, math.ceil(math.sqrt(height * width / SAMPLE_PIXELS)))
    shape = (len(bands), max(1, height // step), max(1, width // step))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                sample = src.read(list(bands), out_shape=shape)
    except RasterioIOError as e:
        raise DataError(
            f"{path}: pixels could not be read ({str(e).strip().splitlines()[0]}); the file "
            f"is probably truncated or corrupt, re-export it"
        ) from None
    ranges = []
    for band in sample:
        lo, hi = np.percentile(band.astype(np.float32), DEFAULT_STRETCH)
        ranges.append((float(lo), float(hi)))
    return ranges


def _band_plan(path: Path, info: dict[str, Any]) -> _BandPlan:
    dtype = np.dtype(info["dtype"])
    height, width = int(info["height"]), int(info["width"])
    bands = _colour_bands(int(info["count"]), dtype)
    if dtype == np.uint8:
        return _BandPlan(path, bands, None)
    if np.issubdtype(dtype, np.integer) and dtype.itemsize <= 2:
        ranges = _histograms(path, bands, dtype, height, width)
    else:
        ranges = _sampled_ranges(path, bands, height, width)
    return _BandPlan(path, bands, tuple(ranges))


class RasterPair:
    """Two co-registered GeoTIFFs read window by window (see the module docstring)."""

    def __init__(self, t1: Path, t2: Path) -> None:
        i1, i2 = raster_info(t1), raster_info(t2)
        if (i1["height"], i1["width"]) != (i2["height"], i2["width"]):
            raise DataError(
                f"{t2}: {i2['width']}×{i2['height']} px but {t1} is {i1['width']}×"
                f"{i1['height']}; the dates must be co-registered images of one size"
            )
        g1, g2 = _info_georef(t1), _info_georef(t2)
        if g1 is not None and g2 is not None and (g1.crs != g2.crs or g1.transform != g2.transform):
            raise _grid_mismatch(t1, t2)
        self.height, self.width = int(i1["height"]), int(i1["width"])
        self.georef = g1
        self._plans = (_band_plan(t1, i1), _band_plan(t2, i2))
        _check_bands(t1, len(self._plans[0].bands), t2, len(self._plans[1].bands))

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        return self._plans[0].read(window), self._plans[1].read(window)


def _info_georef(path: Path) -> GeoRef | None:
    """The raster's georeference: that of its top-left pixel (whose transform is the file's)."""
    return read_raster(path, (1,), Window(0, 0, 1, 1))[1]


def _grid_mismatch(t1: Path, t2: Path) -> DataError:
    return DataError(
        f"{t2}: its CRS/transform differ from {t1}'s; reproject the dates onto one grid "
        f"first (e.g. gdalwarp -tap)"
    )


def _check_bands(t1: Path, n1: int, t2: Path, n2: int) -> None:
    if n1 != n2:
        raise DataError(
            f"{t2}: {n2} colour band(s) but {t1} has {n1}; both dates must be RGB or both "
            f"grey: re-export one of them"
        )


def _read_whole(path: Path) -> tuple[np.ndarray, GeoRef | None, int]:
    """:func:`~changen.data.readers.change_folders.load_image`'s RGB and georeference, and
    the number of colour bands the file has (to refuse grey beside RGB)."""
    if path.suffix.lower() in TIFF_SUFFIXES:
        raw, georef = read_raster(path)
    else:
        raw, georef = read_image(path), None
    rgb, _ = to_rgb8(raw, source=str(path))
    return rgb, georef, len(_colour_bands(raw.shape[2], raw.dtype))


def open_pair(t1: str | os.PathLike[str], t2: str | os.PathLike[str]) -> PairSource:
    """Both dates as a :class:`PairSource`: windowed GeoTIFF reads when both are GeoTIFFs,
    else whole images (PNG/JPEG, or a GeoTIFF paired with one)."""
    p1, p2 = Path(t1), Path(t2)
    if p1.suffix.lower() in TIFF_SUFFIXES and p2.suffix.lower() in TIFF_SUFFIXES:
        return RasterPair(p1, p2)
    a, g1, n1 = _read_whole(p1)
    b, g2, n2 = _read_whole(p2)
    if a.shape != b.shape:
        raise DataError(
            f"{p2}: {b.shape[1]}×{b.shape[0]} px but {p1} is {a.shape[1]}×{a.shape[0]}; "
            f"the dates must be co-registered images of one size"
        )
    _check_bands(p1, n1, p2, n2)
    if g1 is not None and g2 is not None and (g1.crs != g2.crs or g1.transform != g2.transform):
        raise _grid_mismatch(p1, p2)
    return ArrayPair(a, b, g1)
