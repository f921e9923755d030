"""Change readers: the folder layouts, label binarisation, splits, SECOND labels, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from changen.data.imageio import read_image, write_image
from changen.data.readers import detect_format, open_dataset
from changen.data.readers.change_folders import LevirCDReader, WHUCDReader
from changen.data.readers.second import SecondReader
from changen.errors import ConfigError, DataError
from changen.taxonomies import BINARY_BUILDING, OPENEARTHMAP, SECOND_DING, SECOND_PAPER
from fixtures_change import (
    FOLDER_LAYOUTS,
    GEOREF,
    SHAPE,
    blocky_mask,
    build_folder_dataset,
    build_second_dataset,
)


@pytest.mark.parametrize("layout", sorted(FOLDER_LAYOUTS))
@pytest.mark.parametrize("splits", [(None,), ("train", "val", "test")])
def test_folder_layouts_read_their_fixture(
    tmp_path: Path,
    rng: np.random.Generator,
    layout: str,
    splits: tuple[str | None, ...],
) -> None:
    truth = build_folder_dataset(tmp_path, layout, rng, splits=splits)
    reader = open_dataset(tmp_path, format=layout)
    assert reader.format == layout and len(reader) == len(truth)
    assert [(s.meta["split"], s.name) for s in reader] == list(truth)
    for sample in reader:
        t1, t2, label = truth[(sample.meta["split"], sample.name)]
        np.testing.assert_array_equal(sample.t1_image, t1)
        np.testing.assert_array_equal(sample.t2_image, t2)
        np.testing.assert_array_equal(sample.change_mask, (label == 255).astype(np.uint8))
        assert sample.t1_mask is None and sample.taxonomy is BINARY_BUILDING
        assert sample.georef is None


@pytest.mark.parametrize("layout", ["levircd", "s2looking", "sysucd", "dsifn"])
def test_detection_names_the_layout(
    tmp_path: Path,
    rng: np.random.Generator,
    layout: str,
) -> None:
    build_folder_dataset(tmp_path, layout, rng, splits=("train", "test"))
    assert detect_format(tmp_path) == layout


def test_whucd_is_read_by_name_only(tmp_path: Path, rng: np.random.Generator) -> None:
    build_folder_dataset(tmp_path, "whucd", rng)
    assert detect_format(tmp_path) == "levircd"
    assert not WHUCDReader.detect(tmp_path)
    assert len(open_dataset(tmp_path, format="whucd")) == 3


def test_folder_names_match_case_insensitively(tmp_path: Path, rng: np.random.Generator) -> None:
    build_folder_dataset(tmp_path, "s2looking", rng)
    (tmp_path / "Image1").rename(tmp_path / "image1")
    assert len(open_dataset(tmp_path, format="s2looking")) == 3


def test_default_threshold_reads_zero_one_labels_as_change(
    tmp_path: Path,
    rng: np.random.Generator,
) -> None:
    truth = build_folder_dataset(tmp_path, "levircd", rng, label_values=(0, 1))
    for sample in LevirCDReader(tmp_path):
        label = truth[(None, sample.name)][2]
        assert (label == 1).any()
        np.testing.assert_array_equal(sample.change_mask, label)


def test_threshold_option_is_a_strict_greater_than(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    truth = build_folder_dataset(tmp_path, "levircd", rng, label_values=(0, 1, 128, 255))
    for threshold, expected_changed in ((0, {1, 128, 255}), (127, {128, 255}), (128, {255})):
        for sample in LevirCDReader(tmp_path, threshold=threshold):
            label = truth[(None, sample.name)][2]
            np.testing.assert_array_equal(
                sample.change_mask, np.isin(label, list(expected_changed)).astype(np.uint8)
            )
    with pytest.raises(ConfigError, match="threshold"):
        LevirCDReader(tmp_path, threshold=-1)


def test_split_option_reads_one_split_folder(tmp_path: Path, rng: np.random.Generator) -> None:
    build_folder_dataset(tmp_path, "levircd", rng, splits=("train", "test"), names=("x", "y"))
    reader = LevirCDReader(tmp_path, split="test")
    assert len(reader) == 2 and {s.meta["split"] for s in reader} == {"test"}
    assert reader[0].source == str(tmp_path / "test" / "A" / "x.png")
    with pytest.raises(ConfigError, match="train, test"):
        LevirCDReader(tmp_path, split="val")


def test_flat_layout_split_comes_from_list_files(tmp_path: Path, rng: np.random.Generator) -> None:
    build_folder_dataset(tmp_path, "levircd", rng, names=("a", "b", "c"))
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "train.txt").write_text("a.png\nc.png\n")
    (tmp_path / "list" / "bad.txt").write_text("a.png\nzzz.png\n")
    train = LevirCDReader(tmp_path, split="train")
    assert train.names == ["a", "c"] and train[1].meta["split"] == "train"
    assert len(LevirCDReader(tmp_path)) == 3
    with pytest.raises(ConfigError, match=r"list/val\.txt"):
        LevirCDReader(tmp_path, split="val")
    with pytest.raises(DataError, match="zzz"):
        LevirCDReader(tmp_path, split="bad")


def test_tif_images_keep_their_georeference(tmp_path: Path, rng: np.random.Generator) -> None:
    truth = build_folder_dataset(tmp_path, "levircd", rng, suffix=".tif", georef=GEOREF)
    sample = LevirCDReader(tmp_path)[0]
    np.testing.assert_array_equal(sample.t1_image, truth[(None, "a")][0])
    assert sample.georef == GEOREF


def test_semantic_mask_folders_and_manifest_taxonomy(
    tmp_path: Path,
    rng: np.random.Generator,
) -> None:
    build_folder_dataset(tmp_path, "levircd", rng, names=("a",))
    m1 = blocky_mask(rng, SHAPE, [0, 3, 8])
    m2 = blocky_mask(rng, SHAPE, [0, 3, 8, 255])
    write_image(tmp_path / "A_mask" / "a.png", m1)
    write_image(tmp_path / "B_mask" / "a.png", m2)
    (tmp_path / "manifest.json").write_text(json.dumps({"taxonomy": OPENEARTHMAP.to_dict()}))
    sample = LevirCDReader(tmp_path)[0]
    assert sample.taxonomy == OPENEARTHMAP
    np.testing.assert_array_equal(sample.t1_mask, m1)
    np.testing.assert_array_equal(sample.t2_mask, m2)
    assert (sample.change_mask[m2 == 255] == 255).all()
    assert set(np.unique(sample.change_mask[m2 != 255])) <= {0, 1}


def test_size_mismatch_between_a_and_b_names_both_files(
    tmp_path: Path,
    rng: np.random.Generator,
) -> None:
    build_folder_dataset(tmp_path, "levircd", rng, names=("a",))
    write_image(tmp_path / "B" / "a.png", np.zeros((10, 10, 3), np.uint8))
    reader = LevirCDReader(tmp_path)
    with pytest.raises(DataError, match=r"B/a\.png: t2 image is 10×10 .*/A/a\.png is 32×24"):
        reader[0]


def test_label_size_mismatch_is_an_error(tmp_path: Path, rng: np.random.Generator) -> None:
    build_folder_dataset(tmp_path, "sysucd", rng, names=("a",))
    write_image(tmp_path / "label" / "a.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"label/a\.png: label is 8×8"):
        open_dataset(tmp_path, format="sysucd")[0]


def test_missing_label_file_is_reported_at_open(tmp_path: Path, rng: np.random.Generator) -> None:
    build_folder_dataset(tmp_path, "levircd", rng)
    (tmp_path / "label" / "b.png").unlink()
    with pytest.raises(DataError, match=r"1 images have no label file .* b\.png"):
        LevirCDReader(tmp_path)


def test_missing_folder_and_empty_folders(tmp_path: Path, rng: np.random.Generator) -> None:
    with pytest.raises(DataError, match="no such file"):
        LevirCDReader(tmp_path / "nope")
    with pytest.raises(DataError, match="A/, B/, label/"):
        LevirCDReader(tmp_path)
    for sub in ("A", "B", "label"):
        (tmp_path / sub).mkdir()
    with pytest.raises(DataError, match="no levircd samples"):
        LevirCDReader(tmp_path)


def test_colour_label_is_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    build_folder_dataset(tmp_path, "levircd", rng, names=("a",))
    colour = np.zeros((*SHAPE, 3), np.uint8)
    colour[..., 0] = 200
    write_image(tmp_path / "label" / "a.png", colour)
    with pytest.raises(DataError, match="colour-coded"):
        LevirCDReader(tmp_path)[0]


@pytest.mark.real
def test_real_levircd_crops(real_root: Path) -> None:
    root = real_root / "levircd_crops"
    reader = open_dataset(root)
    assert reader.format == "levircd" and len(reader) == 11
    unchanged = 0
    for sample in reader:
        assert sample.t1_image.shape == (256, 256, 3) and sample.t2_image.shape == (256, 256, 3)
        assert set(np.unique(sample.change_mask)) <= {0, 1}
        label = read_image(root / "label" / f"{sample.name}.png")
        assert int(sample.change_mask.sum()) == int((label > 0).sum())
        unchanged += not sample.change_mask.any()
    assert unchanged == 1


@pytest.mark.parametrize("splits", [("train", "test"), (None,)])
def test_second_rgb_labels_default_to_second_ding_and_say_so(
    tmp_path: Path,
    rng: np.random.Generator,
    splits: tuple[str | None, ...],
) -> None:
    truth = build_second_dataset(tmp_path, rng, splits=splits)
    assert detect_format(tmp_path) == "second"
    reader = SecondReader(tmp_path)
    assert reader.taxonomy is SECOND_DING and len(reader) == len(truth)
    for sample in reader:
        t1, t2, l1, l2, change = truth[(sample.meta["split"], sample.name)]
        assert sample.meta["taxonomy_choice"].startswith("second_ding")
        np.testing.assert_array_equal(sample.t1_image, t1)
        np.testing.assert_array_equal(sample.t2_image, t2)
        np.testing.assert_array_equal(sample.t1_mask, l1)
        np.testing.assert_array_equal(sample.t2_mask, l2)
        np.testing.assert_array_equal(sample.change_mask, change)


def test_second_taxonomy_by_name_changes_ids_not_change(
    tmp_path: Path,
    rng: np.random.Generator,
) -> None:
    truth = build_second_dataset(tmp_path, rng, splits=(None,), names=("a",))
    ding = SecondReader(tmp_path, "second_ding")[0]
    paper = open_dataset(tmp_path, taxonomy="second_paper")[0]
    assert "taxonomy_choice" not in ding.meta and paper.taxonomy is SECOND_PAPER
    l1 = truth[(None, "a")][2]
    water = l1 == SECOND_DING.id_of("water")
    assert water.any() and (paper.t1_mask[water] == SECOND_PAPER.id_of("water")).all()
    np.testing.assert_array_equal(ding.change_mask, paper.change_mask)


def test_second_index_labels(tmp_path: Path, rng: np.random.Generator) -> None:
    truth = build_second_dataset(tmp_path, rng, rgb=False, splits=("train",))
    for sample in SecondReader(tmp_path, SECOND_DING):
        _, _, l1, l2, change = truth[("train", sample.name)]
        np.testing.assert_array_equal(sample.t1_mask, l1)
        np.testing.assert_array_equal(sample.t2_mask, l2)
        np.testing.assert_array_equal(sample.change_mask, change)


def test_second_grey_only_rgb_label_is_decoded_by_colour(
    tmp_path: Path,
    rng: np.random.Generator,
) -> None:
    build_second_dataset(tmp_path, rng, splits=(None,), names=("a",))
    ground = np.zeros(SHAPE, np.uint8)
    ground[:8] = SECOND_DING.id_of("ground")
    write_image(tmp_path / "label1" / "a.png", SECOND_DING.colorize(ground))
    write_image(tmp_path / "label2" / "a.png", SECOND_DING.colorize(ground))
    sample = SecondReader(tmp_path)[0]
    np.testing.assert_array_equal(sample.t1_mask, ground)
    np.testing.assert_array_equal(sample.change_mask, (ground != 0).astype(np.uint8))


def test_second_unknown_colour_and_missing_label(tmp_path: Path, rng: np.random.Generator) -> None:
    build_second_dataset(tmp_path, rng, splits=(None,), names=("a", "b"))
    write_image(tmp_path / "label1" / "a.png", np.full((*SHAPE, 3), (1, 2, 3), np.uint8))
    with pytest.raises(DataError, match=r"\(1, 2, 3\)"):
        SecondReader(tmp_path)[0]
    (tmp_path / "label2" / "b.png").unlink()
    with pytest.raises(DataError, match="label2 file"):
        SecondReader(tmp_path)


def test_labels_outside_0_1_255_are_an_error_unless_their_values_are_given(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    truth = build_folder_dataset(tmp_path, "levircd", rng, label_values=(1, 2))
    with pytest.raises(DataError, match=r"label holds values 1, 2, expected 0/1/255.*1:2"):
        LevirCDReader(tmp_path)[0]
    for sample in LevirCDReader(tmp_path, label_values=(1, 2)):
        label = truth[(None, sample.name)][2]
        np.testing.assert_array_equal(sample.change_mask, (label == 2).astype(np.uint8))
    with pytest.raises(DataError, match="expected 0/1"):
        LevirCDReader(tmp_path, label_values=(0, 1))[0]
    with pytest.raises(ConfigError, match="not both"):
        LevirCDReader(tmp_path, label_values=(1, 2), threshold=1)
