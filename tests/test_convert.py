"""convert(): between layouts, keeping names, splits, arrays and provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from changen.data.convert import convert
from changen.data.readers import open_dataset
from changen.data.writers import LevirCDWriter
from changen.errors import ConfigError, FormatError, OutputExistsError
from changen.taxonomies import OPENEARTHMAP
from fixtures_change import GEOREF, build_folder_dataset, build_second_dataset, make_change_sample


def test_levircd_to_second_to_levircd(tmp_path: Path, rng: np.random.Generator) -> None:
    samples = [make_change_sample(rng, f"s{i}", OPENEARTHMAP) for i in range(4)]
    with LevirCDWriter(tmp_path / "src", OPENEARTHMAP) as writer:
        for i, sample in enumerate(samples):
            writer.write(sample, split="train" if i % 2 else "test")
    summary = convert(tmp_path / "src", tmp_path / "second", "second")
    assert summary["layout"] == "second" and summary["counts"]["samples"] == 4
    assert summary["provenance"]["source_format"] == "levircd"
    assert summary["taxonomy"]["name"] == "openearthmap_second"
    convert(tmp_path / "second", tmp_path / "back", "levircd")
    back = {s.name: s for s in open_dataset(tmp_path / "back")}
    assert sorted(back) == [s.name for s in samples]
    for i, original in enumerate(samples):
        again = back[original.name]
        assert again.meta["split"] == ("train" if i % 2 else "test")
        np.testing.assert_array_equal(again.t1_image, original.t1_image)
        np.testing.assert_array_equal(again.t2_image, original.t2_image)
        np.testing.assert_array_equal(again.change_mask, original.change_mask)
        changed = original.change_mask == 1
        np.testing.assert_array_equal(again.t2_mask[changed], original.t2_mask[changed] + 1)
        assert (again.t1_mask[~changed] == 0).all()


def test_binary_folder_dataset_to_geotiff(tmp_path: Path, rng: np.random.Generator) -> None:
    truth = build_folder_dataset(
        tmp_path / "src", "dsifn", rng, splits=("train", "test"), suffix=".tif", georef=GEOREF
    )
    convert(tmp_path / "src", tmp_path / "out", "geotiff", split="test")
    reader = open_dataset(tmp_path / "out")
    assert len(reader) == 3 and (tmp_path / "out" / "test" / "A" / "a.tif").is_file()
    for sample in reader:
        t1, _, label = truth[("test", sample.name)]
        np.testing.assert_array_equal(sample.t1_image, t1)
        np.testing.assert_array_equal(sample.change_mask, (label > 0).astype(np.uint8))
        assert sample.georef is not None and sample.georef.transform == GEOREF.transform


def test_taxonomy_choice_travels_into_provenance(tmp_path: Path, rng: np.random.Generator) -> None:
    build_second_dataset(tmp_path / "src", rng)
    summary = convert(tmp_path / "src", tmp_path / "out", "second")
    assert summary["provenance"]["taxonomy_choice"].startswith("second_ding")
    assert summary["taxonomy"]["name"] == "second_ding"
    named = convert(tmp_path / "src", tmp_path / "out2", "second", taxonomy="second_paper")
    assert "taxonomy_choice" not in named["provenance"]


def test_bad_layout_overlap_and_existing_output(tmp_path: Path, rng: np.random.Generator) -> None:
    build_folder_dataset(tmp_path / "src", "levircd", rng)
    with pytest.raises(FormatError, match="levircd, second, second_rgb, geotiff"):
        convert(tmp_path / "src", tmp_path / "out", "coco")
    with pytest.raises(ConfigError, match="overlaps"):
        convert(tmp_path / "src", tmp_path / "src" / "out", "levircd", overwrite=True)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(OutputExistsError):
        convert(tmp_path / "src", tmp_path / "out", "levircd")
    assert (
        convert(tmp_path / "src", tmp_path / "out", "levircd", overwrite=True)["counts"]["samples"]
        == 3
    )


def test_scene_datasets_are_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    from changen.data.writers import SceneFolderWriter
    from changen.sample import Scene

    image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    with SceneFolderWriter(tmp_path / "scenes", OPENEARTHMAP) as writer:
        writer.write(Scene(image, np.zeros((8, 8), np.uint8), name="a"))
    with pytest.raises(FormatError, match="scene"):
        convert(tmp_path / "scenes", tmp_path / "out", "levircd")
    assert not (tmp_path / "out").exists()
