"""XView2Reader: rasterisation (pixel centres, later wins), phases, errors, real tiles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from changen.data.readers.folder import FolderReader
from changen.data.readers.xview2 import XView2Reader
from changen.errors import ConfigError, DataError
from changen.taxonomies import BINARY_BUILDING, XVIEW2_DAMAGE
from fixtures_scenes import Box, make_xview2_dataset, random_image, write_png, xbd_json


def _write_tile(
    root: Path,
    wkts: list[str],
    size: int = 16,
    phase: str = "pre",
    subtypes: list[str] | None = None,
) -> None:
    stem = f"quake_00000007_{phase}_disaster"
    write_png(root / "images" / f"{stem}.png", np.zeros((size, size, 3), np.uint8))
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / f"{stem}.json").write_text(
        json.dumps(xbd_json(wkts, size, f"{stem}.png", subtypes))
    )


def test_pre_phase_buildings_and_instances(tmp_path: Path, rng: np.random.Generator) -> None:
    truth = make_xview2_dataset(tmp_path, rng)
    reader = XView2Reader(tmp_path)
    assert XView2Reader.detect(tmp_path) and not FolderReader.detect(tmp_path)
    assert reader.names == sorted(truth) and reader.taxonomy is BINARY_BUILDING
    for scene in reader:
        t = truth[scene.name]
        assert scene.image.shape == (64, 64, 3) and scene.image.dtype == np.uint8
        np.testing.assert_array_equal(scene.instances, t.instances)
        np.testing.assert_array_equal(scene.mask, (t.mask > 0).astype(np.uint8))
        assert scene.meta == {
            "disaster": "test-flood",
            "tile": t.meta["tile"],
            "phase": "pre",
            "uids": t.meta["uids"],
        }
        assert scene.source.endswith(f"{scene.name}_pre_disaster.png")


def test_post_phase_damage_ids(tmp_path: Path, rng: np.random.Generator) -> None:
    truth = make_xview2_dataset(tmp_path, rng)
    reader = XView2Reader(tmp_path, phase="post")
    assert reader.taxonomy is XVIEW2_DAMAGE
    for scene in reader:
        np.testing.assert_array_equal(scene.mask, truth[scene.name].mask)
        assert scene.meta["phase"] == "post"


def test_pixel_centre_rule_and_later_polygon_wins(tmp_path: Path) -> None:
    first = Box(2, 3, 5, 7).wkt()
    second = Box(4, 6, 10, 8).wkt()
    half = "POLYGON ((10.4 10.4, 12.4 10.4, 12.4 12.4, 10.4 12.4, 10.4 10.4))"
    _write_tile(tmp_path, [first, second, half])
    inst = XView2Reader(tmp_path)[0].instances
    expected = np.zeros((16, 16), np.int32)
    expected[3:7, 2:5] = 1
    expected[6:8, 4:10] = 2
    expected[10:12, 10:12] = 3  # centres 10.5 and 11.5 are inside, 12.5 is not
    np.testing.assert_array_equal(inst, expected)


def test_invalid_wkt_names_file_and_feature(tmp_path: Path) -> None:
    _write_tile(tmp_path, [Box(1, 1, 4, 4).wkt(), "POLYGON ((1 1, 2 2"])
    with pytest.raises(DataError, match=r"quake_00000007_pre_disaster\.json: feature 1 "):
        XView2Reader(tmp_path)[0]


def test_non_polygon_feature_is_refused(tmp_path: Path) -> None:
    _write_tile(tmp_path, ["POINT (3 3)"])
    with pytest.raises(DataError, match=r"\.json: feature 0 is a Point"):
        XView2Reader(tmp_path)[0]


def test_post_feature_without_subtype(tmp_path: Path) -> None:
    _write_tile(tmp_path, [Box(1, 1, 4, 4).wkt()], phase="post")
    with pytest.raises(DataError, match=r"post_disaster\.json: feature 0 has no .*subtype"):
        XView2Reader(tmp_path, phase="post")[0]


def test_unknown_subtype(tmp_path: Path) -> None:
    _write_tile(tmp_path, [Box(1, 1, 4, 4).wkt()], phase="post", subtypes=["flattened"])
    with pytest.raises(DataError, match=r"feature 0 has class 'flattened'"):
        XView2Reader(tmp_path, phase="post")[0]


def test_label_size_disagreeing_with_image(tmp_path: Path) -> None:
    _write_tile(tmp_path, [Box(1, 1, 4, 4).wkt()])
    write_png(
        tmp_path / "images" / "quake_00000007_pre_disaster.png", np.zeros((8, 16, 3), np.uint8)
    )
    with pytest.raises(DataError, match=r"16×16 but the image .*png is 16×8"):
        XView2Reader(tmp_path)[0]


def test_missing_label_and_empty_and_bad_phase(tmp_path: Path, rng: np.random.Generator) -> None:
    with pytest.raises(DataError, match="no xView2 pre-disaster images"):
        XView2Reader(tmp_path)
    make_xview2_dataset(tmp_path, rng, n=2)
    (tmp_path / "labels" / "test-flood_00000001_pre_disaster.json").unlink()
    with pytest.raises(DataError, match=r"1 images have no label JSON.*00000001_pre"):
        XView2Reader(tmp_path)
    assert len(XView2Reader(tmp_path, phase="post")) == 2
    with pytest.raises(ConfigError, match="phase"):
        XView2Reader(tmp_path, phase="during")  # type: ignore[arg-type]


def test_unreadable_json_is_named(tmp_path: Path) -> None:
    _write_tile(tmp_path, [])
    (tmp_path / "labels" / "quake_00000007_pre_disaster.json").write_text("{not json")
    with pytest.raises(DataError, match=r"pre_disaster\.json: not an xBD label file"):
        XView2Reader(tmp_path)[0]


def test_empty_label_gives_background(tmp_path: Path) -> None:
    _write_tile(tmp_path, [])
    scene = XView2Reader(tmp_path)[0]
    assert not scene.mask.any() and not scene.instances.any() and scene.meta["uids"] == []


def test_split_folders(tmp_path: Path, rng: np.random.Generator) -> None:
    make_xview2_dataset(tmp_path / "train", rng, n=2, disaster="a-fire")
    make_xview2_dataset(tmp_path / "tier3", rng, n=1, disaster="b-wind")
    assert XView2Reader.detect(tmp_path)
    assert XView2Reader(tmp_path).names == [
        "b-wind_00000000",
        "a-fire_00000000",
        "a-fire_00000001",
    ]  # tier3/ sorts before train/
    write_png(
        tmp_path / "tier3" / "images" / "a-fire_00000000_pre_disaster.png",
        random_image(rng, (8, 8)),
    )
    (tmp_path / "tier3" / "labels" / "a-fire_00000000_pre_disaster.json").write_text("{}")
    with pytest.raises(DataError, match="a-fire_00000000"):
        XView2Reader(tmp_path)


def test_detect_rejects_other_layouts(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    write_png(tmp_path / "images" / "x.png", np.zeros((4, 4, 3), np.uint8))
    assert not XView2Reader.detect(tmp_path)


@pytest.mark.real
@pytest.mark.parametrize(("tile", "polygons"), [(0, 185), (1, 198), (2, 103)])
def test_real_joplin_tiles(real_root: Path, tile: int, polygons: int) -> None:
    root = real_root / "xview2_joplin"
    name = f"joplin-tornado_{tile:08d}"
    pre_reader = XView2Reader(root)
    pre = pre_reader[pre_reader.names.index(name)]
    assert pre.image.shape == (1024, 1024, 3) and pre.mask.shape == (1024, 1024)
    assert len(pre.meta["uids"]) == polygons
    assert np.count_nonzero(np.unique(pre.instances)) == polygons
    assert set(np.unique(pre.mask)) == {0, 1}
    post_reader = XView2Reader(root, phase="post")
    post = post_reader[post_reader.names.index(name)]
    damage = set(np.unique(post.mask).tolist()) - {0}
    assert damage <= {1, 2, 3, 4, 5} and len(damage) >= 3
    assert set(post.meta["uids"]) == set(pre.meta["uids"])
    assert np.count_nonzero(np.unique(post.instances)) == polygons
