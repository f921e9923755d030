"""WHU-CD's official release layout, reproduced as a tiny seeded fixture.

The release (``Building change detection dataset_add``, gpcv.whu.edu.cn) unpacks as::

    1. The two-period image data/
        2012/splited_images/{train,test}/{image,label}/*.tif   crops, 0/255 building masks
        2016/splited_images/{train,test}/{image,label}/*.tif
        change_label/{train,test}/change_label.tif             one whole-split change mask
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from changen.cli.app import app
from changen.data.readers import detect_format, open_dataset
from changen.errors import ConfigError, DataError
from fixtures_scenes import random_image, random_mask, write_tiff

RELEASE = Path("Building change detection dataset_add") / "1. The two-period image data"
CROPS = {"train": ["0_0", "0_1", "0_2"], "test": ["0_0", "0_1"]}  # train/test reuse names
HW = (32, 32)


Truth = dict[tuple[str, str], tuple[np.ndarray, ...]]


def write_release(root: Path, seed: int = 5) -> Truth:
    """The release tree under ``root``; returns (split, crop) → (t1, t2, mask12, mask16)."""
    rng = np.random.default_rng(seed)
    base = root / RELEASE
    truth: Truth = {}
    for split, names in CROPS.items():
        for name in names:
            arrays = []
            for year in ("2012", "2016"):
                crops = base / year / "splited_images" / split
                image = random_image(rng, HW)
                mask = random_mask(rng, HW, [0, 255])
                write_tiff(crops / "image" / f"{name}.tif", image)
                write_tiff(crops / "label" / f"{name}.tif", mask)
                arrays += [image, mask]
            truth[split, name] = (arrays[0], arrays[2], arrays[1], arrays[3])
        whole = base / "change_label" / split / "change_label.tif"
        write_tiff(whole, np.zeros((64, 64), np.uint8))
    return truth


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, Truth]:
    truth = write_release(tmp_path)
    return tmp_path / RELEASE.parts[0], truth


def test_release_is_detected_from_either_folder(release: tuple[Path, Truth]) -> None:
    root, _ = release
    assert detect_format(root) == "whucd"
    assert detect_format(root / RELEASE.parts[1]) == "whucd"


def test_release_pairs_crops_and_derives_change(release: tuple[Path, Truth]) -> None:
    root, truth = release
    reader = open_dataset(root)
    assert reader.format == "whucd" and reader.kind == "change"
    assert len(reader) == 5 and reader.taxonomy.name == "binary_building"
    for sample in reader:
        t1, t2, m12, m16 = truth[sample.meta["split"], sample.name]
        np.testing.assert_array_equal(sample.t1_image, t1)
        np.testing.assert_array_equal(sample.t2_image, t2)
        np.testing.assert_array_equal(sample.t1_mask, m12 > 0)
        np.testing.assert_array_equal(sample.t2_mask, m16 > 0)
        np.testing.assert_array_equal(sample.change_mask, (m12 > 0) != (m16 > 0))
    assert [s.meta["split"] for s in reader] == ["train"] * 3 + ["test"] * 2


def test_release_splits_and_errors(release: tuple[Path, Truth]) -> None:
    root, _ = release
    assert open_dataset(root, split="test").names == CROPS["test"]
    with pytest.raises(ConfigError, match="choose one of: train, test"):
        open_dataset(root, split="val")
    (root / RELEASE.parts[1] / "2016" / "splited_images" / "train" / "image" / "0_2.tif").unlink()
    with pytest.raises(DataError, match="0_2"):
        open_dataset(root)


def test_release_through_the_cli(release: tuple[Path, Truth], tmp_path: Path) -> None:
    root, _ = release
    result = CliRunner().invoke(app, ["data", "inspect", str(root), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["format"] == "whucd" and summary["n_items"] == 5
    out = tmp_path / "levir"
    result = CliRunner().invoke(
        app, ["data", "convert", str(root), str(out), "--layout", "levircd", "--split", "test"]
    )
    assert result.exit_code == 0, result.output
    assert open_dataset(out).names == CROPS["test"]


def test_repacked_a_b_label_copies_still_read_as_levircd(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for folder in ("A", "B", "label"):
        data = random_mask(rng, HW, [0, 255]) if folder == "label" else random_image(rng, HW)
        write_tiff(tmp_path / folder / "x.tif", data)
    assert detect_format(tmp_path) == "levircd"
    assert open_dataset(tmp_path, format="whucd").names == ["x"]
