"""The procedural sample world: determinism, label consistency, change pairs, files on disk."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from changen.data.readers.change_folders import LevirCDReader
from changen.data.readers.folder import FolderReader
from changen.data.world import (
    ChangeConfig,
    Layout,
    Look,
    WorldConfig,
    WorldObject,
    edit_layout,
    item_rng,
    make_layout,
    rasterize_labels,
    render_change_pair,
    render_layout,
    render_scene,
    write_sample_world,
)
from changen.data.world.geometry import Box
from changen.errors import ConfigError, OutputExistsError
from changen.taxonomies import OPENEARTHMAP

BUILDING, ROAD, TREE, WATER = 8, 4, 5, 6


def _scene(seed: int, size: int = 256, **config: object):
    return render_scene(item_rng(seed, 0), WorldConfig(size=size, **config))  # type: ignore[arg-type]


def test_same_seed_gives_identical_scene_and_other_seeds_differ() -> None:
    a, b, c = _scene(3), _scene(3), _scene(4)
    for field in ("image", "mask", "instances"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.mask, c.mask)


@pytest.mark.parametrize("size", [64, 96, 256])
def test_shapes_dtypes_and_taxonomy(size: int) -> None:
    for seed in range(3):
        s = _scene(seed, size)
        assert s.image.shape == (size, size, 3) and s.image.dtype == np.uint8
        assert s.mask.shape == (size, size) and s.mask.dtype == np.uint8
        assert s.instances.shape == (size, size) and s.instances.dtype == np.int32
        assert s.taxonomy is OPENEARTHMAP
        assert set(np.unique(s.mask)) <= set(OPENEARTHMAP.ids)
        OPENEARTHMAP.validate(s.mask)


def test_scenes_cover_the_openearthmap_classes() -> None:
    config = {"water_probability": 1.0, "lots": (1, 2), "bare_patches": (1, 3)}
    seen: set[int] = set()
    for seed in range(6):
        seen |= set(np.unique(_scene(seed, **config).mask).tolist())
    assert seen == {1, 2, 3, 4, 5, 6, 7, 8}


def test_image_looks_like_an_image() -> None:
    s = _scene(1)
    mean = s.image.reshape(-1, 3).mean(0)
    assert 50 < mean.mean() < 200
    assert s.image.std() > 10  # textured, not flat
    veg = s.mask == TREE
    if veg.any():  # tree crowns are darker than open ground
        assert s.image[veg].mean() < s.image[s.mask == 2].mean()


@pytest.mark.parametrize(("seed", "gap"), [(0, 3.0), (1, 3.0), (2, 3.0), (3, 0.0), (4, 0.0)])
def test_instances_are_unique_and_buildings_are_separate_regions(seed: int, gap: float) -> None:
    s = _scene(seed, buildings=(30, 50), building_gap=gap)
    ids = np.unique(s.instances)
    ids = ids[ids != 0]
    for i in ids:  # every instance has exactly one class
        assert len(np.unique(s.mask[s.instances == i])) == 1
    buildings = [i for i in ids if s.mask[s.instances == i][0] == BUILDING]
    assert len(buildings) >= 10
    for i in buildings:
        n, _ = cv2.connectedComponents((s.instances == i).astype(np.uint8), connectivity=8)
        assert n - 1 == 1, f"building instance {i} is split"
    # buildings never touch: the connected components of the class mask are the instances
    n, _ = cv2.connectedComponents((s.mask == BUILDING).astype(np.uint8), connectivity=8)
    assert n - 1 == len(buildings)
    assert (s.instances[s.mask == BUILDING] > 0).all()


def test_labels_match_rasterize_labels() -> None:
    layout = make_layout(item_rng(5, 0), WorldConfig(size=128))
    _, mask, inst = render_layout(layout, Look(), np.random.default_rng(0))
    mask2, inst2 = rasterize_labels(layout)
    np.testing.assert_array_equal(mask, mask2)
    np.testing.assert_array_equal(inst, inst2)


def _one_building_layout(style: str) -> Layout:
    building = WorldObject(
        "building",
        1,
        (150.0, 150.0, 150.0),
        boxes=(Box(32.0, 32.0, 20.0, 14.0, 0.0),),
        height=6.0,
        style=style,
    )
    ground = ((120.0, 120.0, 100.0), (120.0, 120.0, 100.0))
    return Layout(64, 64, (0, 0, 64, 64), ground, (building,), texture_seed=0)


def test_building_casts_a_shadow_away_from_the_sun_and_has_a_shaded_roof_half() -> None:
    look = Look(sun_azimuth=90.0, shadow_length=1.0, blur=0.0, sensor_noise=0.0, texture=0.0)
    image, mask, _ = render_layout(_one_building_layout("gable"), look, np.random.default_rng(0))
    grey = image.astype(float).mean(2)
    # the sun is towards +y (down), so the shadow falls on the rows just above the building
    above, below = grey[19:23, 26:38].mean(), grey[42:46, 26:38].mean()
    assert above < 0.7 * below
    assert (mask[19:23, 26:38] == 2).all()  # the shadow is not a label
    lit, shaded = grey[34:38, 26:38].mean(), grey[26:30, 26:38].mean()
    assert lit > shaded * 1.1  # the roof half facing the sun is brighter


def _pair(seed: int, size: int = 256, **change: object):
    return render_change_pair(item_rng(seed, 0), WorldConfig(size=size), ChangeConfig(**change))  # type: ignore[arg-type]


def test_change_pair_is_deterministic() -> None:
    a, b = _pair(2), _pair(2)
    for field in ("t1_image", "t2_image", "change_mask", "t1_mask", "t2_mask"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()
    assert a.meta == b.meta


@pytest.mark.parametrize(("seed", "size"), [(0, 256), (1, 256), (2, 96), (3, 64), (4, 64)])
def test_change_mask_is_the_label_difference_and_not_empty(seed: int, size: int) -> None:
    p = _pair(seed, size)
    assert p.t1_image.shape == p.t2_image.shape == (size, size, 3)
    assert p.change_mask.dtype == np.uint8 and set(np.unique(p.change_mask)) <= {0, 1}
    np.testing.assert_array_equal(p.change_mask, (p.t1_mask != p.t2_mask).astype(np.uint8))
    assert p.change_mask.any()
    assert p.meta["edits"] and {e["op"] for e in p.meta["edits"]} <= {"add", "remove", "reclass"}
    assert p.taxonomy is OPENEARTHMAP
    json.dumps(p.meta)  # meta is plain data


def test_edit_layout_lists_its_edits_and_never_reuses_ids() -> None:
    config = WorldConfig(size=256)
    rng = item_rng(8, 0)
    t1 = make_layout(rng, config, pad=2)
    change = ChangeConfig(add=(4, 4), remove=(2, 2), reclass=(2, 2))  # per 256² pixels
    t2, edits = edit_layout(rng, t1, config, change)
    ids1 = {o.id for o in t1.labelled()}
    ids2 = {o.id: o for o in t2.labelled()}
    for e in edits:
        if e["op"] == "add":
            assert e["id"] not in ids1 and ids2[e["id"]].class_id == e["class"]
        elif e["op"] == "remove":
            assert e["id"] in ids1 and e["id"] not in ids2
        else:
            assert ids2[e["id"]].class_id == e["class"] != e["from_class"]
    assert {e["op"] for e in edits} == {"add", "remove", "reclass"}
    assert len({e["id"] for e in edits}) == len(edits)  # one edit per object


def test_edits_explain_the_change() -> None:
    p = _pair(6, remove=(0, 0), reclass=(0, 0), add=(3, 3))
    assert all(e["op"] == "add" for e in p.meta["edits"])
    added = {e["class"] for e in p.meta["edits"]}
    assert set(np.unique(p.t2_mask[p.change_mask == 1])) <= added


@pytest.mark.parametrize("seed", range(4))
def test_nuisance_changes_pixels_outside_the_change_within_bounds(seed: int) -> None:
    p = _pair(seed, max_shift=0)
    same = p.change_mask == 0
    t1, t2 = p.t1_image[same].astype(float), p.t2_image[same].astype(float)
    assert np.abs(t1 - t2).mean() > 3.0  # illumination / season / sensor noise present
    assert abs(t2.mean() - t1.mean()) / t1.mean() < 0.35  # but the same scene


def _best_shift(a: np.ndarray, b: np.ndarray, k: int) -> tuple[int, int]:
    """The (dy, dx) minimising |a[y + dy, x + dx] - b[y, x]| after standardisation."""
    a = a.mean(2)
    b = b.mean(2)
    a, b = (a - a.mean()) / a.std(), (b - b.mean()) / b.std()
    h, w = b.shape
    scores = {}
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            aa = a[k + dy : h - k + dy, k + dx : w - k + dx]
            scores[(dy, dx)] = np.abs(aa - b[k : h - k, k : w - k]).mean()
    return min(scores, key=scores.get)  # type: ignore[arg-type]


def test_registration_shift_moves_only_the_t2_image_as_documented() -> None:
    shifts = set()
    for seed in range(3):
        p = _pair(seed, max_shift=3)
        dy, dx = p.meta["shift"]
        assert max(abs(dy), abs(dx)) <= 3
        shifts.add((dy, dx))
        assert _best_shift(p.t1_image, p.t2_image, 4) == (dy, dx)
    assert len(shifts) > 1


def test_config_errors_are_actionable() -> None:
    with pytest.raises(ConfigError, match="size"):
        WorldConfig(size=8)
    with pytest.raises(ConfigError, match="buildings"):
        WorldConfig(buildings=(5, 2))
    with pytest.raises(ConfigError, match="water_probability"):
        WorldConfig(water_probability=1.5)
    with pytest.raises(ConfigError, match="at least one edit"):
        ChangeConfig(add=(0, 0), remove=(0, 0), reclass=(0, 0))
    with pytest.raises(ConfigError, match="n=0"):
        write_sample_world("unused", 0, seed=0)


def test_write_sample_world_scenes_read_back(tmp_path) -> None:
    root = write_sample_world(tmp_path / "world", 3, seed=11, size=64)
    for sub in ("images", "masks", "instances"):
        assert len(list((root / sub).iterdir())) == 3
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["taxonomy"]["name"] == "openearthmap"
    assert manifest["provenance"]["seed"] == 11
    reader = FolderReader(root)
    assert len(reader) == 3 and reader.taxonomy.name == "openearthmap"
    expected = render_scene(item_rng(11, 2), WorldConfig(size=64))
    got = reader[2]
    np.testing.assert_array_equal(got.image, expected.image)
    np.testing.assert_array_equal(got.mask, expected.mask)
    np.testing.assert_array_equal(got.instances, expected.instances)
    with pytest.raises(OutputExistsError):
        write_sample_world(root, 1, seed=0, size=64)
    write_sample_world(root, 1, seed=0, size=64, overwrite=True)
    assert len(FolderReader(root)) == 1


def test_write_sample_world_pairs_read_back(tmp_path) -> None:
    root = write_sample_world(tmp_path / "pairs", 2, seed=5, size=64, pairs=True)
    reader = LevirCDReader(root, OPENEARTHMAP)
    assert len(reader) == 2
    expected = render_change_pair(item_rng(5, 1), replace(WorldConfig(), size=64))
    got = reader[1]
    np.testing.assert_array_equal(got.t2_image, expected.t2_image)
    np.testing.assert_array_equal(got.change_mask, expected.change_mask)
    np.testing.assert_array_equal(got.t2_mask, expected.t2_mask)
