"""Band rules and plain image I/O (atomic writes, clear errors on corrupt files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from changen.data.atomic import atomic_path
from changen.data.bands import stretch_to_uint8, to_rgb8
from changen.data.imageio import read_image, read_mask, write_image
from changen.errors import DataError


def test_single_band_is_replicated(rng: np.random.Generator) -> None:
    grey = rng.integers(0, 255, (5, 6, 1), dtype=np.uint8)
    rgb, valid = to_rgb8(grey)
    assert rgb.shape == (5, 6, 3) and valid is None
    assert all(np.array_equal(rgb[..., i], grey[..., 0]) for i in range(3))


def test_rgba_alpha_becomes_valid_mask(rng: np.random.Generator) -> None:
    rgba = rng.integers(0, 255, (4, 4, 4), dtype=np.uint8)
    rgba[0, 0, 3] = 0
    rgb, valid = to_rgb8(rgba)
    assert rgb.shape == (4, 4, 3)
    assert valid is not None and not valid[0, 0] and valid.sum() == (rgba[..., 3] > 0).sum()


def test_uint16_percentile_stretch(rng: np.random.Generator) -> None:
    img = rng.integers(100, 1100, (32, 32, 1), dtype=np.uint16)
    out = stretch_to_uint8(img)
    assert out.dtype == np.uint8
    assert np.percentile(out, 50) == pytest.approx(127, abs=12)
    assert (out == 0).mean() == pytest.approx(0.02, abs=0.015)


def test_band_selection_is_one_based_and_checked(rng: np.random.Generator) -> None:
    ms = rng.integers(0, 4000, (4, 4, 5), dtype=np.uint16)
    rgb, _ = to_rgb8(ms, bands=(4, 3, 2))
    assert rgb.shape == (4, 4, 3)
    with pytest.raises(DataError, match="bands"):
        to_rgb8(ms, bands=(6, 1, 1))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_image_round_trip(tmp_path: Path, rng: np.random.Generator, suffix: str) -> None:
    img = rng.integers(0, 255, (7, 9, 3), dtype=np.uint8)
    write_image(tmp_path / f"a{suffix}", img)
    assert np.array_equal(read_image(tmp_path / f"a{suffix}"), img)
    assert [p.name for p in tmp_path.iterdir()] == [f"a{suffix}"]


def test_grey_rgb_mask_collapses_to_index_map(tmp_path: Path) -> None:
    m = np.zeros((4, 4, 3), np.uint8)
    m[1, 1] = 255
    write_image(tmp_path / "m.png", m)
    assert read_mask(tmp_path / "m.png").shape == (4, 4)


def test_truncated_png_is_a_one_line_error(tmp_path: Path, rng: np.random.Generator) -> None:
    write_image(tmp_path / "a.png", rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[:40])
    with pytest.raises(DataError, match=r"a\.png") as info:
        read_image(tmp_path / "a.png")
    assert "\n" not in str(info.value)


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
