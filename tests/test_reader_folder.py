"""FolderReader: pairing, mask styles (index, RGB, 0/1, 0/255), instances, manifest, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from changen.data.readers.folder import FolderReader
from changen.errors import ConfigError, DataError
from changen.taxonomies import BINARY_BUILDING, LOVEDA, OPENEARTHMAP
from fixtures_scenes import make_folder_dataset, random_image, write_png, write_tiff


def test_index_masks_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    truth = make_folder_dataset(tmp_path, rng, taxonomy=OPENEARTHMAP)
    reader = FolderReader(tmp_path, OPENEARTHMAP)
    assert reader.names == sorted(truth)
    for scene in reader:
        t = truth[scene.name]
        assert scene.image.dtype == np.uint8 and scene.image.shape == (40, 56, 3)
        np.testing.assert_array_equal(scene.image, t.image)
        np.testing.assert_array_equal(scene.mask, t.mask)
        assert scene.instances is None and scene.taxonomy is OPENEARTHMAP
        assert scene.source == str(tmp_path / "images" / f"{scene.name}.png")


def test_rgb_masks_decode_through_the_palette(tmp_path: Path, rng: np.random.Generator) -> None:
    truth = make_folder_dataset(tmp_path, rng, mask_style="rgb", taxonomy=LOVEDA)
    reader = FolderReader(tmp_path, LOVEDA)
    for scene in reader:
        np.testing.assert_array_equal(scene.mask, truth[scene.name].mask)


def test_unknown_colour_names_file_and_colour(tmp_path: Path, rng: np.random.Generator) -> None:
    make_folder_dataset(tmp_path, rng, n=1, mask_style="rgb", taxonomy=LOVEDA)
    bad = tmp_path / "masks" / "tile_000.png"
    rgb = LOVEDA.colorize(np.ones((40, 56), np.uint8))
    rgb[0, 0] = (1, 2, 3)
    write_png(bad, rgb)
    with pytest.raises(DataError, match=r"tile_000\.png.*\(1, 2, 3\)"):
        FolderReader(tmp_path, LOVEDA)[0]


def test_binary01_masks_default_to_binary_building(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    truth = make_folder_dataset(tmp_path, rng, mask_style="binary01")
    reader = FolderReader(tmp_path)
    assert reader.taxonomy is BINARY_BUILDING
    for scene in reader:
        np.testing.assert_array_equal(scene.mask, truth[scene.name].mask)


def test_binary255_masks_are_refused_without_a_threshold(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    make_folder_dataset(tmp_path, rng, n=1, mask_style="binary255")
    with pytest.raises(DataError, match=r"tile_000\.png.*0/255.*binary_threshold"):
        FolderReader(tmp_path)[0]


def test_binary255_masks_with_threshold(tmp_path: Path, rng: np.random.Generator) -> None:
    truth = make_folder_dataset(tmp_path, rng, mask_style="binary255")
    reader = FolderReader(tmp_path, binary_threshold=127)
    for scene in reader:
        np.testing.assert_array_equal(scene.mask, truth[scene.name].mask)
        assert set(np.unique(scene.mask)) <= {0, 1}


def test_threshold_needs_binary_taxonomy_and_range(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    make_folder_dataset(tmp_path, rng, n=1, mask_style="binary255")
    with pytest.raises(ConfigError, match="loveda"):
        FolderReader(tmp_path, LOVEDA, binary_threshold=127)
    with pytest.raises(ConfigError, match="300"):
        FolderReader(tmp_path, binary_threshold=300)


def test_black_white_rgb_masks_decode_as_binary(tmp_path: Path, rng: np.random.Generator) -> None:
    truth = make_folder_dataset(tmp_path, rng, n=2, mask_style="rgb", taxonomy=BINARY_BUILDING)
    for scene in FolderReader(tmp_path):
        np.testing.assert_array_equal(scene.mask, truth[scene.name].mask)


def test_multiclass_masks_without_taxonomy_ask_for_one(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    make_folder_dataset(tmp_path, rng, n=1, taxonomy=OPENEARTHMAP)
    with pytest.raises(DataError, match=r"tile_000\.png.*no taxonomy was given"):
        FolderReader(tmp_path)[0]


def test_unknown_ids_name_file_and_ids(tmp_path: Path, rng: np.random.Generator) -> None:
    make_folder_dataset(tmp_path, rng, n=1, taxonomy=OPENEARTHMAP)
    with pytest.raises(DataError, match=r"tile_000\.png.*ids \[8\].*loveda"):
        FolderReader(tmp_path, LOVEDA)[0]


def test_manifest_taxonomy_is_the_default(tmp_path: Path, rng: np.random.Generator) -> None:
    truth = make_folder_dataset(tmp_path, rng, n=1, taxonomy=LOVEDA)
    (tmp_path / "manifest.json").write_text(json.dumps({"taxonomy": LOVEDA.to_dict()}))
    reader = FolderReader(tmp_path)
    assert reader.taxonomy == LOVEDA
    np.testing.assert_array_equal(reader[0].mask, truth["tile_000"].mask)
    assert FolderReader(tmp_path, OPENEARTHMAP).taxonomy is OPENEARTHMAP


def test_bad_manifest_is_named(tmp_path: Path, rng: np.random.Generator) -> None:
    make_folder_dataset(tmp_path, rng, n=1)
    (tmp_path / "manifest.json").write_text(json.dumps({"taxonomy": {"name": "x"}}))
    with pytest.raises(DataError, match=r"manifest\.json"):
        FolderReader(tmp_path)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_instance_maps(tmp_path: Path, rng: np.random.Generator, ext: str) -> None:
    truth = make_folder_dataset(tmp_path, rng, n=2, mask_style="binary01", instances=ext)
    for scene in FolderReader(tmp_path):
        assert scene.instances is not None and scene.instances.dtype == np.int32
        np.testing.assert_array_equal(scene.instances, truth[scene.name].instances)
        assert scene.instances.max() > 1


def test_missing_instance_map_is_derived(tmp_path: Path, rng: np.random.Generator) -> None:
    truth = make_folder_dataset(tmp_path, rng, n=2, mask_style="binary01", instances=".png")
    (tmp_path / "instances" / "tile_001.png").unlink()
    given, derived = FolderReader(tmp_path)
    np.testing.assert_array_equal(given.instances, truth[given.name].instances)
    assert derived.instances is not None and derived.instances.dtype == np.int32
    np.testing.assert_array_equal(derived.instances > 0, derived.mask == 1)


def test_other_folder_names_tiff_and_mask_suffix(tmp_path: Path, rng: np.random.Generator) -> None:
    truth = make_folder_dataset(
        tmp_path,
        rng,
        n=2,
        taxonomy=LOVEDA,
        image_dir="img",
        mask_dir="gt",
        image_ext=".tif",
        mask_suffix="_mask",
    )
    assert FolderReader.detect(tmp_path)
    reader = FolderReader(tmp_path, LOVEDA)
    assert reader.names == ["tile_000", "tile_001"]
    for scene in reader:
        np.testing.assert_array_equal(scene.image, truth[scene.name].image)
        np.testing.assert_array_equal(scene.mask, truth[scene.name].mask)


def test_uint16_tiff_is_stretched_to_rgb8(tmp_path: Path, rng: np.random.Generator) -> None:
    make_folder_dataset(tmp_path, rng, n=1, mask_style="binary01")
    (tmp_path / "images" / "tile_000.png").unlink()
    write_tiff(tmp_path / "images" / "tile_000.tif", random_image(rng, (40, 56), 1, np.uint16))
    scene = FolderReader(tmp_path)[0]
    assert scene.image.dtype == np.uint8 and scene.image.shape == (40, 56, 3)
    assert scene.image.max() == 255 and scene.image.min() == 0


def test_rgba_no_data_becomes_ignore(tmp_path: Path, rng: np.random.Generator) -> None:
    make_folder_dataset(tmp_path, rng, n=1, mask_style="binary01")
    rgba = np.concatenate([random_image(rng, (40, 56)), np.full((40, 56, 1), 255, np.uint8)], 2)
    rgba[:10, :, 3] = 0
    write_png(tmp_path / "images" / "tile_000.png", rgba)
    scene = FolderReader(tmp_path)[0]
    assert scene.image.shape == (40, 56, 3)
    assert (scene.mask[:10] == 255).all() and (scene.mask[10:] != 255).all()


def test_unmatched_images_and_masks(tmp_path: Path, rng: np.random.Generator) -> None:
    make_folder_dataset(tmp_path, rng, n=4, mask_style="binary01")
    (tmp_path / "masks" / "tile_001.png").unlink()
    (tmp_path / "masks" / "tile_003.png").unlink()
    with pytest.raises(DataError, match=r"2 images have no mask .*e\.g\. tile_001\.png, tile_003"):
        FolderReader(tmp_path)
    write_png(tmp_path / "masks" / "extra.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "images" / "tile_001.png").unlink()
    (tmp_path / "images" / "tile_003.png").unlink()
    with pytest.raises(DataError, match=r"1 masks have no image.*extra\.png"):
        FolderReader(tmp_path)


def test_size_mismatch_names_both_files(tmp_path: Path, rng: np.random.Generator) -> None:
    make_folder_dataset(tmp_path, rng, n=1, mask_style="binary01")
    write_png(tmp_path / "masks" / "tile_000.png", np.zeros((20, 56), np.uint8))
    with pytest.raises(DataError, match=r"masks/tile_000\.png.*56×20.*images/tile_000\.png"):
        FolderReader(tmp_path)[0]


def test_truncated_png_is_named(tmp_path: Path, rng: np.random.Generator) -> None:
    make_folder_dataset(tmp_path, rng, n=1, mask_style="binary01")
    path = tmp_path / "images" / "tile_000.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DataError, match=r"images/tile_000\.png"):
        FolderReader(tmp_path)[0]


def test_duplicate_stems_are_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    make_folder_dataset(tmp_path, rng, n=1, mask_style="binary01")
    write_tiff(tmp_path / "images" / "tile_000.tif", random_image(rng, (40, 56)))
    with pytest.raises(DataError, match="tile_000"):
        FolderReader(tmp_path)


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="images folder"):
        FolderReader(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    assert not FolderReader.detect(tmp_path)
    with pytest.raises(DataError, match=f"{tmp_path}: no image/mask pairs found"):
        FolderReader(tmp_path)
    with pytest.raises(DataError, match="no such file"):
        FolderReader(tmp_path / "absent")


def test_grey_rgb_index_masks_and_16bit_masks(tmp_path: Path, rng: np.random.Generator) -> None:
    truth = make_folder_dataset(tmp_path, rng, n=2, taxonomy=LOVEDA)
    write_png(
        tmp_path / "masks" / "tile_000.png", np.repeat(truth["tile_000"].mask[..., None], 3, 2)
    )
    write_png(tmp_path / "masks" / "tile_001.png", truth["tile_001"].mask.astype(np.uint16))
    reader = FolderReader(tmp_path, LOVEDA)
    for scene in reader:
        np.testing.assert_array_equal(scene.mask, truth[scene.name].mask)
    write_png(tmp_path / "masks" / "tile_001.png", np.full((40, 56), 300, np.uint16))
    with pytest.raises(DataError, match=r"tile_001\.png: mask values span 300\.\.300"):
        reader[1]
