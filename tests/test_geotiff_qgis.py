"""GeoTIFFs that open right in GIS tools: class masks carry the taxonomy's colour table and class
names; every file is a tiled, compressed (Cloud-Optimised) GeoTIFF, with overviews when large."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from torch import nn

from changen.data import raster
from changen.data.raster import (
    CHANGE_LABEL_CLASSES,
    OVERVIEWS_FROM,
    read_raster,
    taxonomy_classes,
    write_raster,
)
from changen.data.readers.change_folders import LevirCDReader
from changen.data.writers import GeoTiffWriter
from changen.detectors import ChangeOutput
from changen.detectors.inference import predict_files
from changen.errors import DataError
from changen.taxonomies import OPENEARTHMAP
from fixtures_change import make_change_sample
from fixtures_geo import utm_georef


def _colours(path: Path) -> dict[int, tuple[int, ...]]:
    with rasterio.open(path) as src:
        return dict(src.colormap(1))


def test_geotiff_layout_masks_carry_the_taxonomy_colours_and_names(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    sample = make_change_sample(rng, "s0", OPENEARTHMAP, shape=(32, 48), georef=utm_georef())
    with GeoTiffWriter(tmp_path, OPENEARTHMAP) as writer:
        writer.write(sample)
    for folder in ("A_mask", "B_mask"):
        path = tmp_path / folder / "s0.tif"
        colours = _colours(path)
        for c in OPENEARTHMAP.classes:
            assert colours[c.id] == (*c.color, 255)
        assert colours[OPENEARTHMAP.ignore] == (0, 0, 0, 255)  # TIFF palettes are opaque
        with rasterio.open(path) as src:
            assert src.descriptions == ("class",)
            names = dict(item.split("=") for item in src.tags()["CLASS_NAMES"].split(";"))
            assert names["8"] == "building" and names["255"] == "ignore"
            assert src.tags(1)["CLASS_6"] == "water"
            assert src.nodata is None
    label = tmp_path / "label" / "s0.tif"
    assert _colours(label)[0] == (0, 0, 0, 255) and _colours(label)[255] == (255, 255, 255, 255)
    with rasterio.open(label) as src:
        assert src.tags()["CLASS_NAMES"] == "0=unchanged;255=changed"
    with rasterio.open(tmp_path / "A" / "s0.tif") as src, pytest.raises(ValueError):
        src.colormap(1)  # images have no colour table
    back = next(iter(LevirCDReader(tmp_path)))
    np.testing.assert_array_equal(back.t2_mask, sample.t2_mask)
    np.testing.assert_array_equal(back.t1_image, sample.t1_image)


def test_files_are_tiled_compressed_cogs(tmp_path: Path) -> None:
    write_raster(tmp_path / "small.tif", np.zeros((40, 60, 3), np.uint8), utm_georef())
    with rasterio.open(tmp_path / "small.tif") as src:
        assert src.profile["tiled"] and src.block_shapes == [(256, 256)] * 3
        assert src.compression.value == "DEFLATE"
        assert src.overviews(1) == []
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"


@pytest.mark.parametrize("cog", [True, False])
def test_large_outputs_get_overviews(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cog: bool
) -> None:
    if not cog:  # the GTiff path GDAL < 3.1 takes
        monkeypatch.setattr(raster, "has_cog_driver", lambda: False)
    side = OVERVIEWS_FROM + 88  # 600: halves to 300, then 150 fits one 256² tile
    mask = (np.arange(side * side) % 9).astype(np.uint8).reshape(side, side)
    write_raster(tmp_path / "mask.tif", mask, classes=taxonomy_classes(OPENEARTHMAP))
    write_raster(tmp_path / "edge.tif", mask[:OVERVIEWS_FROM, :OVERVIEWS_FROM])
    with rasterio.open(tmp_path / "mask.tif") as src:
        assert src.overviews(1) == [2, 4]
        assert src.profile["tiled"] and src.block_shapes[0] == (256, 256)
        assert src.compression.value == "DEFLATE"
        assert src.colormap(1)[8] == (222, 31, 7, 255)
        # nearest-neighbour overviews keep class ids: every value is a real id
        assert set(np.unique(src.read(1, out_shape=(side // 4, side // 4)))) <= set(range(9))
    with rasterio.open(tmp_path / "edge.tif") as src:
        assert src.overviews(1) == []
    np.testing.assert_array_equal(read_raster(tmp_path / "mask.tif")[0][..., 0], mask)


def test_classes_need_a_single_band_uint8_mask(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="single-band uint8"):
        write_raster(
            tmp_path / "a.tif", np.zeros((4, 4, 3), np.uint8), classes=CHANGE_LABEL_CLASSES
        )
    assert list(tmp_path.iterdir()) == []


class _Diff(nn.Module):
    """Change logit from the image difference (no weights: the test is about the file)."""

    def forward(self, t1: torch.Tensor, t2: torch.Tensor) -> ChangeOutput:
        return ChangeOutput(change=8 * (t2 - t1).abs().sum(1, keepdim=True) - 2)


def test_predicted_change_map_has_colours_names_and_overviews(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    t1 = rng.integers(0, 256, (520, 600, 3), dtype=np.uint8)
    t2 = t1.copy()
    t2[100:200, 100:300] = 255 - t2[100:200, 100:300]
    write_raster(tmp_path / "t1.tif", t1, utm_georef())
    write_raster(tmp_path / "t2.tif", t2, utm_georef())
    out, prob = tmp_path / "change.tif", tmp_path / "prob.tif"
    predict_files(
        _Diff(), tmp_path / "t1.tif", tmp_path / "t2.tif", out, probability=prob, preview=False
    )
    with rasterio.open(out) as src:
        assert src.colormap(1)[0] == (0, 0, 0, 255) and src.colormap(1)[1] == (255, 255, 255, 255)
        assert src.tags()["CLASS_NAMES"] == "0=unchanged;1=changed"
        assert src.overviews(1) == [2, 4] and src.compression.value == "DEFLATE"
        assert src.nodata is None and src.read(1)[150, 200] == 1
    with rasterio.open(prob) as src:
        assert src.overviews(1) == [2, 4] and src.dtypes[0] == "float32"
