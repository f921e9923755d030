"""Cut large rasters into overlapping tiles and stitch per-tile results back together.

Windows are :class:`rasterio.windows.Window` objects laid out row-major with a stride of
``size - overlap``; the last row and column are shifted back so every window lies inside the
image (they then overlap their neighbours by more than ``overlap``). Along an axis shorter than
``size`` there is one window covering the whole axis, so tiles of a small image are *smaller*
than ``size``: pad them yourself if a model needs a fixed input size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
from rasterio.windows import Window

from changen.data.raster import raster_info, read_raster, window_transform
from changen.errors import ConfigError, DataError
from changen.sample import GeoRef

StitchMode = Literal["mean", "center"]


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _offsets(length: int, size: int, stride: int) -> list[int]:
    if length <= size:
        return [0]
    offsets = list(range(0, length - size, stride))
    return [*offsets, length - size]


def tile_windows(
    height: int, width: int, size: int | tuple[int, int], overlap: int | tuple[int, int] = 0
) -> list[Window]:
    """Windows of ``size`` (rows, cols) covering a ``height``×``width`` image, row-major.

    Neighbouring windows overlap by at least ``overlap`` pixels; see the module docstring for
    the last row/column and for images smaller than a tile.
    """
    (th, tw), (oh, ow) = _pair(size), _pair(overlap)
    if th <= 0 or tw <= 0 or height <= 0 or width <= 0:
        raise ConfigError(f"tile size {size} and image size {height}×{width} must be positive")
    if not (0 <= oh < th and 0 <= ow < tw):
        raise ConfigError(f"overlap {overlap} must be >= 0 and smaller than the tile size {size}")
    rows = _offsets(height, th, th - oh)
    cols = _offsets(width, tw, tw - ow)
    return [Window(c, r, min(tw, width), min(th, height)) for r in rows for c in cols]


def window_slices(window: Window) -> tuple[slice, slice]:
    """The (row, col) slices that index ``window`` out of an HW or HWC array."""
    r, c = int(window.row_off), int(window.col_off)
    return slice(r, r + int(window.height)), slice(c, c + int(window.width))


def tile_georef(georef: GeoRef | None, window: Window) -> GeoRef | None:
    """The georeference of ``window`` cut out of a raster with ``georef`` (same CRS, nodata)."""
    if georef is None:
        return None
    return GeoRef(georef.crs, window_transform(georef.transform, window), georef.nodata)


def cut(array: np.ndarray, windows: Sequence[Window]) -> list[np.ndarray]:
    """The tiles of an in-memory HW or HWC array (views, not copies)."""
    return [array[window_slices(w)] for w in windows]


def read_tiles(
    path: str | os.PathLike[str],
    size: int | tuple[int, int],
    overlap: int | tuple[int, int] = 0,
    bands: tuple[int, ...] | None = None,
) -> Iterator[tuple[Window, np.ndarray, GeoRef | None]]:
    """Read a raster tile by tile (never whole): yields (window, HWC array, tile georef)."""
    info = raster_info(path)
    for window in tile_windows(info["height"], info["width"], size, overlap):
        array, georef = read_raster(path, bands, window)
        yield window, array, georef


def stitch(
    tiles: Sequence[np.ndarray],
    windows: Sequence[Window],
    shape: tuple[int, int],
    mode: StitchMode = "mean",
    fill: float = 0,
) -> np.ndarray:
    """Put per-tile results back into one ``shape`` (height, width) array.

    ``mode="mean"`` averages overlapping tiles (for images, probabilities, logits; integer
    results are rounded back to their dtype). ``mode="center"`` takes, for each pixel, the
    tile in which it lies farthest from a tile edge (edges on the image border do not count),
    so label maps keep valid ids and each pixel comes from the tile with the most context.
    Pixels no window covers get ``fill``. Tiles are HW or HWC, all alike.
    """
    if len(tiles) != len(windows) or not tiles:
        raise ConfigError(
            f"stitch needs one tile per window, got {len(tiles)} tiles for {len(windows)} windows"
        )
    extra = tiles[0].shape[2:]
    for tile, w in zip(tiles, windows, strict=True):
        if (
            w.col_off < 0
            or w.row_off < 0
            or w.row_off + w.height > shape[0]
            or w.col_off + w.width > shape[1]
        ):
            raise DataError(f"window {w} is not inside the {shape[0]}×{shape[1]} output")
        expected = (int(w.height), int(w.width), *extra)
        if tile.shape != expected:
            raise DataError(
                f"tile of shape {tile.shape} does not fit window {w} (expected {expected})"
            )
    if mode == "mean":
        return _stitch_mean(tiles, windows, shape, fill)
    if mode == "center":
        return _stitch_center(tiles, windows, shape, fill)
    raise ConfigError(f"unknown stitch mode {mode!r}; choose 'mean' or 'center'")


def _stitch_mean(
    tiles: Sequence[np.ndarray], windows: Sequence[Window], shape: tuple[int, int], fill: float
) -> np.ndarray:
    dtype = tiles[0].dtype
    total = np.zeros((*shape, *tiles[0].shape[2:]), np.float64)
    count = np.zeros(shape, np.int32)
    for tile, w in zip(tiles, windows, strict=True):
        sl = window_slices(w)
        total[sl] += tile
        count[sl] += 1
    covered = count > 0
    scale = np.where(covered, count, 1).reshape(count.shape + (1,) * (total.ndim - 2))
    out = total / scale
    out[~covered] = fill
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(dtype)


def _edge_distance(w: Window, shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel distance to the nearest window edge that is not on the image border."""
    far = np.iinfo(np.int32).max

    def axis(off: int, n: int, length: int) -> np.ndarray:
        i = np.arange(n)
        lo = i if off > 0 else np.full(n, far)
        hi = (n - 1 - i) if off + n < length else np.full(n, far)
        return np.minimum(lo, hi)

    rows = axis(int(w.row_off), int(w.height), shape[0])
    cols = axis(int(w.col_off), int(w.width), shape[1])
    return np.minimum.outer(rows, cols)


def _stitch_center(
    tiles: Sequence[np.ndarray], windows: Sequence[Window], shape: tuple[int, int], fill: float
) -> np.ndarray:
    out = np.full((*shape, *tiles[0].shape[2:]), fill, tiles[0].dtype)
    best = np.full(shape, -1, np.int64)
    for tile, w in zip(tiles, windows, strict=True):
        sl = window_slices(w)
        score = _edge_distance(w, shape)
        take = score > best[sl]
        out[sl][take] = tile[take]
        best[sl][take] = score[take]
    return out
