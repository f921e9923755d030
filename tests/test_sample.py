"""The data model: validation of shapes, taxonomies, colour decoding, series pairs."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from changen.errors import DataError
from changen.sample import ChangeSample, ChangeSeries, GeoRef, Scene, Taxonomy
from changen.taxonomies import OPENEARTHMAP, TAXONOMIES, get_taxonomy


def test_builtin_taxonomies_cover_the_datasets() -> None:
    assert set(TAXONOMIES) >= {
        "binary_building",
        "xview2_damage",
        "openearthmap",
        "loveda",
        "second_ding",
        "second_paper",
    }
    assert OPENEARTHMAP.ids == list(range(9))
    assert TAXONOMIES["loveda"].ids == list(range(8))
    assert TAXONOMIES["loveda"].ignore == 0 and TAXONOMIES["loveda"].background == 1
    ding, paper = TAXONOMIES["second_ding"], TAXONOMIES["second_paper"]
    assert ding.names[1] == "water" and paper.names[1] == "low vegetation"
    assert {c.color for c in ding.classes} == {c.color for c in paper.classes}


def test_unknown_taxonomy_lists_choices() -> None:
    with pytest.raises(Exception, match="openearthmap"):
        get_taxonomy("nope")


def test_taxonomy_round_trips_through_dict() -> None:
    for tax in TAXONOMIES.values():
        assert Taxonomy.from_dict(tax.to_dict()) == tax


def test_decode_rgb_maps_colours_and_lists_unknown_ones() -> None:
    tax = OPENEARTHMAP
    ids = np.array([[0, 8], [5, 6]], np.uint8)
    rgb = tax.colorize(ids)
    assert np.array_equal(tax.decode_rgb(rgb), ids)
    rgb[0, 0] = (1, 2, 3)
    with pytest.raises(DataError, match=r"\(1, 2, 3\)") as info:
        tax.decode_rgb(rgb, source="m.png")
    assert "m.png" in str(info.value)


def test_validate_rejects_ids_outside_taxonomy() -> None:
    mask = np.array([[0, 1], [9, 255]], np.uint8)
    OPENEARTHMAP.validate(np.array([[0, 8], [255, 3]], np.uint8))
    with pytest.raises(DataError, match=r"\[9\]"):
        OPENEARTHMAP.validate(mask, source="x.png")


def test_scene_rejects_mismatched_mask() -> None:
    image = np.zeros((8, 10, 3), np.uint8)
    Scene(image, np.zeros((8, 10), np.uint8))
    with pytest.raises(DataError, match="mask"):
        Scene(image, np.zeros((10, 8), np.uint8), source="a.png")
    with pytest.raises(DataError, match="uint8"):
        Scene(image.astype(np.float32))


def test_change_sample_checks_both_dates() -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    ChangeSample(a, a, np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError):
        ChangeSample(a, np.zeros((8, 9, 3), np.uint8), np.zeros((8, 8), np.uint8))


def test_series_pair_marks_changes_and_ignore() -> None:
    masks = np.zeros((3, 4, 4), np.uint8)
    masks[1, 0, 0] = 8
    masks[2, 0, 0] = 8
    masks[2, 3, 3] = 255
    series = ChangeSeries(np.zeros((3, 4, 4, 3), np.uint8), masks, taxonomy=OPENEARTHMAP)
    assert len(series) == 3
    assert series.pair(0, 1).change_mask.sum() == 1
    assert series.pair(1, 2).change_mask[0, 0] == 0
    assert series.pair(0, 2).change_mask[3, 3] == 255


def test_georef_round_trips() -> None:
    g = GeoRef("EPSG:32616", Affine(0.5, 0, 100.0, 0, -0.5, 200.0), nodata=0)
    assert GeoRef.from_dict(g.to_dict()) == g
