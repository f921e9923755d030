"""Sliding-window change prediction, GeoTIFF/PNG change maps, previews, model cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from affine import Affine
from torch import nn

from changen.data.imageio import read_image, write_image
from changen.data.raster import read_raster, write_raster
from changen.detectors import ChangeOutput, build_detector
from changen.detectors.inference import (
    change_overlay,
    model_cost,
    predict_change,
    predict_files,
    preview_path,
    to_tensor,
)
from changen.errors import ConfigError, DataError, OutputExistsError
from changen.sample import GeoRef

torch.set_num_threads(1)
GEO = GeoRef("EPSG:32616", Affine(0.5, 0.0, 740000.0, 0.0, -0.5, 3730000.0))


class PixelDiff(nn.Module):
    """A context-free detector: change logit = 4·Σ|t2 − t1| − 2, pixel by pixel.

    Its output does not depend on how the image is tiled, so a sliding-window prediction must
    equal the whole-image one exactly (up to float rounding)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, ...]] = []

    def forward(self, t1: torch.Tensor, t2: torch.Tensor) -> ChangeOutput:
        assert t1.shape[-1] % 32 == 0 and t1.shape[-2] % 32 == 0
        self.calls.append(tuple(t1.shape))
        return ChangeOutput(change=4 * (t2 - t1).abs().sum(1, keepdim=True) - 2)


def pair(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t1 = rng.integers(60, 200, (h, w, 3)).astype(np.uint8)
    t2 = t1.copy()
    change = np.zeros((h, w), bool)
    change[h // 4 : h // 2, w // 3 : w // 2] = True
    t2[change] = np.where(t1[change] < 128, t1[change] + 55, t1[change] - 55)
    return t1, t2, change


def whole(model: nn.Module, t1: np.ndarray, t2: np.ndarray) -> np.ndarray:
    logits = model(to_tensor(t1)[None], to_tensor(t2)[None]).change
    return torch.sigmoid(logits)[0, 0].numpy()


@pytest.mark.parametrize(("h", "w", "tile", "overlap"), [(100, 150, 64, 16), (256, 224, 96, 32)])
def test_sliding_window_equals_whole_image(h: int, w: int, tile: int, overlap: int) -> None:
    t1, t2, change = pair(h, w)
    model = PixelDiff()
    prob = predict_change(model, t1, t2, tile=tile, overlap=overlap, batch_size=3)
    assert prob.shape == (h, w) and prob.dtype == np.float32
    assert len(model.calls) > 1  # really tiled
    padded = [np.pad(a, ((0, -h % 32), (0, -w % 32), (0, 0)), mode="symmetric") for a in (t1, t2)]
    reference = whole(model, *padded)[:h, :w]
    np.testing.assert_allclose(prob, reference, atol=1e-6)
    assert np.array_equal(prob > 0.5, change)


def test_geotiff_in_georeferenced_geotiff_out(tmp_path: Path) -> None:
    t1, t2, change = pair(96, 128)
    write_raster(tmp_path / "t1.tif", t1, GEO)
    write_raster(tmp_path / "t2.tif", t2, GEO)
    out = tmp_path / "change.tif"
    result = predict_files(
        PixelDiff(), tmp_path / "t1.tif", tmp_path / "t2.tif", out, tile=64, overlap=16
    )
    written, georef = read_raster(out)
    assert georef == GEO and result.georef == GEO
    assert written.dtype == np.uint8 and np.array_equal(written[..., 0], change.astype(np.uint8))
    assert result.changed_fraction == pytest.approx(change.mean())
    assert result.preview == preview_path(out) == tmp_path / "change.preview.png"
    preview = read_image(result.preview)
    assert preview.ndim == 3 and preview.shape[1] > preview.shape[0]  # three cells in a row
    with pytest.raises(OutputExistsError):
        predict_files(PixelDiff(), tmp_path / "t1.tif", tmp_path / "t2.tif", out)
    predict_files(PixelDiff(), tmp_path / "t1.tif", tmp_path / "t2.tif", out, overwrite=True)


def test_png_in_png_out(tmp_path: Path) -> None:
    t1, t2, change = pair(64, 80)
    write_image(tmp_path / "a.png", t1)
    write_image(tmp_path / "b.png", t2)
    result = predict_files(
        PixelDiff(), tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png", preview=False
    )
    assert result.preview is None and result.georef is None
    written = read_image(tmp_path / "c.png")[..., 0]
    assert np.array_equal(written, change.astype(np.uint8) * 255)  # LEVIR-CD-style 0/255
    assert not (tmp_path / "c.preview.png").exists()


def test_bad_inputs(tmp_path: Path) -> None:
    t1, t2, _ = pair(64, 64)
    write_raster(tmp_path / "t1.tif", t1, GEO)
    write_raster(tmp_path / "small.tif", t2[:32], GEO)
    shifted = GeoRef(GEO.crs, GEO.transform @ Affine.translation(3, 0))
    write_raster(tmp_path / "shifted.tif", t2, shifted)
    with pytest.raises(DataError, match="one size"):
        predict_files(PixelDiff(), tmp_path / "t1.tif", tmp_path / "small.tif", tmp_path / "c.tif")
    with pytest.raises(DataError, match="CRS/transform"):
        predict_files(
            PixelDiff(), tmp_path / "t1.tif", tmp_path / "shifted.tif", tmp_path / "c.tif"
        )
    with pytest.raises(ConfigError, match="GeoTIFF"):
        predict_files(PixelDiff(), tmp_path / "t1.tif", tmp_path / "t1.tif", tmp_path / "c.jpg")
    assert not (tmp_path / "c.tif").exists()


def test_real_detector_on_a_non_multiple_of_32_image() -> None:
    torch.manual_seed(0)
    model = build_detector("fc_siam_diff").eval()
    t1, t2, _ = pair(70, 90)
    prob = predict_change(model, t1, t2, tile=64, overlap=8)
    assert prob.shape == (70, 90) and np.isfinite(prob).all()
    assert ((prob >= 0) & (prob <= 1)).all()
    assert not model.training


def test_change_overlay_tints_changed_pixels() -> None:
    image = np.full((40, 40, 3), 100, np.uint8)
    change = np.zeros((40, 40), np.uint8)
    change[10:30, 10:30] = 1
    out = change_overlay(image, change)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert out[20, 20, 0] > 150 and out[20, 20, 1] < 100  # red inside
    assert np.array_equal(out[0, 0], image[0, 0])  # untouched outside


def test_model_cost() -> None:
    model = build_detector("fc_siam_diff")
    cost = model_cost(model, size=64)
    assert cost["params"] == 1_350_001 == cost["trainable_params"]
    assert cost["flops"] > 0 and cost["flops_size"] == 64
    assert model_cost(model, size=128)["flops"] == pytest.approx(4 * cost["flops"], rel=1e-6)
