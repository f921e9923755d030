"""Tests of the sample-grid renderer and the event overlay."""

from __future__ import annotations

import numpy as np
import pytest

from changen.data.imageio import read_image
from changen.errors import DataError
from changen.taxonomies import OPENEARTHMAP
from changen.viz import make_grid, overlay_events, render_cell, save_png
from changen.viz.grid import CREATED, RECLASSED, REMOVED

WHITE = (255, 255, 255)


def _cell_origin(r: int, c: int, cell: int, pad: int, top: int = 0, left: int = 0):
    return top + pad + r * (cell + pad), left + pad + c * (cell + pad)


def test_grid_size_and_placement_without_text() -> None:
    a = np.full((16, 16, 3), 10, np.uint8)
    b = np.full((16, 16, 3), 200, np.uint8)
    grid = make_grid([[a, b, a], [b, a, b]], cell=32, pad=4)
    assert grid.dtype == np.uint8
    assert grid.shape == (2 * 36 + 4, 3 * 36 + 4, 3)
    y, x = _cell_origin(1, 1, 32, 4)
    assert (grid[y : y + 32, x : x + 32] == 10).all()
    y, x = _cell_origin(0, 1, 32, 4)
    assert (grid[y : y + 32, x : x + 32] == 200).all()
    assert (grid[:4] == 255).all()  # the padding keeps the background colour


def test_masks_use_taxonomy_colours_and_nearest_resizing(rng: np.random.Generator) -> None:
    mask = rng.integers(0, 9, (100, 100)).astype(np.uint8)
    grid = make_grid([[mask]], taxonomy=OPENEARTHMAP, cell=48, pad=0)
    palette = {tuple(c.color) for c in OPENEARTHMAP.classes}
    colours = {tuple(v) for v in grid.reshape(-1, 3)}
    assert colours <= palette  # no blended colours from interpolation
    assert len(colours) == 9


def test_constant_mask_cell_is_the_class_colour() -> None:
    mask = np.full((10, 10), 8, np.uint8)
    grid = make_grid([[mask]], taxonomy=OPENEARTHMAP, cell=20, pad=2)
    assert tuple(grid[12, 12]) == OPENEARTHMAP.classes[8].color


def test_bool_and_binary_maps_are_white_on_black() -> None:
    change = np.zeros((8, 8), np.uint8)
    change[:, 4:] = 1
    grid = make_grid([[change, change.astype(bool)]], taxonomy=OPENEARTHMAP, cell=8, pad=0)
    # with a taxonomy an integer map is a class mask, a bool map stays white on black
    assert tuple(grid[0, 7]) == OPENEARTHMAP.classes[1].color
    assert tuple(grid[0, 15]) == WHITE and tuple(grid[0, 8]) == (0, 0, 0)
    plain = make_grid([[change]], cell=8, pad=0)
    assert tuple(plain[0, 7]) == WHITE and tuple(plain[0, 0]) == (0, 0, 0)


def test_band_rules_apply_to_images(rng: np.random.Generator) -> None:
    grey16 = rng.integers(1000, 5000, (20, 20, 1)).astype(np.uint16)
    cell = render_cell(grey16, 20)
    assert cell.shape == (20, 20, 3) and cell.dtype == np.uint8
    assert (cell[..., 0] == cell[..., 2]).all()
    assert cell.max() == 255 and cell.min() == 0  # stretched, not truncated
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 1] = 100
    rgba[..., 3] = 255
    assert (render_cell(rgba, 20) == [0, 100, 0]).all()


def test_aspect_ratio_is_kept_and_ragged_rows_are_blank() -> None:
    wide = np.full((20, 40, 3), 0, np.uint8)
    grid = make_grid([[wide], [None, wide]], cell=32, pad=0)
    assert grid.shape == (64, 64, 3)
    assert (grid[8:24, 0:32] == 0).all()  # a 16×32 image centred in its cell
    assert (grid[0:8, 0:32] == 255).all() and (grid[24:32, 0:32] == 255).all()
    assert (grid[32:64, 0:32] == 255).all()  # the None cell
    assert (grid[0:32, 32:64] == 255).all()  # the missing cell of the short first row


def test_titles_and_row_labels_add_bands_with_text() -> None:
    img = np.zeros((16, 16, 3), np.uint8)
    plain = make_grid([[img, img]], cell=64, pad=4)
    labelled = make_grid([[img, img]], titles=["t0", "t1"], row_labels=["scene"], cell=64, pad=4)
    dh = labelled.shape[0] - plain.shape[0]
    dw = labelled.shape[1] - plain.shape[1]
    assert dh > 0 and dw > 0
    assert (labelled[:dh] < 255).any()  # title text drawn
    assert (labelled[dh:, :dw] < 255).any()  # row label drawn


def test_bad_input_is_a_data_error() -> None:
    with pytest.raises(DataError, match="nothing to draw"):
        make_grid([])
    with pytest.raises(DataError, match="shape"):
        make_grid([[np.zeros(5, np.uint8)]])


def test_overlay_outlines_each_event_in_its_colour() -> None:
    rgb = np.full((128, 128, 3), 90, np.uint8)
    created = np.zeros((128, 128), bool)
    created[40:60, 40:60] = True
    removed = np.zeros_like(created)
    removed[80:110, 20:50] = True
    reclassed = np.zeros_like(created)
    reclassed[80:110, 80:110] = True
    out = overlay_events(rgb, created, removed, reclassed, thickness=1, legend=False)
    assert tuple(out[40, 50]) == CREATED
    assert tuple(out[80, 30]) == REMOVED
    assert tuple(out[95, 109]) == RECLASSED
    assert tuple(out[50, 50]) == (90, 90, 90)  # inside stays the mask colour
    assert (rgb == 90).all()  # input untouched
    with_legend = overlay_events(rgb, created, removed, reclassed, thickness=1)
    assert (with_legend[:20, :40] != out[:20, :40]).any()


def test_overlay_rejects_mismatched_maps() -> None:
    with pytest.raises(DataError, match="created"):
        overlay_events(np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4), bool))


def test_save_png_round_trips(tmp_path, rng: np.random.Generator) -> None:
    grid = make_grid([[rng.integers(0, 255, (10, 10, 3)).astype(np.uint8)]], cell=10)
    path = tmp_path / "sub" / "grid.png"
    save_png(path, grid)
    assert (read_image(path) == grid).all()
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]
