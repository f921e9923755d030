"""Dataset writers: round-trips through the readers, manifest, refusal to clobber, failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import changen
from changen.data.atomic import atomic_path
from changen.data.imageio import read_image
from changen.data.readers import open_dataset
from changen.data.readers.change_folders import LevirCDReader
from changen.data.readers.folder import FolderReader
from changen.data.readers.second import SecondReader
from changen.data.writers import (
    MANIFEST_NAME,
    WRITERS,
    GeoTiffWriter,
    LevirCDWriter,
    SceneFolderWriter,
    SecondRGBWriter,
    SecondWriter,
)
from changen.data.writers import base as writers_base
from changen.errors import DataError, OutputExistsError
from changen.sample import ChangeSample, Scene
from changen.taxonomies import BINARY_BUILDING, OPENEARTHMAP, SECOND_DING
from fixtures_change import GEOREF, SHAPE, blocky_mask, make_change_sample


def _samples(rng: np.random.Generator, n: int = 3, **kwargs: object) -> list[ChangeSample]:
    return [make_change_sample(rng, f"s{i}", **kwargs) for i in range(n)]  # type: ignore[arg-type]


def _assert_same(a: ChangeSample, b: ChangeSample, masks: bool = True) -> None:
    assert a.name == b.name
    for field in (
        "t1_image",
        "t2_image",
        "change_mask",
        *(("t1_mask", "t2_mask") if masks else ()),
    ):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_writers_dict_names_the_layouts() -> None:
    assert {
        "levircd": LevirCDWriter,
        "second": SecondWriter,
        "second_rgb": SecondRGBWriter,
        "geotiff": GeoTiffWriter,
    } == WRITERS


@pytest.mark.parametrize("taxonomy", [BINARY_BUILDING, OPENEARTHMAP], ids=lambda t: t.name)
def test_levircd_round_trip_with_masks_and_splits(
    tmp_path: Path,
    rng: np.random.Generator,
    taxonomy: object,
) -> None:
    samples = _samples(rng, 4, taxonomy=taxonomy, ignore_corner=True)
    with LevirCDWriter(tmp_path, taxonomy, provenance={"seed": 7}) as writer:  # type: ignore[arg-type]
        for i, sample in enumerate(samples):
            writer.write(sample, split="train" if i < 3 else "test")
    label = read_image(tmp_path / "train" / "label" / "s0.png")
    assert set(np.unique(label)) == {0, 255}
    reader = LevirCDReader(tmp_path)
    assert reader.taxonomy == taxonomy and reader.names == ["s0", "s1", "s2", "s3"]
    for original, back in zip(samples, reader, strict=True):
        _assert_same(original, back)
    assert [s.meta["split"] for s in reader] == ["train", "train", "train", "test"]


def test_levircd_without_masks_writes_three_folders(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    samples = _samples(rng, 2, masks=False)
    with LevirCDWriter(tmp_path, BINARY_BUILDING) as writer:
        for sample in samples:
            writer.write(sample)
    assert _files(tmp_path) == [
        "A/s0.png",
        "A/s1.png",
        "B/s0.png",
        "B/s1.png",
        "label/s0.png",
        "label/s1.png",
        MANIFEST_NAME,
    ]
    for original, back in zip(samples, open_dataset(tmp_path), strict=True):
        _assert_same(original, back, masks=False)
        assert back.t1_mask is None


def test_manifest_records_layout_counts_and_provenance(
    tmp_path: Path,
    rng: np.random.Generator,
) -> None:
    samples = _samples(rng, 3, ignore_corner=True)
    with LevirCDWriter(tmp_path, BINARY_BUILDING, provenance={"seed": 7}) as writer:
        writer.write(samples[0], "train")
        writer.write(samples[1], "train")
        writer.write(samples[2], "val")
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest == writer.manifest
    assert manifest["layout"] == "levircd" and manifest["kind"] == "change"
    assert manifest["changen_version"] == changen.__version__
    assert manifest["provenance"] == {"seed": 7}
    assert manifest["taxonomy"] == BINARY_BUILDING.to_dict()
    counts = manifest["counts"]
    assert counts["samples"] == 3
    assert {k: v["samples"] for k, v in counts["splits"].items()} == {"train": 2, "val": 1}
    changed = sum(int((s.change_mask == 1).sum()) for s in samples)
    labelled = sum(int((s.change_mask != 255).sum()) for s in samples)
    assert counts["changed_pixels"] == changed
    assert counts["changed_fraction"] == pytest.approx(changed / labelled)
    t1 = np.bincount(np.concatenate([s.t1_mask.ravel() for s in samples]), minlength=256)
    assert counts["t1_class_pixels"] == {str(i): int(v) for i, v in enumerate(t1) if v}
    assert counts["t1_class_pixels"]["255"] == 3 * 16


def test_geotiff_round_trip_keeps_crs_and_transform(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    samples = _samples(rng, 2, georef=GEOREF)
    with GeoTiffWriter(tmp_path, BINARY_BUILDING) as writer:
        for sample in samples:
            writer.write(sample)
    assert (tmp_path / "A" / "s0.tif").is_file() and (tmp_path / "A_mask" / "s1.tif").is_file()
    for original, back in zip(samples, LevirCDReader(tmp_path), strict=True):
        _assert_same(original, back)
        assert back.georef is not None
        assert back.georef.crs == GEOREF.crs and back.georef.transform == GEOREF.transform
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["layout"] == "geotiff"


def test_second_round_trip_shifts_classes_inside_change(
    tmp_path: Path,
    rng: np.random.Generator,
) -> None:
    samples = _samples(rng, 3, taxonomy=OPENEARTHMAP, ignore_corner=True)
    with SecondWriter(tmp_path, OPENEARTHMAP) as writer:
        for sample in samples:
            writer.write(sample, "train")
    reader = SecondReader(tmp_path)
    derived = reader.taxonomy
    assert derived.name == "openearthmap_second" and derived.names[0] == "unchanged"
    assert derived.names[OPENEARTHMAP.id_of("building") + 1] == "building"
    assert derived.palette()[9].tolist() == list(OPENEARTHMAP.palette()[8])
    for original, back in zip(samples, reader, strict=True):
        changed = original.change_mask == 1
        assert back.name == original.name and "taxonomy_choice" not in back.meta
        np.testing.assert_array_equal(back.t1_image, original.t1_image)
        np.testing.assert_array_equal(back.change_mask, original.change_mask)
        np.testing.assert_array_equal(back.t1_mask[changed], original.t1_mask[changed] + 1)
        np.testing.assert_array_equal(back.t2_mask[changed], original.t2_mask[changed] + 1)
        assert (back.t1_mask[original.change_mask == 0] == 0).all()
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["source_taxonomy"] == OPENEARTHMAP.to_dict() and manifest["label_offset"] == 1


def test_second_taxonomy_is_written_unshifted(tmp_path: Path, rng: np.random.Generator) -> None:
    samples = _samples(rng, 2, taxonomy=OPENEARTHMAP)
    with SecondWriter(tmp_path / "one", OPENEARTHMAP) as writer:
        for sample in samples:
            writer.write(sample)
    first = list(SecondReader(tmp_path / "one"))
    with SecondWriter(tmp_path / "two", first[0].taxonomy) as writer:
        for sample in first:
            writer.write(sample)
    for a, b in zip(first, SecondReader(tmp_path / "two"), strict=True):
        _assert_same(a, b)
    assert json.loads((tmp_path / "two" / MANIFEST_NAME).read_text())["label_offset"] == 0


def test_second_needs_masks_that_carry_the_change(
    tmp_path: Path,
    rng: np.random.Generator,
) -> None:
    writer = SecondWriter(tmp_path, BINARY_BUILDING)
    with pytest.raises(DataError, match="needs both semantic masks"):
        writer.write(make_change_sample(rng, "a", masks=False))
    unchanged_but_changed = make_change_sample(rng, "b", SECOND_DING)
    unchanged_but_changed.change_mask[:2, :3] = 1
    unchanged_but_changed.t1_mask[:2, :3] = 0
    unchanged_but_changed.t2_mask[:2, :3] = 0
    with pytest.raises(DataError, match="6 changed pixel"):
        SecondWriter(tmp_path, SECOND_DING).write(unchanged_but_changed)
    assert _files(tmp_path) == []


def test_scene_folder_round_trip_through_folder_reader(
    tmp_path: Path,
    rng: np.random.Generator,
) -> None:
    scenes = []
    for i in range(3):
        mask = blocky_mask(rng, SHAPE, OPENEARTHMAP.ids)
        instances = blocky_mask(rng, SHAPE, [0, 1, 2, 3]).astype(np.int32) * 1000
        image = rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
        scenes.append(Scene(image, mask, instances, None, OPENEARTHMAP, f"w{i}"))
    with SceneFolderWriter(tmp_path, OPENEARTHMAP) as writer:
        for scene in scenes:
            writer.write(scene)
    assert read_image(tmp_path / "instances" / "w0.png").dtype == np.uint16
    reader = FolderReader(tmp_path)
    assert reader.taxonomy == OPENEARTHMAP and reader.names == ["w0", "w1", "w2"]
    for original, back in zip(scenes, reader, strict=True):
        np.testing.assert_array_equal(back.image, original.image)
        np.testing.assert_array_equal(back.mask, original.mask)
        np.testing.assert_array_equal(back.instances, original.instances)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["kind"] == "scene" and manifest["counts"]["samples"] == 3
    assert sum(manifest["counts"]["class_pixels"].values()) == 3 * SHAPE[0] * SHAPE[1]


def test_scene_writer_refuses_mixed_instances_and_big_ids(
    tmp_path: Path,
    rng: np.random.Generator,
) -> None:
    image = rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
    mask = np.zeros(SHAPE, np.uint8)
    with SceneFolderWriter(tmp_path, BINARY_BUILDING) as writer:
        writer.write(Scene(image, mask, np.ones(SHAPE, np.int32), name="a"))
        with pytest.raises(DataError, match="instance map or none"):
            writer.write(Scene(image, mask, None, name="b"))
        with pytest.raises(DataError, match="16-bit"):
            writer.write(Scene(image, mask, np.full(SHAPE, 70000, np.int32), name="c"))
        with pytest.raises(TypeError, match="takes Scene"):
            writer.write(make_change_sample(rng, "d"))  # type: ignore[arg-type]


def test_non_empty_output_is_refused_without_overwrite(
    tmp_path: Path,
    rng: np.random.Generator,
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        LevirCDWriter(tmp_path, BINARY_BUILDING)
    with pytest.raises(OutputExistsError, match="not a folder"):
        LevirCDWriter(tmp_path / "notes.txt", BINARY_BUILDING)


def test_overwrite_replaces_the_previous_dataset(tmp_path: Path, rng: np.random.Generator) -> None:
    with LevirCDWriter(tmp_path, BINARY_BUILDING) as writer:
        for i, sample in enumerate(_samples(rng, 3)):
            writer.write(sample, split="train" if i else None)
    (tmp_path / "notes.txt").write_text("mine")
    fresh = make_change_sample(rng, "new")
    with LevirCDWriter(tmp_path, BINARY_BUILDING, overwrite=True) as writer:
        writer.write(fresh)
    assert LevirCDReader(tmp_path).names == ["new"]
    assert not (tmp_path / "train" / "A").exists() and (tmp_path / "notes.txt").is_file()
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["counts"]["samples"] == 1


def test_failure_mid_write_leaves_no_manifest_and_no_partial_files(
    tmp_path: Path,
    rng: np.random.Generator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_save = writers_base.save_array
    calls = {"n": 0}

    def failing_save(path: Path, array: np.ndarray, georef: object, classes: object) -> None:
        calls["n"] += 1
        if calls["n"] == 8:  # second sample, third file (its label)
            with atomic_path(path) as tmp:
                tmp.write_bytes(b"half a png")
                raise OSError("disk full")
        real_save(path, array, georef, classes)  # type: ignore[arg-type]

    monkeypatch.setattr(writers_base, "save_array", failing_save)
    samples = _samples(rng, 2)
    with pytest.raises(OSError, match="disk full"), LevirCDWriter(tmp_path, BINARY_BUILDING) as w:
        for sample in samples:
            w.write(sample)
    assert not (tmp_path / MANIFEST_NAME).exists()
    assert _files(tmp_path) == sorted(
        f"{d}/s0.png" for d in ("A", "B", "label", "A_mask", "B_mask")
    )


def test_duplicate_and_bad_names_and_values(tmp_path: Path, rng: np.random.Generator) -> None:
    a, b = _samples(rng, 2)
    with LevirCDWriter(tmp_path, BINARY_BUILDING) as writer:
        writer.write(a)
        with pytest.raises(DataError, match="duplicate sample name 's0'"):
            writer.write(a)
        writer.write(a, split="val")
        b.name = "../escape"
        with pytest.raises(DataError, match="cannot be a file name"):
            writer.write(b)
        b.name, b.change_mask[0, 0] = "b", 7
        with pytest.raises(DataError, match=r"change mask holds values \[7\]"):
            writer.write(b)
        b.change_mask[0, 0] = 0
        b.t1_mask[0, 0] = 9
        with pytest.raises(DataError, match=r"ids \[9\]"):
            writer.write(b)
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["counts"]["samples"] == 2


def test_levircd_refuses_ignore_it_cannot_store(tmp_path: Path, rng: np.random.Generator) -> None:
    sample = make_change_sample(rng, "a", masks=False)
    sample.change_mask[0, :5] = 255
    writer = LevirCDWriter(tmp_path, BINARY_BUILDING)
    with pytest.raises(DataError, match="5 change-mask pixel"):
        writer.write(sample)
    assert _files(tmp_path) == []


def test_labels_and_masks_do_not_inherit_the_image_nodata(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """A source nodata of 0 describes image pixels; on a label it would hide every unchanged
    pixel (issue #16), so only the images carry it."""
    import dataclasses

    import rasterio

    georef = dataclasses.replace(GEOREF, nodata=0.0)
    with GeoTiffWriter(tmp_path, BINARY_BUILDING) as writer:
        writer.write(_samples(rng, 1, georef=georef)[0])
    nodata = {}
    for folder in ("A", "B", "label", "A_mask", "B_mask"):
        with rasterio.open(tmp_path / folder / "s0.tif") as src:
            nodata[folder] = src.nodata
            assert src.crs is not None
    assert nodata == {"A": 0.0, "B": 0.0, "label": None, "A_mask": None, "B_mask": None}
