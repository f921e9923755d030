"""Resolution matching (ResampledReader) and pooled sources (PooledReader, sources files)."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
from affine import Affine
from rasterio.transform import array_bounds

from changen.data.readers import open_dataset
from changen.data.readers.pooled import (
    PooledReader,
    SourceEntry,
    open_sources,
    read_sources_file,
)
from changen.data.readers.resample import ResampledReader, georef_gsd, resample_scene
from changen.errors import ConfigError
from changen.sample import GeoRef, Scene
from fixtures_geo import feature_collection, utm_georef, write_geotiff, write_json
from fixtures_scenes import (
    make_folder_dataset,
    make_loveda_dataset,
    make_oem_dataset,
    random_boxes,
)


def _buildings(root: Path, rng: np.random.Generator, size: int = 128, k: int = 10) -> Path:
    """A geotiff_vector source: one 0.5 m UTM raster with ``k`` box buildings."""
    root.mkdir(parents=True)
    write_geotiff(root / "scene.tif", rng, (size, size))
    rects = [(b.y0, b.x0, b.y1, b.x1) for b in random_boxes(rng, size, k)]
    write_json(root / "scene.geojson", feature_collection(rects))
    return root


def _objects(scene: Scene) -> tuple[int, int]:
    """Distinct instance ids and connected foreground components of a scene."""
    assert scene.instances is not None and scene.mask is not None
    ids = len(np.unique(scene.instances[scene.instances > 0]))
    n, _ = cv2.connectedComponents((scene.mask > 0).astype(np.uint8), connectivity=4)
    return ids, n - 1


def _one_line(e: pytest.ExceptionInfo[ConfigError]) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("target", [1.0, 0.3])
def test_resampling_keeps_the_georeference(tmp_path: Path, rng: np.random.Generator, target):
    make_oem_dataset(tmp_path, rng, regions=("aachen",), n=1, size=32)
    reader = open_dataset(tmp_path, format="openearthmap")
    before, after = reader[0], ResampledReader(reader, target)[0]
    assert before.georef is not None and after.georef is not None
    t = after.georef.transform
    assert (t.a, -t.e) == pytest.approx((target, target))
    assert after.georef.crs == before.georef.crs
    b0 = array_bounds(*before.shape, before.georef.transform)
    b1 = array_bounds(*after.shape, t)
    assert np.abs(np.subtract(b0, b1)).max() <= target / 2 + 1e-9
    assert after.shape == (round(32 * 0.5 / target),) * 2
    assert after.mask is not None and after.mask.shape == after.shape
    assert after.image.dtype == before.image.dtype
    assert after.meta["resample"]["gsd_from"] == "georef"
    assert reader.names == ResampledReader(reader, target).names


@pytest.mark.parametrize(("target", "exact"), [(0.25, True), (1.0, False)])
def test_resampling_keeps_the_objects(tmp_path: Path, rng: np.random.Generator, target, exact):
    reader = open_dataset(_buildings(tmp_path / "b", rng), format="geotiff_vector")
    before, after = reader[0], ResampledReader(reader, target)[0]
    ids0, comps0 = _objects(before)
    ids1, comps1 = _objects(after)
    assert ids0 == 10
    if exact:
        assert (ids1, comps1) == (ids0, comps0)
    else:  # boxes of 3+ px survive halving; 1-px gaps between them may close
        assert ids1 == ids0
        assert comps0 - 2 <= comps1 <= comps0
    # mask and instance map are sampled on the same grid
    assert after.mask is not None and after.instances is not None
    assert ((after.instances > 0) == (after.mask > 0)).all()


def test_factor_one_is_identity(tmp_path: Path, rng: np.random.Generator):
    make_oem_dataset(tmp_path, rng, regions=("aachen",), n=1, size=32)
    reader = open_dataset(tmp_path, format="openearthmap")
    for target in (0.5, 0.504):
        scene = reader[0]
        assert resample_scene(scene, target) is scene
        out = ResampledReader(reader, target)[0]
        assert np.array_equal(out.image, scene.image) and "resample" not in out.meta
        assert out.georef == scene.georef


def test_missing_gsd_is_a_config_error(tmp_path: Path, rng: np.random.Generator):
    make_folder_dataset(tmp_path, rng, n=1, hw=(40, 56))
    reader = open_dataset(tmp_path, format="folder", taxonomy="openearthmap")
    with pytest.raises(ConfigError) as e:
        ResampledReader(reader, 0.5)[0]
    text = _one_line(e)
    assert "tile_000" in text and "give --source-gsd" in text
    out = ResampledReader(reader, 0.5, source_gsd=0.25)[0]
    assert out.shape == (20, 28) and out.georef is None
    assert out.meta["resample"]["gsd_from"] == "source_gsd"
    with pytest.raises(ConfigError, match="--gsd"):
        ResampledReader(reader, 0.0)


def test_georef_gsd_units_and_geographic():
    utm = Affine(0.5, 0, 700_000, 0, -0.5, 3_700_000)
    assert georef_gsd("EPSG:32616", utm, (10, 10)) == (0.5, 0.5)
    feet = Affine(1, 0, 1e6, 0, -1, 2e5)  # NY state plane, US feet
    assert georef_gsd("EPSG:2263", feet, (10, 10)) == pytest.approx((0.3048006, 0.3048006))
    # 1e-5 degree pixels at 60° N: N·cos 60°·Δλ east-west, M·Δφ north-south (WGS84 radii)
    lonlat = Affine(1e-5, 0, 10, 0, -1e-5, 60.0005)
    gx, gy = georef_gsd("EPSG:4326", lonlat, (100, 100))
    assert gx == pytest.approx(math.radians(1e-5) * 6_394_209 * 0.5, rel=2e-3)
    assert gy == pytest.approx(math.radians(1e-5) * 6_383_454, rel=2e-3)
    # Web-Mercator "metres" are a·Δλ and a·sec φ·Δφ: far too long away from the equator
    y = 6378137 * math.log(math.tan(math.pi / 4 + math.radians(60) / 2))
    merc = Affine(0.2, 0, 1e6, 0, -0.2, y + 10)
    expected = (0.2 * 0.5 * 6_394_209 / 6378137, 0.2 * 0.5 * 6_383_454 / 6378137)
    assert georef_gsd("EPSG:3857", merc, (100, 100)) == pytest.approx(expected, rel=1e-3)


def test_geographic_scene_gets_square_metre_pixels():
    lonlat = GeoRef("EPSG:4326", Affine(4e-6, 0, 10, 0, -4e-6, 60.0))
    scene = Scene(np.zeros((50, 80, 3), np.uint8), georef=lonlat)
    out = resample_scene(scene, 0.5)
    assert out.georef is not None
    assert georef_gsd("EPSG:4326", out.georef.transform, out.shape) == pytest.approx(
        (0.5, 0.5), rel=1e-3
    )
    assert out.shape == (round(50 * 0.4457 / 0.5), round(80 * 0.2232 / 0.5))


def test_many_bands_and_uint16():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 65536, (30, 40, 6)).astype(np.uint16)
    scene = Scene(image, georef=utm_georef())
    small = resample_scene(scene, 0.7)
    big = resample_scene(scene, 0.2)
    assert small.image.shape == (21, 29, 6) and small.image.dtype == np.uint16
    assert big.image.shape == (75, 100, 6) and big.image.dtype == np.uint16


def _folders(tmp_path: Path, rng: np.random.Generator, *names: str) -> list[Path]:
    roots = []
    for i, name in enumerate(names):
        root = tmp_path / f"p{i}" / name
        make_folder_dataset(root, rng, n=2 + i, hw=(40, 56))
        roots.append(root)
    return roots


def test_pooling(tmp_path: Path, rng: np.random.Generator):
    a, b = _folders(tmp_path, rng, "alpha", "beta")
    pooled = open_sources([SourceEntry(str(a)), SourceEntry(str(b), "folder")], "openearthmap")
    assert isinstance(pooled, PooledReader)
    assert len(pooled) == 5 == len(pooled.names) == len(set(pooled.names))
    assert pooled.names[0] == "alpha__tile_000" and pooled.names[-1] == "beta__tile_002"
    assert pooled.format == "folder" and pooled.taxonomy.name == "openearthmap"
    items = list(pooled)
    assert [s.name for s in items] == pooled.names
    assert items[0].source == str(a / "images" / "tile_000.png")
    assert items[4].source == str(b / "images" / "tile_002.png")
    assert items[4].meta["pool"] == {"root": str(b), "index": 1, "name": "tile_002"}
    assert np.array_equal(pooled[-1].image, items[4].image)
    assert [s["items"] for s in pooled.sources] == [2, 3]
    with pytest.raises(IndexError):
        pooled[5]


def test_pooling_same_stems_and_single_source(tmp_path: Path, rng: np.random.Generator):
    a, b = _folders(tmp_path, rng, "data", "data")
    pooled = open_sources(
        [SourceEntry(str(a)), SourceEntry(str(b)), SourceEntry(str(a))], "openearthmap"
    )
    assert len(set(pooled.names)) == len(pooled) == 7
    assert pooled.names[0] == "0-data__tile_000" and pooled.names[-1] == "2-data__tile_001"
    single = open_sources([SourceEntry(str(a))], "openearthmap")
    assert not isinstance(single, PooledReader) and single.names == ["tile_000", "tile_001"]


def test_pooling_with_gsd(tmp_path: Path, rng: np.random.Generator):
    make_oem_dataset(tmp_path / "oem", rng, regions=("aachen",), n=1, size=32)
    make_folder_dataset(tmp_path / "png", rng, n=1, hw=(40, 56))
    entries = [SourceEntry(str(tmp_path / "oem")), SourceEntry(str(tmp_path / "png"), gsd=0.25)]
    pooled = open_sources(entries, "openearthmap", target_gsd=1.0)
    assert [s.shape for s in pooled] == [(16, 16), (10, 14)]
    with pytest.raises(ConfigError, match="give --source-gsd"):
        open_sources([SourceEntry(str(tmp_path / "png"))], "openearthmap", target_gsd=1.0)[0]


def test_taxonomy_mismatch(tmp_path: Path, rng: np.random.Generator):
    make_folder_dataset(tmp_path / "bin", rng, n=1, mask_style="binary01")
    make_loveda_dataset(tmp_path / "loveda", rng, n=1)
    entries = [SourceEntry(str(tmp_path / "bin")), SourceEntry(str(tmp_path / "loveda"))]
    with pytest.raises(ConfigError) as e:
        open_sources(entries)
    text = _one_line(e)
    assert str(tmp_path / "bin") in text and str(tmp_path / "loveda") in text
    assert "--taxonomy" in text


def test_sources_file(tmp_path: Path, rng: np.random.Generator):
    a, b = _folders(tmp_path, rng, "alpha", "beta")
    file = tmp_path / "sources.json"
    file.write_text(
        json.dumps([{"path": "p0/alpha"}, {"path": str(b), "format": "folder", "gsd": 0.3}])
    )
    entries = read_sources_file(file)
    assert entries == [SourceEntry(str(a)), SourceEntry(str(b), "folder", 0.3)]
    assert len(open_sources(entries, "openearthmap")) == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{", "not valid JSON"),
        ('{"path": "p0/alpha"}', "JSON list"),
        ("[]", "JSON list"),
        ('[{"format": "folder"}]', '"path"'),
        ('[{"path": "p0/alpha", "gds": 0.3}]', "unknown keys"),
        ('[{"path": "p0/alpha", "gsd": -1}]', '"gsd"'),
        ('[{"path": "p0/alpha", "format": 3}]', '"format"'),
        ('[{"path": "p0/alpha"}, {"path": "nowhere"}]', "source 1: .*nowhere does not exist"),
    ],
)
def test_sources_file_errors(tmp_path: Path, rng: np.random.Generator, text, message):
    _folders(tmp_path, rng, "alpha")
    file = tmp_path / "sources.json"
    file.write_text(text)
    with pytest.raises(ConfigError, match=message) as e:
        read_sources_file(file)
    assert str(file) in _one_line(e)


def test_missing_sources_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read the sources file"):
        read_sources_file(tmp_path / "absent.json")


def test_pickling(tmp_path: Path, rng: np.random.Generator):
    a, b = _folders(tmp_path, rng, "alpha", "beta")
    pooled = open_sources([SourceEntry(str(a)), SourceEntry(str(b))], "openearthmap", 0.25)
    back = pickle.loads(pickle.dumps(pooled))
    assert back.names == pooled.names and back.format == pooled.format
    with pytest.raises(ConfigError):  # no GSD for the PNGs: the wrapper survived the trip
        back[0]
    resampled = pickle.loads(
        pickle.dumps(ResampledReader(open_dataset(a, taxonomy="openearthmap"), 1.0, 0.5))
    )
    assert resampled[1].shape == (20, 28)


def test_real_spacenet_halves(real_root: Path):
    folder = real_root / "spacenet4_atlanta"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    reader = open_dataset(folder, format="geotiff_vector")
    before = reader[0]
    after = ResampledReader(reader, 1.0)[0]
    assert before.shape == (900, 900) and after.shape == (450, 450)
    assert after.georef is not None and after.georef.crs == "EPSG:32616"
    assert (after.georef.transform.a, after.georef.transform.e) == (1.0, -1.0)
    assert array_bounds(450, 450, after.georef.transform) == pytest.approx(
        array_bounds(900, 900, before.georef.transform)
    )
    ids0, _ = _objects(before)
    ids1, _ = _objects(after)
    assert ids1 >= ids0 - 2  # only buildings under 2×2 px could vanish
