"""GeoTIFF + vector labels: reprojection, rasterisation, pairing, band rules and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from changen.data.raster import read_raster, write_raster
from changen.data.readers.base import SkippedLabelsWarning
from changen.data.readers.geovector import GeoVectorReader
from changen.errors import ConfigError, DataError, FormatError
from changen.sample import GeoRef, Taxonomy
from changen.taxonomies import OPENEARTHMAP, SECOND_DING
from fixtures_geo import (
    RECTS,
    UTM,
    UTM_TRANSFORM,
    expected_maps,
    feature_collection,
    utm_georef,
    write_geotiff,
    write_json,
)

SHAPE = (48, 64)
#: A second raster 40 m east of the first (80 pixels at 0.5 m): no overlap with it.
EAST = Affine.translation(40.0, 0.0) @ UTM_TRANSFORM


@pytest.fixture
def paired(tmp_path: Path, rng: np.random.Generator) -> Path:
    """Two UTM rasters, each with its own EPSG:4326 GeoJSON (no ``crs`` member)."""
    write_geotiff(tmp_path / "a.tif", rng)
    write_json(tmp_path / "a.geojson", feature_collection(RECTS))
    write_geotiff(tmp_path / "b.tif", rng, georef=utm_georef(EAST))
    write_json(tmp_path / "b.geojson", feature_collection(RECTS[:1], EAST))
    return tmp_path


def test_polygons_in_4326_land_on_their_utm_pixels(paired: Path) -> None:
    reader = GeoVectorReader(paired)
    assert reader.format == "geotiff_vector" and reader.names == ["a", "b"]
    scene = reader[0]
    mask, instances = expected_maps(SHAPE, RECTS)
    np.testing.assert_array_equal(scene.mask, mask)
    np.testing.assert_array_equal(scene.instances, instances)
    assert scene.georef == utm_georef()
    assert scene.image.dtype == np.uint8 and scene.image.shape == (*SHAPE, 3)
    np.testing.assert_array_equal(scene.image, read_raster(paired / "a.tif")[0])
    assert scene.meta["instance_features"] == [0, 1, 2]
    assert reader[1].instances.max() == 1 and reader[1].georef == utm_georef(EAST)


def test_detect(paired: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert GeoVectorReader.detect(paired)
    only_tif = tmp_path_factory.mktemp("only_tif")
    write_geotiff(only_tif / "a.tif", np.random.default_rng(0))
    (only_tif / "meta.json").write_text('{"sensor": "x"}')  # metadata, not GeoJSON
    assert not GeoVectorReader.detect(only_tif)
    assert not GeoVectorReader.detect(paired / "a.tif")


def test_geojson_crs_member_is_honoured(tmp_path: Path, rng: np.random.Generator) -> None:
    write_geotiff(tmp_path / "a.tif", rng)
    doc = feature_collection(RECTS, dst_crs=None, crs_member="urn:ogc:def:crs:EPSG::32633")
    write_json(tmp_path / "a.geojson", doc)
    np.testing.assert_array_equal(GeoVectorReader(tmp_path)[0].mask, expected_maps(SHAPE, RECTS)[0])


def test_shared_labels_are_clipped_per_raster(tmp_path: Path, rng: np.random.Generator) -> None:
    write_geotiff(tmp_path / "a.tif", rng)
    write_geotiff(tmp_path / "b.tif", rng, georef=utm_georef(EAST))
    straddling = (10, 60, 20, 100)  # columns 60-100 of a = columns -20..20 of b
    write_json(tmp_path / "all_buildings.geojson", feature_collection([*RECTS, straddling]))
    reader = GeoVectorReader(tmp_path)
    a, b = reader[0], reader[1]
    np.testing.assert_array_equal(a.instances, expected_maps(SHAPE, [*RECTS, (10, 60, 20, 64)])[1])
    assert b.meta["instance_features"] == [3]
    np.testing.assert_array_equal(b.instances, expected_maps(SHAPE, [(10, 0, 20, 20)])[1])


def test_spacenet_style_names_pair_by_trailing_parts(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    write_geotiff(tmp_path / "RGB-PanSharpen_AOI_2_Vegas_img1.tif", rng)
    write_geotiff(tmp_path / "RGB-PanSharpen_AOI_2_Vegas_img10.tif", rng, georef=utm_georef(EAST))
    write_json(tmp_path / "buildings_AOI_2_Vegas_img1.geojson", feature_collection(RECTS))
    write_json(
        tmp_path / "buildings_AOI_2_Vegas_img10.geojson", feature_collection(RECTS[:1], EAST)
    )
    reader = GeoVectorReader(tmp_path)
    assert [p.name for p in reader.label_files] == [
        "buildings_AOI_2_Vegas_img1.geojson",
        "buildings_AOI_2_Vegas_img10.geojson",
    ]
    assert reader[0].instances.max() == 3 and reader[1].instances.max() == 1


def test_unpaired_rasters_are_named(paired: Path, rng: np.random.Generator) -> None:
    write_geotiff(paired / "c.tif", rng)
    with pytest.raises(DataError, match=r"no label file matches raster\(s\) \['c.tif'\]"):
        GeoVectorReader(paired)


def test_class_from_a_property(tmp_path: Path, rng: np.random.Generator) -> None:
    write_geotiff(tmp_path / "a.tif", rng)
    props = [{"kind": "building"}, {"kind": "road"}, {"kind": 6}]
    write_json(tmp_path / "a.geojson", feature_collection(RECTS, properties=props))
    scene = GeoVectorReader(tmp_path, OPENEARTHMAP, class_property="kind")[0]
    np.testing.assert_array_equal(scene.mask, expected_maps(SHAPE, RECTS, [8, 4, 6])[0])
    mapped = GeoVectorReader(
        tmp_path, OPENEARTHMAP, class_property="kind", class_map={"building": 8, "road": 3, "6": 2}
    )[0]
    np.testing.assert_array_equal(mapped.mask, expected_maps(SHAPE, RECTS, [8, 3, 2])[0])
    with pytest.raises(DataError, match=r"a\.geojson: feature 1: kind='road' is not in class_map"):
        GeoVectorReader(tmp_path, OPENEARTHMAP, class_property="kind", class_map={"building": 1})[0]
    with pytest.raises(DataError, match="feature 1: kind='road' is neither"):
        GeoVectorReader(tmp_path, class_property="kind")[0]


def test_taxonomy_without_building_needs_a_class(paired: Path) -> None:
    no_building = Taxonomy("no_building", SECOND_DING.classes[:3])
    with pytest.raises(ConfigError, match="default_class"):
        GeoVectorReader(paired, no_building)[0]
    scene = GeoVectorReader(paired, OPENEARTHMAP, default_class=5)[0]
    assert set(np.unique(scene.mask)) == {0, 5}


def test_uint16_panchromatic_with_nodata(tmp_path: Path) -> None:
    pan = np.random.default_rng(3).integers(1000, 3000, (*SHAPE, 1)).astype(np.uint16)
    pan[:, :32] = 0  # half the chip is nodata (outside the satellite strip)
    write_raster(tmp_path / "pan.tif", pan, utm_georef(nodata=0))
    write_json(tmp_path / "pan.geojson", feature_collection(RECTS))
    scene = GeoVectorReader(tmp_path)[0]
    assert scene.image.dtype == np.uint8 and scene.image.shape == (*SHAPE, 3)
    assert (scene.image[..., 0] == scene.image[..., 2]).all()
    valid = scene.image[:, 32:, 0]
    # The stretch uses valid pixels only, so they span the whole 0..255 range.
    assert np.percentile(valid, 1) < 10 and np.percentile(valid, 99) > 245
    mask, instances = expected_maps(SHAPE, RECTS)
    mask[:, :32], instances[:, :32] = 255, 0
    np.testing.assert_array_equal(scene.mask, mask)
    np.testing.assert_array_equal(scene.instances, instances)
    raw = GeoVectorReader(tmp_path, raw=True)[0]
    np.testing.assert_array_equal(raw.image, pan)
    assert raw.meta["raster_dtype"] == "uint16"


def test_multispectral_bands_are_chosen(tmp_path: Path, rng: np.random.Generator) -> None:
    array = write_geotiff(tmp_path / "ms.tif", rng, bands=5, dtype=np.uint16)
    write_json(tmp_path / "ms.geojson", feature_collection(RECTS))
    raw = GeoVectorReader(tmp_path, raw=True, bands=(4, 3, 2))[0]
    np.testing.assert_array_equal(raw.image, array[..., [3, 2, 1]])
    assert GeoVectorReader(tmp_path, bands=(4, 3, 2))[0].image.shape == (*SHAPE, 3)


def test_raster_without_crs_names_both_files(tmp_path: Path, rng: np.random.Generator) -> None:
    write_raster(tmp_path / "plain.tif", rng.integers(0, 255, (*SHAPE, 3)).astype(np.uint8))
    write_json(tmp_path / "plain.geojson", feature_collection(RECTS))
    with pytest.raises(
        DataError,
        match=r"plain\.tif: the raster has no CRS but its labels "
        r".*plain\.geojson.*labels_crs='pixel'",
    ):
        GeoVectorReader(tmp_path)[0]


def test_crs_less_raster_beside_georeferenced_ones_is_skipped(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    write_geotiff(tmp_path / "scene.tif", rng)
    write_raster(tmp_path / "scene_mask.tif", expected_maps(SHAPE, RECTS)[0] * 255)
    write_json(tmp_path / "buildings.geojson", feature_collection(RECTS))
    reader = GeoVectorReader(tmp_path)
    assert reader.names == ["scene"] and not reader.shared
    assert reader.skipped == [(tmp_path / "scene_mask.tif", "no CRS, unlike the other rasters")]
    np.testing.assert_array_equal(reader[0].instances, expected_maps(SHAPE, RECTS)[1])


def test_pixel_labels_need_no_crs(tmp_path: Path, rng: np.random.Generator) -> None:
    write_raster(tmp_path / "plain.tif", rng.integers(0, 255, (*SHAPE, 3)).astype(np.uint8))
    doc = feature_collection(RECTS, Affine.identity(), dst_crs=None)
    write_json(tmp_path / "plain.geojson", doc)
    scene = GeoVectorReader(tmp_path, labels_crs="pixel")[0]
    np.testing.assert_array_equal(scene.instances, expected_maps(SHAPE, RECTS)[1])
    assert scene.georef is None


def test_polygons_off_the_raster_blame_the_crs(paired: Path) -> None:
    far = Affine.translation(5000.0, 0.0) @ UTM_TRANSFORM
    write_json(paired / "a.geojson", feature_collection(RECTS, far))
    with pytest.raises(
        DataError,
        match=r"a\.tif: none of the 3 polygons .*a\.geojson.*"
        r"CRS is probably wrong",
    ):
        GeoVectorReader(paired)[0]


def test_projected_coordinates_read_as_lon_lat_blame_the_crs(paired: Path) -> None:
    write_json(paired / "a.geojson", feature_collection(RECTS, dst_crs=None))  # UTM, no crs
    with pytest.raises(DataError, match=r"a\.geojson.*CRS is probably wrong"):
        GeoVectorReader(paired)[0]


def test_shared_labels_that_simply_miss_a_raster_give_an_empty_mask(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    write_geotiff(tmp_path / "a.tif", rng)
    write_geotiff(tmp_path / "b.tif", rng, georef=utm_georef(EAST))
    corners = [(0, 0, 2, 2), (0, 200, 2, 202)]  # label extent spans both rasters
    write_json(tmp_path / "labels.geojson", feature_collection(corners))
    b = GeoVectorReader(tmp_path)[1]
    assert b.instances.max() == 0 and (b.mask == 0).all()


def test_empty_label_file_means_no_buildings(paired: Path) -> None:
    write_json(paired / "a.geojson", {"type": "FeatureCollection", "features": []})
    assert (GeoVectorReader(paired)[0].mask == 0).all()


def test_bad_label_files(paired: Path) -> None:
    (paired / "a.geojson").write_text("{not json")
    with pytest.raises(DataError, match=r"a\.geojson: not readable as GeoJSON"):
        GeoVectorReader(paired)[0]
    write_json(paired / "a.geojson", {"type": "Polygon", "coordinates": []})
    with pytest.raises(DataError, match=r"a\.geojson: expected a GeoJSON FeatureCollection"):
        GeoVectorReader(paired)[0]
    bad = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": "x"}}
    write_json(paired / "a.geojson", {"type": "FeatureCollection", "features": [bad]})
    with pytest.raises(DataError, match=r"a\.geojson: feature 0 has an invalid geometry"):
        GeoVectorReader(paired)[0]


def test_ogr_formats_without_pyogrio_say_how_to_fix(
    paired: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyogrio", None)
    monkeypatch.setitem(sys.modules, "pyogrio.raw", None)
    (paired / "a.geojson").unlink()
    (paired / "a.shp").write_bytes(b"")
    with pytest.raises(FormatError, match=r"a\.shp: reading \.shp needs pyogrio .*ogr2ogr"):
        GeoVectorReader(paired)[0]


def _write_ogr(path: Path, doc: dict, crs: str = "EPSG:4326") -> Path:
    """Write a GeoJSON FeatureCollection's geometries and properties with pyogrio."""
    import shapely
    from pyogrio.raw import write
    from shapely.geometry import shape

    features = doc["features"]
    geoms = np.array([shapely.to_wkb(shape(f["geometry"])) for f in features], dtype=object)
    names = sorted({k for f in features for k in f["properties"]})
    data = [np.array([str(f["properties"].get(n, "")) for f in features]) for n in names]
    # FlatGeobuf's spatial index would store features in spatial order, not file order.
    options = {"SPATIAL_INDEX": "NO"} if path.suffix == ".fgb" else None
    write(path, geoms, data, names, geometry_type="Polygon", crs=crs, layer_options=options)
    return path


@pytest.mark.parametrize("suffix", [".gpkg", ".shp", ".fgb"])
def test_ogr_label_files_match_geojson(
    tmp_path: Path, rng: np.random.Generator, suffix: str
) -> None:
    pytest.importorskip("pyogrio")
    write_geotiff(tmp_path / "a.tif", rng)
    props = [{"kind": "building"}, {"kind": "road"}, {"kind": "6"}]
    doc = feature_collection(RECTS, properties=props)
    write_json(tmp_path / "a.geojson", doc)
    expected = GeoVectorReader(tmp_path, OPENEARTHMAP, class_property="kind")[0]
    (tmp_path / "a.geojson").unlink()
    _write_ogr(tmp_path / f"a{suffix}", doc)
    reader = GeoVectorReader(tmp_path, OPENEARTHMAP, class_property="kind")
    assert [p.name for p in reader.label_files] == [f"a{suffix}"]
    scene = reader[0]
    np.testing.assert_array_equal(scene.mask, expected.mask)
    np.testing.assert_array_equal(scene.instances, expected.instances)
    np.testing.assert_array_equal(scene.mask, expected_maps(SHAPE, RECTS, [8, 4, 6])[0])
    assert scene.meta["instance_features"] == [0, 1, 2]


def test_ogr_layer_crs_is_used_and_overridable(tmp_path: Path, rng: np.random.Generator) -> None:
    pytest.importorskip("pyogrio")
    write_geotiff(tmp_path / "a.tif", rng)
    _write_ogr(tmp_path / "a.gpkg", feature_collection(RECTS, dst_crs=None), crs=UTM)
    np.testing.assert_array_equal(
        GeoVectorReader(tmp_path)[0].instances, expected_maps(SHAPE, RECTS)[1]
    )
    with pytest.raises(DataError, match=r"a\.gpkg.*CRS is probably wrong"):
        GeoVectorReader(tmp_path, labels_crs="EPSG:4326")[0]


@pytest.mark.filterwarnings("ignore:GPKG:RuntimeWarning")
def test_corrupt_gpkg_names_the_file(paired: Path) -> None:
    pytest.importorskip("pyogrio")
    (paired / "a.geojson").unlink()
    (paired / "a.gpkg").write_bytes(b"SQLite format 3\x00" + b"garbage" * 100)
    with pytest.raises(DataError, match=r"a\.gpkg: not readable as a vector file") as info:
        GeoVectorReader(paired)[0]
    assert "\n" not in str(info.value)


def test_points_and_lines_are_skipped_and_counted(paired: Path) -> None:
    doc = feature_collection(RECTS)
    ring = doc["features"][0]["geometry"]["coordinates"][0]
    doc["features"].append(
        {
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "LineString", "coordinates": ring},
        }
    )
    doc["features"].append({"type": "Feature", "properties": {}, "geometry": None})
    write_json(paired / "a.geojson", doc)
    with pytest.warns(SkippedLabelsWarning, match=r"a\.geojson: 2 of 5 features skipped") as w:
        scene = GeoVectorReader(paired)[0]
    assert len(w) == 1
    assert scene.meta["skipped_features"] == {"LineString": 1, "null geometry": 1}
    np.testing.assert_array_equal(scene.instances, expected_maps(SHAPE, RECTS)[1])


def test_single_raster_with_explicit_labels(paired: Path) -> None:
    reader = GeoVectorReader(paired / "a.tif", labels=paired / "a.geojson")
    assert len(reader) == 1 and reader[0].instances.max() == 3
    with pytest.raises(ConfigError, match="labels="):
        GeoVectorReader(paired / "a.tif")


def test_reader_survives_pickling_after_use(paired: Path) -> None:
    import pickle

    reader = GeoVectorReader(paired)
    first = reader[0]
    clone = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(clone[0].mask, first.mask)


def test_georef_transform_is_the_rasters(paired: Path) -> None:
    georef = GeoVectorReader(paired)[0].georef
    assert georef == GeoRef(UTM, UTM_TRANSFORM, None)
    assert json.loads(json.dumps(georef.to_dict()))["crs"] == UTM


@pytest.mark.real
def test_real_spacenet_chip_matches_the_reference_mask(real_root: Path) -> None:
    folder = real_root / "spacenet4_atlanta"
    reader = GeoVectorReader(
        folder / "sample_geotiff.tif", labels=folder / "geotiff_labels.geojson"
    )
    scene = reader[0]
    reference = read_raster(folder / "sample_fp_mask_from_geojson.tif")[0][..., 0]
    ours, theirs = scene.mask == 1, reference == 255
    iou = (ours & theirs).sum() / (ours | theirs).sum()
    assert iou >= 0.99
    assert len(np.unique(scene.instances)) - 1 == 43
    assert scene.image.shape == (900, 900, 3) and scene.image.dtype == np.uint8
    assert scene.georef is not None and scene.georef.crs == "EPSG:32616"
    folder_reader = GeoVectorReader(folder)  # the 0/255 reference mask .tif has no CRS
    assert folder_reader.names == ["sample_geotiff"]
    assert [p.name for p, _ in folder_reader.skipped] == ["sample_fp_mask_from_geojson.tif"]
    np.testing.assert_array_equal(folder_reader[0].instances, scene.instances)
