"""No silently wrong labels (issue #11, item 3): masks against their taxonomy on every reader,
skipped vector labels and xView2 polygons off the image reported, count options bounded."""

from __future__ import annotations

import inspect
import json
import sys
import typing
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.models import OptionInfo

from changen.cli.app import app, main
from changen.data.imageio import read_image, write_image
from changen.data.inspect import inspect_dataset
from changen.data.readers import open_dataset
from changen.data.readers.base import (
    Reader,
    SkippedLabelsWarning,
    check_mask,
    mask_values,
)
from changen.data.readers.change_folders import LevirCDReader
from changen.data.readers.folder import FolderReader
from changen.data.readers.geovector import GeoVectorReader
from changen.data.readers.loveda import LoveDAReader
from changen.data.readers.openearthmap import OpenEarthMapReader
from changen.data.readers.pooled import PooledReader
from changen.data.readers.resample import ResampledReader
from changen.data.readers.second import SecondReader
from changen.data.readers.xview2 import XView2Reader
from changen.data.readers.xyz_tiles import XYZTileReader, tile_transform
from changen.errors import ConfigError, DataError
from changen.sample import ClassInfo, Taxonomy
from changen.taxonomies import BINARY_BUILDING, LOVEDA, SECOND_DING, get_taxonomy
from fixtures_change import build_folder_dataset, build_second_dataset
from fixtures_geo import RECTS, feature_collection, write_geotiff, write_json, write_tile
from fixtures_scenes import (
    Box,
    make_folder_dataset,
    make_loveda_dataset,
    make_oem_dataset,
    make_xview2_dataset,
    xbd_json,
)

#: A taxonomy that forgot its background class: every vector/xView2 mask holds a stray 0.
NO_BACKGROUND = Taxonomy("roofs", (ClassInfo(1, "building", (255, 0, 0)),), background=0)
STRAY = 9  # not an id of openearthmap, loveda, second_ding or binary_building


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[object, str, str]:
    """``changen ARGS`` through the console entry point: (exit status, stdout, stderr)."""
    sys.argv = ["changen", *args]
    try:
        main()
        code: object = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def _poke(path: Path, value: int) -> None:
    """Set the first pixel of a 1-band mask file to ``value``."""
    mask = read_image(path)[..., 0].copy()
    mask[0, 0] = value
    write_image(path, mask)


def _folder(root: Path, rng: np.random.Generator) -> tuple[Reader, Path]:
    make_folder_dataset(root, rng, n=1, mask_style="binary01")
    _poke(root / "masks" / "tile_000.png", STRAY)
    return FolderReader(root, BINARY_BUILDING), root / "masks" / "tile_000.png"


def _loveda(root: Path, rng: np.random.Generator) -> tuple[Reader, Path]:
    make_loveda_dataset(root, rng, n=1)
    _poke(root / "ann_dir" / "0.png", 255)  # LoveDA's ignore id is 0: 255 is stray
    return LoveDAReader(root), root / "ann_dir" / "0.png"


def _openearthmap(root: Path, rng: np.random.Generator) -> tuple[Reader, Path]:
    from changen.data.raster import read_raster, write_raster

    make_oem_dataset(root, rng, regions=("lima",), n=1, unlabelled=0)
    label = root / "lima" / "labels" / "lima_1.tif"
    array, georef = read_raster(label)
    array[0, 0, 0] = STRAY
    write_raster(label, array, georef)
    return OpenEarthMapReader(root), label


def _second(root: Path, rng: np.random.Generator) -> tuple[Reader, Path]:
    build_second_dataset(root, rng, rgb=False, splits=(None,), names=("a",))
    _poke(root / "label2" / "a.png", STRAY)
    return SecondReader(root, SECOND_DING), root / "label2" / "a.png"


def _levircd_masks(root: Path, rng: np.random.Generator) -> tuple[Reader, Path]:
    build_folder_dataset(root, "levircd", rng, names=("a",))
    mask = np.zeros(read_image(root / "label" / "a.png").shape[:2], np.uint8)
    mask[0, 0] = STRAY
    write_image(root / "A_mask" / "a.png", mask)
    write_image(root / "B_mask" / "a.png", np.zeros_like(mask))
    return LevirCDReader(root, BINARY_BUILDING), root / "A_mask" / "a.png"


def _xview2(root: Path, rng: np.random.Generator) -> tuple[Reader, Path]:
    make_xview2_dataset(root, rng, n=1)
    label = next((root / "labels").glob("*_pre_disaster.json"))
    return XView2Reader(root, NO_BACKGROUND), label


def _geovector(root: Path, rng: np.random.Generator) -> tuple[Reader, Path]:
    write_geotiff(root / "a.tif", rng)
    label = write_json(root / "a.geojson", feature_collection(RECTS))
    return GeoVectorReader(root, NO_BACKGROUND), label


def _xyz(root: Path, rng: np.random.Generator) -> tuple[Reader, Path]:
    write_tile(root / "area-3-5-4.png", rng)
    doc = feature_collection([(10, 10, 60, 80)], tile_transform(3, 5, 4, 256, 256), "EPSG:3857")
    label = write_json(root / "labels.geojson", doc)
    return XYZTileReader(root, NO_BACKGROUND), label


def _pooled(root: Path, rng: np.random.Generator) -> tuple[Reader, Path]:
    make_folder_dataset(root / "good", rng, n=1, mask_style="binary01")
    bad, path = _folder(root / "bad", rng)
    return PooledReader([FolderReader(root / "good", BINARY_BUILDING), bad]), path


def _resampled(root: Path, rng: np.random.Generator) -> tuple[Reader, Path]:
    bad, path = _folder(root, rng)
    return ResampledReader(bad, target_gsd=1.0, source_gsd=0.5), path


BAD_MASK: dict[str, Callable[[Path, np.random.Generator], tuple[Reader, Path]]] = {
    "folder": _folder,
    "loveda": _loveda,
    "openearthmap": _openearthmap,
    "second": _second,
    "levircd-masks": _levircd_masks,
    "xview2": _xview2,
    "geotiff_vector": _geovector,
    "xyz_tiles": _xyz,
    "pooled": _pooled,
    "resampled": _resampled,
}


@pytest.mark.parametrize("kind", BAD_MASK)
def test_every_mask_reader_refuses_ids_outside_its_taxonomy(
    kind: str, tmp_path: Path, rng: np.random.Generator
) -> None:
    reader, path = BAD_MASK[kind](tmp_path, rng)
    with pytest.raises(DataError) as info:
        reader[len(reader) - 1]
    message = str(info.value)
    assert message.startswith(f"{path}: mask ids [")
    assert f"not in taxonomy {reader.taxonomy.name!r}" in message
    assert "--taxonomy" in message and "remap" in message and "\n" not in message


def test_stray_ids_are_listed_first_few_with_their_number(tmp_path: Path) -> None:
    mask = np.arange(40, dtype=np.uint8).reshape(5, 8)
    with pytest.raises(DataError, match=r"x\.png: mask ids \[2, 3, 4, 5, 6, 7, 8, 9, … \(38"):
        check_mask(mask, BINARY_BUILDING, tmp_path / "x.png")


def test_the_ignore_id_and_class_ids_pass(tmp_path: Path) -> None:
    check_mask(np.array([[0, 1], [255, 1]], np.uint8), BINARY_BUILDING, "b.png")
    check_mask(np.arange(8, dtype=np.uint8)[None], LOVEDA, "l.png")
    with pytest.raises(DataError, match=r"ids \[255\].*'loveda' \(ids 0\.\.7, ignore 0\)"):
        check_mask(np.array([[1, 255]], np.uint8), LOVEDA, "l.png")


def test_mask_values_agrees_with_unique(rng: np.random.Generator) -> None:
    for _ in range(50):
        h, w = rng.integers(1, 40, 2)
        mask = rng.integers(0, int(rng.integers(1, 257)), (h, w), dtype=np.uint8)[::2, 1:]
        expected = np.zeros(256, bool)
        expected[np.unique(mask)] = True
        np.testing.assert_array_equal(mask_values(mask), expected)


def test_default_taxonomy_says_so_and_a_json_taxonomy_fixes_it(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    make_folder_dataset(data, rng, n=1)  # openearthmap ids 0..8, no manifest
    code, _, err = run_cli(["data", "inspect", str(data)], capsys)
    assert code == 3 and len(err.strip().splitlines()) == 1
    assert "tile_000.png: mask ids [" in err and "no taxonomy was given" in err
    classes = [{"id": i, "name": f"c{i}", "color": [i, i, i]} for i in range(9)]
    (tmp_path / "mine.json").write_text(json.dumps({"classes": classes}))
    code, out, _ = run_cli(
        ["data", "inspect", str(data), "--taxonomy", str(tmp_path / "mine.json"), "--json"], capsys
    )
    assert code == 0 and json.loads(out)["taxonomy"] == "mine"


def test_taxonomy_files_that_are_not_taxonomies(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text(json.dumps({"classes": [{"id": 0}]}))
    with pytest.raises(ConfigError, match=r"t\.json: not a taxonomy"):
        get_taxonomy(str(tmp_path / "t.json"))
    with pytest.raises(ConfigError, match="taxonomy JSON file"):
        get_taxonomy(str(tmp_path / "missing.json"))


def _xbd(root: Path, wkts: list[str], size: int = 32) -> None:
    stem = "flood_00000000_pre_disaster"
    write_image(root / "images" / f"{stem}.png", np.zeros((size, size, 3), np.uint8))
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / f"{stem}.json").write_text(json.dumps(xbd_json(wkts, size, f"{stem}.png")))


LON_LAT = "POLYGON ((-95.5 37.1, -95.4 37.1, -95.4 37.2, -95.5 37.2, -95.5 37.1))"
TIMES_TEN = Box(100, 100, 200, 150).wkt()
ON_IMAGE = [Box(2, 2, 8, 8).wkt(), Box(28, 28, 40, 40).wkt()]  # the second crosses the edge


def test_xview2_polygons_off_the_image_warn_once_per_file(tmp_path: Path) -> None:
    _xbd(tmp_path, [*ON_IMAGE, LON_LAT, TIMES_TEN])
    with pytest.warns(SkippedLabelsWarning) as caught:
        scene = XView2Reader(tmp_path)[0]
    assert len(caught) == 1
    w = caught[0].message
    assert isinstance(w, SkippedLabelsWarning)
    assert w.counts == {"outside the image": 2} and w.total == 4
    assert str(w).startswith(f"{tmp_path / 'labels'}/flood_00000000_pre_disaster.json: 2 of 4")
    assert "feature 2" in str(w) and "pixel coordinates" in str(w)
    assert set(np.unique(scene.instances)) == {0, 1, 2}


def test_xview2_edge_polygons_do_not_warn(tmp_path: Path) -> None:
    _xbd(tmp_path, ON_IMAGE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        XView2Reader(tmp_path)[0]


def _vector_pair(
    root: Path, rng: np.random.Generator, extra: list[str | None], polygons: bool = True
) -> Path:
    """A raster + GeoJSON (its :data:`RECTS` unless not ``polygons``) plus features of the
    geometry types ``extra`` (None: a null geometry)."""
    write_geotiff(root / "a.tif", rng)
    doc = feature_collection(RECTS if polygons else [])
    ring = feature_collection(RECTS)["features"][0]["geometry"]["coordinates"][0]
    for kind in extra:
        geometry = None
        if kind is not None:
            geometry = {"type": kind, "coordinates": ring[0] if kind == "Point" else ring}
        doc["features"].append({"type": "Feature", "properties": {}, "geometry": geometry})
    return write_json(root / "a.geojson", doc)


def test_inspect_reports_skipped_features_and_exits_0(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    label = _vector_pair(tmp_path, rng, ["Point", "Point", None])
    code, out, err = run_cli(["data", "inspect", str(tmp_path)], capsys)
    assert code == 0, err
    assert "Warning" not in err  # collected by inspect, not printed by Python
    lines = [line for line in out.splitlines() if line.startswith("warning:")]
    assert lines == [
        f"warning: 2 labels skipped (Point) in 1 file, e.g. {label}: only Polygon and "
        f"MultiPolygon features become labels: buffer points and lines into polygons, or drop "
        f"them",
        f"warning: 1 label skipped (null geometry) in 1 file, e.g. {label}: only Polygon and "
        f"MultiPolygon features become labels: buffer points and lines into polygons, or drop "
        f"them",
    ]
    code, out, _ = run_cli(["data", "inspect", str(tmp_path), "--json"], capsys)
    rows = json.loads(out)["skipped_labels"]
    assert [(r["kind"], r["count"], r["files"], r["example"]) for r in rows] == [
        ("Point", 2, 1, str(label)),
        ("null geometry", 1, 1, str(label)),
    ]


def test_inspect_reports_xview2_polygons_off_the_image(tmp_path: Path) -> None:
    _xbd(tmp_path, [*ON_IMAGE, LON_LAT])
    rows = inspect_dataset(tmp_path)["skipped_labels"]
    assert [(r["kind"], r["count"], r["files"]) for r in rows] == [("outside the image", 1, 1)]


@pytest.mark.parametrize("case", ["xview2-lon-lat", "xview2-times-ten", "points-only"])
def test_inspect_errors_when_every_label_was_skipped(
    case: str, tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    if case == "points-only":
        label = _vector_pair(tmp_path, rng, ["Point", "LineString"], polygons=False)
    else:
        _xbd(tmp_path, [LON_LAT if case == "xview2-lon-lat" else TIMES_TEN])
        label = tmp_path / "labels" / "flood_00000000_pre_disaster.json"
    code, _, err = run_cli(["data", "inspect", str(tmp_path)], capsys)
    lines = err.strip().splitlines()
    assert code == 3 and len(lines) == 1, err
    assert f"{tmp_path}: every label was skipped, so every mask is empty; e.g. {label}:" in lines[0]


def _commands(group: typer.Typer, path: str) -> Iterator[tuple[str, Callable[..., Any]]]:
    for info in group.registered_commands:
        assert info.callback is not None
        yield f"{path} {info.name or info.callback.__name__}", info.callback
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        yield from _commands(sub.typer_instance, f"{path} {sub.name}")


def _int_options() -> dict[str, OptionInfo]:
    """Every ``--option`` of an int type in the CLI, by "command path --name"."""
    found = {}
    for path, callback in _commands(app, "changen"):
        hints = typing.get_type_hints(callback)
        for name, param in inspect.signature(callback).parameters.items():
            hint = hints[name]
            if isinstance(param.default, OptionInfo) and int in (hint, *typing.get_args(hint)):
                found[f"{path} --{name.replace('_', '-')}"] = param.default
    return found


def test_every_count_option_refuses_negatives() -> None:
    options = _int_options()
    assert len(options) > 40 and "changen data inspect --limit" in options
    unbounded = [name for name, info in options.items() if info.min is None or info.min < 0]
    assert unbounded == []


def test_negative_limit_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["data", "inspect", str(tmp_path), "--limit", "-1"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "--limit" in err and "greater than or equal to 1" in err


REAL = {
    "xview2_joplin": {},
    "loveda": {},
    "spacenet4_atlanta": {},
    "levircd_crops": {},
    "oam_kampala": {},
    "idabd_pre": {"binary_threshold": 127},
}


@pytest.mark.parametrize("name", REAL)
def test_real_samples_pass_every_label_check(name: str, real_root: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedLabelsWarning)
        summary = inspect_dataset(real_root / name, **REAL[name])
        assert summary["skipped_labels"] == [] and summary["n_objects"] > 0
        if name == "xview2_joplin":
            for scene in open_dataset(real_root / name, phase="post"):
                assert scene.mask is not None and scene.mask.max() > 1
