"""Sliding-window change prediction streamed by window, GeoTIFF/PNG change maps, previews,
staged writes, model cost."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.errors import RasterioIOError
from torch import nn

from changen.data.imageio import read_image, write_image
from changen.data.raster import read_raster, write_raster
from changen.data.readers.change_folders import load_image
from changen.detectors import ChangeOutput, build_detector, inference, windows
from changen.detectors.inference import (
    change_overlay,
    model_cost,
    predict_change,
    predict_files,
    preview_path,
    resolve_precision,
    to_tensor,
)
from changen.detectors.windows import RasterPair, histogram_percentiles, plan_windows
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
    write_raster(tmp_path / "grey.tif", t2[..., :1], GEO)
    write_image(tmp_path / "grey.png", t2[..., 0])
    write_image(tmp_path / "t1.png", t1)
    for first, grey in (("t1.tif", "grey.tif"), ("t1.png", "grey.png")):
        with pytest.raises(DataError, match=r"1 colour band\(s\) but .* has 3; both dates"):
            predict_files(PixelDiff(), tmp_path / first, tmp_path / grey, tmp_path / "c.tif")
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


class TinyConv(nn.Module):
    """Two 3×3 convolutions over both dates: each output pixel sees 2 pixels around it, and
    any input size works, so the whole image can go through it at once."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.a = nn.Conv2d(6, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 1, 3, padding=1)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=gen) * 0.5

    def forward(self, t1: torch.Tensor, t2: torch.Tensor) -> ChangeOutput:
        return ChangeOutput(change=self.b(torch.relu(self.a(torch.cat([t1, t2], 1)))))


def test_window_plan_keeps_a_partition_of_centres() -> None:
    pieces = plan_windows(100, 130, tile=32, overlap=8)
    cover = np.zeros((100, 130), int)
    for piece in pieces:
        r, c = windows.window_slices(piece.keep)
        cover[r, c] += 1
        assert (piece.read.height, piece.read.width) == (32, 32)  # one size: they batch
        for lo, hi, klo, khi, length in (
            (piece.read.row_off, piece.read.row_off + 32, r.start, r.stop, 100),
            (piece.read.col_off, piece.read.col_off + 32, c.start, c.stop, 130),
        ):  # a kept pixel is >= overlap // 2 from every inner edge of its window
            assert klo == 0 or klo - lo >= 4
            assert khi == length or hi - khi >= 4
    assert (cover == 1).all()
    assert [(p.read.height, p.read.width) for p in plan_windows(20, 50, tile=100)] == [(20, 50)]
    with pytest.raises(ConfigError, match="overlap"):
        plan_windows(100, 100, tile=32, overlap=32)


def test_windowed_equals_whole_image_for_a_model_with_context(tmp_path: Path) -> None:
    """Windows of 32 with overlap 8 keep pixels >= 4 from their inner edges, beyond the model's
    reach of 2: the streamed GeoTIFF, the in-memory path and one whole-image forward agree."""
    t1, t2, _ = pair(100, 130)
    model = TinyConv()
    with torch.no_grad():
        reference = whole(model, t1, t2)
    prob = predict_change(model, t1, t2, tile=32, overlap=8, batch_size=5, precision="fp32")
    np.testing.assert_allclose(prob, reference, atol=1e-5)
    threshold = float(np.median(reference))
    write_raster(tmp_path / "t1.tif", t1, GEO)
    write_raster(tmp_path / "t2.tif", t2, GEO)
    result = predict_files(
        model,
        tmp_path / "t1.tif",
        tmp_path / "t2.tif",
        tmp_path / "change.tif",
        probability=tmp_path / "prob.tif",
        threshold=threshold,
        tile=32,
        overlap=8,
        batch_size=5,
        precision="fp32",
    )
    written, georef = read_raster(tmp_path / "prob.tif")
    assert georef == GEO and written.dtype == np.float32
    assert np.array_equal(written[..., 0], prob)  # the same numbers, bit for bit
    change, _ = read_raster(tmp_path / "change.tif")
    assert np.array_equal(change[..., 0], (prob > threshold).astype(np.uint8))
    assert result.probability == tmp_path / "prob.tif"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "change.preview.png", "change.tif", "prob.tif", "t1.tif", "t2.tif"
    ]  # fmt: skip


def test_geotiff_pairs_are_read_by_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t1, t2, change = pair(96, 128)
    write_raster(tmp_path / "t1.tif", t1, GEO)
    write_raster(tmp_path / "t2.tif", t2, GEO)
    reads: list[Any] = []

    def counting(path: Path, bands: Any = None, window: Any = None) -> Any:
        reads.append(window)
        return read_raster(path, bands, window)

    monkeypatch.setattr(windows, "read_raster", counting)
    result = predict_files(
        PixelDiff(),
        tmp_path / "t1.tif",
        tmp_path / "t2.tif",
        tmp_path / "c.tif",
        tile=32,
        overlap=8,
    )
    assert None not in reads  # never the whole raster
    assert max(int(w.width * w.height) for w in reads) == 32 * 32
    assert len(reads) >= 2 * len(plan_windows(96, 128, 32, 8))
    assert np.array_equal(read_raster(result.out)[0][..., 0], change.astype(np.uint8))


def test_uint16_geotiff_is_stretched_with_whole_image_percentiles(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(200, 4000, (70, 90, 4)).astype(np.uint16)
    image[:10, :10] = 60000  # a bright corner: a per-window stretch would differ there
    write_raster(tmp_path / "a.tif", image, GEO)
    write_raster(tmp_path / "b.tif", image[..., ::-1].copy(), GEO)
    source = RasterPair(tmp_path / "a.tif", tmp_path / "b.tif")
    expected = (load_image(tmp_path / "a.tif")[0], load_image(tmp_path / "b.tif")[0])
    for piece in plan_windows(70, 90, tile=32, overlap=8):
        got = source.read(piece.read)
        sl = windows.window_slices(piece.read)
        assert np.array_equal(got[0], expected[0][sl]) and np.array_equal(got[1], expected[1][sl])


@pytest.mark.parametrize("seed", range(6))
def test_histogram_percentiles_are_numpys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 2, 7, 1000, 33_333]))
    values = rng.integers(-300, 3000, n)
    hist = np.bincount(values + 300)
    expected = np.percentile(values.astype(np.float32), (2.0, 98.0))
    assert histogram_percentiles(hist, -300, (2.0, 98.0)) == tuple(expected)


class FailingWriter:
    """A GeoTIFF writer whose ``fail_at``-th window write prints ``printed`` on file
    descriptor 2 (as libtiff does) and raises ``error``."""

    def __init__(self, dataset: Any, error: BaseException, fail_at: int, printed: bytes) -> None:
        self.dataset, self.error, self.left, self.printed = dataset, error, fail_at, printed

    def write(self, array: np.ndarray, window: Any) -> None:
        self.left -= 1
        if self.left == 0:
            os.write(2, self.printed)
            raise self.error
        self.dataset.write(array, window=window)

    def close(self) -> None:
        self.dataset.close()


def failing_writes(
    monkeypatch: pytest.MonkeyPatch, error: BaseException, fail_at: int, printed: bytes = b""
) -> None:
    opened = inference._geotiff

    def failing(*args: Any) -> FailingWriter:
        return FailingWriter(opened(*args), error, fail_at, printed)

    monkeypatch.setattr(inference, "_geotiff", failing)


@pytest.mark.parametrize(
    "error",
    [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
    ids=["disk-full", "ctrl-c"],
)
def test_a_failed_run_leaves_nothing_and_keeps_the_old_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    t1, t2, _ = pair(96, 128)
    write_raster(tmp_path / "t1.tif", t1, GEO)
    write_raster(tmp_path / "t2.tif", t2, GEO)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "c.tif").write_bytes(b"previous map")
    args = (PixelDiff(), tmp_path / "t1.tif", tmp_path / "t2.tif")
    failing_writes(monkeypatch, error, fail_at=3)
    with pytest.raises(type(error) if isinstance(error, KeyboardInterrupt) else DataError) as e:
        predict_files(*args, tmp_path / "new" / "c.tif", tile=32, overlap=8)
    if not isinstance(error, KeyboardInterrupt):
        message = str(e.value)
        assert "\n" not in message and "No space left on device" in message
        assert message.startswith(str(tmp_path / "new" / "c.tif")) and "free disk space" in message
    assert list((tmp_path / "new").iterdir()) == []  # no map, no preview, no staging file
    assert torch.is_grad_enabled() and args[0].training  # the model and torch as they were
    with pytest.raises(type(error) if isinstance(error, KeyboardInterrupt) else DataError):
        predict_files(*args, tmp_path / "old" / "c.tif", tile=32, overlap=8, overwrite=True)
    assert [p.name for p in (tmp_path / "old").iterdir()] == ["c.tif"]
    assert (tmp_path / "old" / "c.tif").read_bytes() == b"previous map"


def test_precision_and_progress() -> None:
    t1, t2, change = pair(64, 96)
    events: list[tuple[str, Any]] = []

    class Sink:
        def task(self, description: str, total: int | None, completed: int = 0) -> Any:
            events.append(("task", (description, total)))
            return lambda n=1, info=None: events.append(("advance", n))

        def note(self, text: str) -> None:
            events.append(("note", text))

    prob = predict_change(
        PixelDiff(), t1, t2, tile=32, overlap=8, batch_size=4, precision="bf16", progress=Sink()
    )
    assert np.array_equal(prob > 0.5, change)
    total = len(plan_windows(64, 96, 32, 8))
    assert events[0] == ("task", ("predict", total))
    assert sum(n for kind, n in events if kind == "advance") == total
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision(None, "cuda") == "fp32"
    with pytest.raises(ConfigError, match="fp16"):
        resolve_precision("fp16", "cpu")


def test_libtiff_output_becomes_the_one_line_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A full disk under GDAL: libtiff prints the cause on fd 2 and rasterio raises only
    "Write failed"; the error says why, and nothing else reaches the terminal."""
    t1, t2, _ = pair(64, 64)
    write_raster(tmp_path / "t1.tif", t1, GEO)
    write_raster(tmp_path / "t2.tif", t2, GEO)
    error = RasterioIOError("Write failed. See previous exception for details.")
    failing_writes(monkeypatch, error, 1, b"_tiffWriteProc: No space left on device.\n")
    with pytest.raises(DataError) as e:
        predict_files(
            PixelDiff(), tmp_path / "t1.tif", tmp_path / "t2.tif", tmp_path / "o" / "c.tif"
        )
    assert str(e.value) == (
        f"{tmp_path / 'o' / 'c.tif'}: cannot write the change map (No space left on device); "
        f"free disk space or choose a writable output folder, then rerun"
    )
    assert capfd.readouterr().err == "" and list((tmp_path / "o").iterdir()) == []
