"""Tiling: windows cover the image and stay inside it; stitching inverts cutting; georefs agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.windows import Window

from changen.data.raster import read_raster, write_raster
from changen.data.tiling import cut, read_tiles, stitch, tile_georef, tile_windows, window_slices
from changen.errors import ConfigError, DataError
from fixtures_geo import UTM_TRANSFORM, utm_georef

CASES = [  # height, width, size, overlap
    (100, 100, 32, 0),
    (100, 70, 32, 8),
    (64, 64, 32, 0),
    (65, 63, 32, 16),
    (20, 50, 32, 4),  # shorter than a tile along the rows
    (10, 12, 32, 0),  # smaller than a tile
    (300, 257, (64, 128), (16, 0)),
]


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 200),
    width=st.integers(1, 200),
    size=st.integers(1, 64),
    overlap_frac=st.floats(0, 0.95),
)
def test_windows_cover_every_pixel_inside_the_image(
    height: int, width: int, size: int, overlap_frac: float
) -> None:
    overlap = min(int(size * overlap_frac), size - 1)
    windows = tile_windows(height, width, size, overlap)
    covered = np.zeros((height, width), np.int32)
    for w in windows:
        assert w.col_off >= 0 and w.row_off >= 0
        assert w.row_off + w.height <= height and w.col_off + w.width <= width
        assert (w.height, w.width) == (min(size, height), min(size, width))
        covered[window_slices(w)] += 1
    assert covered.min() >= 1


def test_windows_are_row_major_with_the_requested_stride() -> None:
    windows = tile_windows(50, 70, 32, 8)
    assert [(w.row_off, w.col_off) for w in windows] == [
        (0, 0),
        (0, 24),
        (0, 38),
        (18, 0),
        (18, 24),
        (18, 38),
    ]


@pytest.mark.parametrize(("height", "width", "size", "overlap"), CASES)
@pytest.mark.parametrize("mode", ["mean", "center"])
def test_stitch_inverts_cut(height: int, width: int, size: int, overlap: int, mode: str) -> None:
    rng = np.random.default_rng(height * width)
    image = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
    probs = rng.random((height, width)).astype(np.float32)
    windows = tile_windows(height, width, size, overlap)
    shape = (height, width)
    np.testing.assert_array_equal(stitch(cut(image, windows), windows, shape, mode), image)
    np.testing.assert_array_equal(stitch(cut(probs, windows), windows, shape, mode), probs)


def test_mean_averages_overlaps_and_rounds_integers() -> None:
    windows = tile_windows(4, 10, (4, 6), (0, 2))  # columns 0-5 and 4-9 overlap on 4-5
    tiles = [np.full((4, 6), 10, np.uint8), np.full((4, 6), 15, np.uint8)]
    out = stitch(tiles, windows, (4, 10), "mean")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], [10, 10, 10, 10, 12, 12, 15, 15, 15, 15])
    floats = stitch([t.astype(np.float32) for t in tiles], windows, (4, 10), "mean")
    np.testing.assert_array_equal(floats[0, 3:7], [10, 12.5, 12.5, 15])


def test_center_takes_the_tile_where_the_pixel_is_farthest_from_an_inner_edge() -> None:
    windows = tile_windows(6, 20, 6, 4)  # columns 0-5, 2-7, ..., 14-19
    tiles = [np.full((6, 6), k + 1, np.uint8) for k in range(len(windows))]
    out = stitch(tiles, windows, (6, 20), "center")
    # Each window gives its centre columns; image-border columns come from the border tiles.
    np.testing.assert_array_equal(
        out[0], [1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 8, 8]
    )
    assert set(np.unique(out)) <= {t[0, 0] for t in tiles}


def test_uncovered_pixels_get_fill_and_bad_tiles_are_rejected() -> None:
    windows = [Window(0, 0, 2, 2)]
    out = stitch([np.ones((2, 2), np.float32)], windows, (3, 3), "mean", fill=-1)
    assert out[2, 2] == -1 and out[0, 0] == 1
    with pytest.raises(DataError, match="does not fit window"):
        stitch([np.ones((3, 2))], windows, (3, 3))
    with pytest.raises(DataError, match="not inside"):
        stitch([np.ones((2, 2))], [Window(2, 2, 2, 2)], (3, 3))
    with pytest.raises(ConfigError, match="one tile per window"):
        stitch([], [], (3, 3))
    with pytest.raises(ConfigError, match="unknown stitch mode"):
        stitch([np.ones((2, 2))], windows, (3, 3), "max")  # type: ignore[arg-type]


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (8, 8), (8, -1)])
def test_bad_tiling_arguments(size: int, overlap: int) -> None:
    with pytest.raises(ConfigError):
        tile_windows(10, 10, size, overlap)


def test_tile_georefs_are_consistent_with_the_parent() -> None:
    parent = utm_georef(nodata=0)
    for w in tile_windows(100, 90, 32, 8):
        child = tile_georef(parent, w)
        assert child is not None and child.crs == parent.crs and child.nodata == 0
        assert child.transform.a == parent.transform.a and child.transform.e == parent.transform.e
        assert child.transform @ (0, 0) == UTM_TRANSFORM @ (w.col_off, w.row_off)
        far = (w.col_off + w.width, w.row_off + w.height)
        assert child.transform @ (w.width, w.height) == UTM_TRANSFORM @ far
    assert tile_georef(None, Window(0, 0, 4, 4)) is None


def test_read_tiles_streams_a_file_and_stitches_back(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    image = rng.integers(0, 4000, (70, 90, 2)).astype(np.uint16)
    write_raster(tmp_path / "big.tif", image, utm_georef())
    parent = read_raster(tmp_path / "big.tif")[1]
    windows, tiles = [], []
    for window, tile, georef in read_tiles(tmp_path / "big.tif", 32, 6):
        assert georef == tile_georef(parent, window)
        windows.append(window)
        tiles.append(tile)
    assert len(windows) == len(tile_windows(70, 90, 32, 6))
    np.testing.assert_array_equal(stitch(tiles, windows, (70, 90), "center"), image)
