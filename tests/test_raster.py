"""GeoTIFF read/write: exact round trips, windows, bands, georeference rules, bad files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from changen.data import raster
from changen.data.raster import raster_info, read_raster, write_raster
from changen.errors import ConfigError, DataError
from changen.sample import GeoRef
from fixtures_geo import UTM_TRANSFORM, utm_georef

CUSTOM_WKT = (
    'PROJCS["custom laea",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,'
    '298.257223563]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],'
    'PROJECTION["Lambert_Azimuthal_Equal_Area"],PARAMETER["latitude_of_center",10],'
    'PARAMETER["longitude_of_center",20],PARAMETER["false_easting",0],'
    'PARAMETER["false_northing",0],UNIT["metre",1]]'
)


@pytest.mark.parametrize(
    ("dtype", "bands", "georef"),
    [
        (np.uint8, 3, utm_georef()),
        (np.uint16, 1, utm_georef(nodata=0.0)),
        (np.int16, 2, GeoRef("EPSG:4326", Affine(1e-5, 0, 32.5, 0, -1e-5, 0.35), -9999.0)),
        (np.float32, 4, GeoRef("EPSG:3857", Affine(0.3, 0.02, 1e6, 0.01, -0.3, 2e6), 1.5)),
    ],
)
def test_round_trip_is_exact(
    tmp_path: Path, rng: np.random.Generator, dtype: type, bands: int, georef: GeoRef
) -> None:
    array = (rng.normal(size=(37, 53, bands)) * 1000).astype(dtype)
    write_raster(tmp_path / "a.tif", array, georef)
    back, back_georef = read_raster(tmp_path / "a.tif")
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, array)
    assert back_georef == georef


def test_hw_array_reads_back_as_one_band(tmp_path: Path) -> None:
    array = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30)
    write_raster(tmp_path / "a.tif", array, utm_georef())
    back, _ = read_raster(tmp_path / "a.tif")
    assert back.shape == (20, 30, 1)
    np.testing.assert_array_equal(back[..., 0], array)


def test_nodata_argument_overrides_and_nan_survives(tmp_path: Path) -> None:
    array = np.ones((8, 8), np.float32)
    write_raster(tmp_path / "a.tif", array, utm_georef(nodata=1.0), nodata=float("nan"))
    _, georef = read_raster(tmp_path / "a.tif")
    assert georef is not None and georef.crs == "EPSG:32633" and math.isnan(georef.nodata)


def test_wkt_crs_round_trips_to_the_same_crs_and_is_then_stable(tmp_path: Path) -> None:
    georef = GeoRef(CUSTOM_WKT, UTM_TRANSFORM)
    write_raster(tmp_path / "a.tif", np.zeros((4, 4), np.uint8), georef)
    _, first = read_raster(tmp_path / "a.tif")
    assert first is not None and first.crs is not None and not first.crs.startswith("EPSG:")
    assert CRS.from_user_input(first.crs) == CRS.from_user_input(CUSTOM_WKT)
    write_raster(tmp_path / "b.tif", np.zeros((4, 4), np.uint8), first)
    assert read_raster(tmp_path / "b.tif")[1] == first


def test_crs_with_an_authority_reads_as_its_code(tmp_path: Path) -> None:
    wkt = CRS.from_epsg(32616).to_wkt()
    write_raster(tmp_path / "a.tif", np.zeros((4, 4), np.uint8), GeoRef(wkt, UTM_TRANSFORM))
    assert read_raster(tmp_path / "a.tif")[1] == GeoRef("EPSG:32616", UTM_TRANSFORM)


def test_plain_raster_has_no_georef_but_nodata_alone_is_kept(tmp_path: Path) -> None:
    write_raster(tmp_path / "plain.tif", np.zeros((4, 4), np.uint8))
    assert read_raster(tmp_path / "plain.tif")[1] is None
    write_raster(tmp_path / "nd.tif", np.zeros((4, 4), np.uint8), nodata=7)
    assert read_raster(tmp_path / "nd.tif")[1] == GeoRef(None, Affine.identity(), 7.0)


def test_bands_are_one_based_and_reordered(tmp_path: Path, rng: np.random.Generator) -> None:
    array = rng.integers(0, 255, (10, 12, 4)).astype(np.uint8)
    write_raster(tmp_path / "a.tif", array, utm_georef())
    back, _ = read_raster(tmp_path / "a.tif", bands=(3, 1))
    np.testing.assert_array_equal(back, array[..., [2, 0]])
    with pytest.raises(DataError, match=r"a\.tif.*bands \(5,\).*4 band"):
        read_raster(tmp_path / "a.tif", bands=(5,))


def test_window_read_has_the_window_transform(tmp_path: Path, rng: np.random.Generator) -> None:
    array = rng.integers(0, 255, (40, 50, 3)).astype(np.uint8)
    write_raster(tmp_path / "a.tif", array, utm_georef(nodata=3))
    back, georef = read_raster(tmp_path / "a.tif", window=Window(10, 5, 20, 15))
    np.testing.assert_array_equal(back, array[5:20, 10:30])
    assert georef is not None and georef.crs == "EPSG:32633" and georef.nodata == 3
    assert georef.transform @ (0, 0) == UTM_TRANSFORM @ (10, 5)
    assert georef.transform @ (20, 15) == UTM_TRANSFORM @ (30, 20)
    with pytest.raises(DataError, match=r"a\.tif.*window.*not inside the 50×40"):
        read_raster(tmp_path / "a.tif", window=Window(40, 0, 20, 10))


def test_window_of_a_plain_raster_has_no_georef(tmp_path: Path) -> None:
    write_raster(tmp_path / "plain.tif", np.zeros((10, 10), np.uint8))
    assert read_raster(tmp_path / "plain.tif", window=Window(2, 2, 4, 4))[1] is None


def test_raster_info_describes_without_pixels(tmp_path: Path) -> None:
    write_raster(tmp_path / "a.tif", np.zeros((30, 20, 2), np.uint16), utm_georef(nodata=0))
    info = raster_info(tmp_path / "a.tif")
    assert info == {
        "width": 20,
        "height": 30,
        "count": 2,
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": UTM_TRANSFORM,
        "nodata": 0.0,
        "alpha": None,
    }


def test_rasters_are_tiled_and_compress_none_is_uncompressed(tmp_path: Path) -> None:
    write_raster(tmp_path / "big.tif", np.zeros((520, 600), np.uint8))
    write_raster(tmp_path / "small.tif", np.zeros((100, 100), np.uint8), compress=None)
    with rasterio.open(tmp_path / "big.tif") as src:
        assert src.profile["tiled"] and src.profile["blockxsize"] == 256
        assert src.compression.value == "DEFLATE"
    with rasterio.open(tmp_path / "small.tif") as src:
        assert src.profile["tiled"] and src.compression is None


def test_bad_write_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot hold dtype bool"):
        write_raster(tmp_path / "a.tif", np.zeros((4, 4), bool))
    with pytest.raises(DataError, match="shape"):
        write_raster(tmp_path / "a.tif", np.zeros((4, 4, 2, 2), np.uint8))
    with pytest.raises(ConfigError, match="compression 'bogus'"):
        write_raster(tmp_path / "a.tif", np.zeros((4, 4), np.uint8), compress="bogus")
    with pytest.raises(DataError, match="not a CRS"):
        write_raster(tmp_path / "a.tif", np.zeros((4, 4), np.uint8), GeoRef("EPSG:0"))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.tif"
    write_raster(target, np.full((4, 4), 7, np.uint8))

    def broken_open(path: Path, mode: str = "r", **kwargs: object) -> None:
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(raster.rasterio, "open", broken_open)
    with pytest.raises(OSError, match="disk full"):
        write_raster(target, np.zeros((4, 4), np.uint8))
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["a.tif"]
    assert (read_raster(target)[0] == 7).all()


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.tif: file not found"):
        read_raster(tmp_path / "missing.tif")
    bad = tmp_path / "garbage.tif"
    bad.write_bytes(b"II*\x00" + b"garbage" * 20)
    with pytest.raises(DataError, match=r"garbage\.tif: not a readable raster"):
        read_raster(bad)
    with pytest.raises(DataError, match=r"garbage\.tif"):
        raster_info(bad)
    write_raster(
        tmp_path / "whole.tif",
        np.random.default_rng(1).integers(0, 255, (600, 600, 3)).astype(np.uint8),
    )
    data = (tmp_path / "whole.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.tif.*truncated or corrupt"):
        read_raster(tmp_path / "cut.tif")


@pytest.mark.real
def test_real_spacenet_geotiff(real_root: Path) -> None:
    folder = real_root / "spacenet4_atlanta"
    image, georef = read_raster(folder / "sample_geotiff.tif")
    assert image.shape == (900, 900, 1) and image.dtype == np.uint16
    assert georef == GeoRef("EPSG:32616", Affine(0.5, 0, 733601.0, 0, -0.5, 3725139.0), 0.0)
    mask, mask_georef = read_raster(folder / "sample_fp_mask_from_geojson.tif")
    assert mask_georef is None and set(np.unique(mask)) == {0, 255}
