"""OpenEarthMapReader (GeoTIFF regions, georef, splits) and LoveDAReader (both layouts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from changen.data.readers.folder import FolderReader
from changen.data.readers.loveda import LoveDAReader
from changen.data.readers.openearthmap import OpenEarthMapReader
from changen.errors import DataError
from changen.taxonomies import LOVEDA, OPENEARTHMAP
from fixtures_scenes import (
    OEM_CRS,
    make_loveda_dataset,
    make_oem_dataset,
    random_image,
    write_png,
    write_tiff,
)


def test_oem_regions_masks_and_georef(tmp_path: Path, rng: np.random.Generator) -> None:
    truth = make_oem_dataset(tmp_path, rng)
    assert OpenEarthMapReader.detect(tmp_path)
    reader = OpenEarthMapReader(tmp_path)
    assert reader.names == ["aachen_1", "aachen_2", "kyoto_1", "kyoto_2"]
    assert reader.taxonomy is OPENEARTHMAP
    assert sorted(p.name for p in reader.unlabelled) == ["aachen_3.tif", "kyoto_3.tif"]
    for scene in reader:
        t = truth[scene.name]
        np.testing.assert_array_equal(scene.image, t.image)
        np.testing.assert_array_equal(scene.mask, t.mask)
        assert scene.georef is not None and scene.georef.crs == OEM_CRS
        assert scene.georef.transform == t.meta["transform"]
        assert scene.meta["region"] == t.meta["region"]


def test_oem_single_region_and_split(tmp_path: Path, rng: np.random.Generator) -> None:
    make_oem_dataset(tmp_path, rng)
    assert OpenEarthMapReader(tmp_path / "kyoto").names == ["kyoto_1", "kyoto_2"]
    assert OpenEarthMapReader(tmp_path, split="train").names == ["aachen_1", "kyoto_1"]
    with pytest.raises(DataError, match=r"val\.txt: split list not found"):
        OpenEarthMapReader(tmp_path, split="val")


def test_oem_unknown_label_id_and_size_mismatch(tmp_path: Path, rng: np.random.Generator) -> None:
    make_oem_dataset(tmp_path, rng, regions=("lima",), n=2, unlabelled=0)
    write_tiff(tmp_path / "lima" / "labels" / "lima_1.tif", np.full((32, 32), 9, np.uint8))
    write_tiff(tmp_path / "lima" / "labels" / "lima_2.tif", np.zeros((16, 32), np.uint8))
    reader = OpenEarthMapReader(tmp_path)
    with pytest.raises(DataError, match=r"lima_1\.tif: mask ids \[9\]"):
        reader[0]
    with pytest.raises(DataError, match=r"labels/lima_2\.tif.*images/lima_2\.tif"):
        reader[1]


def test_oem_label_without_image_and_empty(tmp_path: Path, rng: np.random.Generator) -> None:
    (tmp_path / "x" / "images").mkdir(parents=True)
    (tmp_path / "x" / "labels").mkdir(parents=True)
    assert not OpenEarthMapReader.detect(tmp_path)
    with pytest.raises(DataError, match="no OpenEarthMap"):
        OpenEarthMapReader(tmp_path)
    write_tiff(tmp_path / "x" / "labels" / "x_1.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"1 labels have no image.*x_1\.tif"):
        OpenEarthMapReader(tmp_path)


@pytest.mark.parametrize("layout", ["mmseg", "official"])
def test_loveda_layouts(tmp_path: Path, rng: np.random.Generator, layout: str) -> None:
    truth = make_loveda_dataset(tmp_path, rng, layout=layout)
    assert LoveDAReader.detect(tmp_path)
    reader = LoveDAReader(tmp_path)
    assert sorted(reader.names) == sorted(truth) and reader.taxonomy is LOVEDA
    for scene in reader:
        t = truth[scene.name]
        np.testing.assert_array_equal(scene.image, t.image)
        np.testing.assert_array_equal(scene.mask, t.mask)
        assert scene.meta["folder"] == t.meta["folder"].as_posix()
    assert "9999" not in reader.names  # Test/ has no masks


def test_loveda_nested_roots_and_mmseg_splits(tmp_path: Path, rng: np.random.Generator) -> None:
    make_loveda_dataset(tmp_path / "official", rng, layout="official")
    assert len(LoveDAReader(tmp_path / "official" / "Train")) == 4
    assert LoveDAReader(tmp_path / "official" / "Train" / "Rural").names == ["2", "3"]
    split = tmp_path / "mmseg"
    for s, name in (("train", "5"), ("val", "6")):
        write_png(split / "img_dir" / s / f"{name}.png", random_image(rng, (8, 8)))
        write_png(split / "ann_dir" / s / f"{name}.png", np.ones((8, 8), np.uint8))
    assert LoveDAReader(split).names == ["5", "6"]


def test_loveda_no_data_is_ignore(tmp_path: Path, rng: np.random.Generator) -> None:
    make_loveda_dataset(tmp_path, rng, n=1)
    scene = LoveDAReader(tmp_path)[0]
    assert scene.taxonomy.ignore == 0 and scene.taxonomy.background == 1
    assert (scene.mask == 0).any()


def test_loveda_bad_inputs(tmp_path: Path, rng: np.random.Generator) -> None:
    with pytest.raises(DataError, match="no LoveDA"):
        LoveDAReader(tmp_path)
    make_loveda_dataset(tmp_path, rng, n=2)
    write_png(tmp_path / "ann_dir" / "0.png", np.full((32, 32), 8, np.uint8))
    path = tmp_path / "img_dir" / "1.png"
    path.write_bytes(path.read_bytes()[:100])
    reader = LoveDAReader(tmp_path)
    with pytest.raises(DataError, match=r"ann_dir/0\.png: mask ids \[8\]"):
        reader[0]
    with pytest.raises(DataError, match=r"img_dir/1\.png"):
        reader[1]
    (tmp_path / "ann_dir" / "1.png").unlink()
    with pytest.raises(DataError, match=r"1 images have no mask.*1\.png"):
        LoveDAReader(tmp_path)


@pytest.mark.real
def test_real_loveda_tiles(real_root: Path) -> None:
    reader = LoveDAReader(real_root / "loveda")
    assert reader.names == ["0", "1", "2"]
    for scene in reader:
        assert scene.image.shape == (1024, 1024, 3) and scene.mask.shape == (1024, 1024)
        ids = set(np.unique(scene.mask).tolist())
        assert ids <= set(range(8)) and len(ids) >= 3
        assert Path(scene.source).name == f"{scene.name}.png"
    # detection must not take LoveDA for a generic images/ + masks/ folder
    assert not FolderReader.detect(real_root / "loveda")
