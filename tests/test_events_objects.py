"""Objects of a mask: components per class, instance maps, ignore, min_area, geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.measure import label

from changen.errors import DataError
from changen.events import MaskObject, State, extract_objects
from changen.events.labelling import component_rows, label_mask
from changen.events.objects import member


def _blobs(rng: np.random.Generator, size: int, n: int, classes: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    for _ in range(n):
        h, w = rng.integers(4, max(5, size // 6), 2)
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        cv2.ellipse(
            mask,
            (int(x + w // 2), int(y + h // 2)),
            (int(w // 2), int(h // 2)),
            float(rng.uniform(0, 180)),
            0,
            360,
            int(rng.integers(1, classes + 1)),
            -1,
        )
    return mask


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label maps split the pixels into the same groups (ids may differ)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def test_components_per_class_and_connectivity() -> None:
    mask = np.zeros((20, 20), np.uint8)
    mask[2:6, 2:6] = 1
    mask[6:10, 6:10] = 1  # touches the first square only diagonally
    mask[2:6, 6:9] = 2  # touches the first square by an edge, other class
    objs8 = extract_objects(mask, min_area=0, connectivity=8)
    objs4 = extract_objects(mask, min_area=0, connectivity=4)
    assert sorted((o.class_id, o.area) for o in objs8) == [(1, 32), (2, 12)]
    assert sorted((o.class_id, o.area) for o in objs4) == [(1, 16), (1, 16), (2, 12)]


@pytest.mark.parametrize("size", [64, 300])
@pytest.mark.parametrize("connectivity", [4, 8])
def test_partition_matches_same_value_labelling(size: int, connectivity: int) -> None:
    """Objects = regions of equal class, exactly as scikit-image labels them (ignore excluded):
    8-connectivity takes the border tracer, 4-connectivity OpenCV's statistics."""
    rng = np.random.default_rng(size + connectivity)
    mask = _blobs(rng, size, 60, classes=4)
    mask[rng.random(mask.shape) < 0.01] = 255
    state = State.from_mask(mask, connectivity=connectivity)
    state.check()
    ref = label(np.where(mask == 255, 0, mask), background=0, connectivity=connectivity // 4)
    assert _same_partition(state.instances, ref)
    assert (state.instances[mask == 255] == 0).all()
    assert (state.instances[mask == 0] == 0).all()


def test_land_cover_mask_split_per_class() -> None:
    """Everything foreground and touching: the per-class labelling path."""
    rng = np.random.default_rng(3)
    mask = cv2.resize(
        rng.integers(1, 9, (12, 12), dtype=np.uint8), (200, 200), interpolation=cv2.INTER_NEAREST
    )
    state = State.from_mask(mask)
    state.check()
    assert _same_partition(state.instances, label(mask, background=0, connectivity=2))


def test_border_tracer_matches_opencv_statistics() -> None:
    rng = np.random.default_rng(0)
    binary = (rng.random((320, 320)) < 0.45).astype(np.uint8)
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    rows = component_rows(binary, 8)
    n, ref, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    assert len(rows) == n - 1
    seeds = rows[:, 0]
    labels = ref.ravel()[seeds]  # each seed is the first pixel of its own component
    assert np.array_equal(np.sort(labels), np.arange(1, n))
    _, first = np.unique(ref.ravel(), return_index=True)
    assert np.array_equal(seeds, first[labels])
    x, y, w, h, area = stats[labels].T
    assert np.array_equal(rows[:, 1:], np.stack([y, x, y + h, x + w, area], axis=1))


def test_tracer_holes_and_nested_components_per_class() -> None:
    """Rings with holes, islands inside holes, classes nested in other classes; apart (one
    foreground trace) and touching (one trace per class)."""
    mask = np.zeros((60, 60), np.uint8)
    mask[5:45, 5:45] = 1
    mask[10:40, 10:40] = 0  # hole
    mask[15:35, 15:35] = 2  # another class inside the hole
    classes, rows = label_mask(mask, 8, 0, 255)
    assert sorted(zip(classes.tolist(), rows[:, 5].tolist(), strict=True)) == [(1, 700), (2, 400)]
    mask[20:30, 20:30] = 1  # an island of class 1 inside class 2
    mask[24:26, 24:26] = 0  # with its own hole
    mask[50, 50] = 3  # single pixel
    mask[55, 40:58] = 3  # one-pixel line
    classes, rows = label_mask(mask, 8, 0, 255)
    got = sorted(zip(classes.tolist(), rows[:, 5].tolist(), strict=True))
    assert got == [(1, 96), (1, 40 * 40 - 30 * 30), (2, 400 - 100), (3, 1), (3, 18)]


def test_min_area_and_class_filter() -> None:
    mask = np.zeros((40, 40), np.uint8)
    mask[0:8, 0:8] = 1  # 64 px
    mask[20:27, 20:29] = 1  # 63 px
    mask[30:40, 30:40] = 3
    areas = sorted(o.area for o in extract_objects(mask))
    assert areas == [64, 100]
    assert [o.class_id for o in extract_objects(mask, classes=[3])] == [3]
    assert len(extract_objects(mask, min_area=0)) == 3


def test_ignore_pixels_never_in_objects_even_from_instances() -> None:
    mask = np.zeros((30, 30), np.uint8)
    mask[5:15, 5:15] = 2
    mask[5:15, 12:15] = 255
    instances = np.zeros((30, 30), np.int32)
    instances[5:15, 5:15] = 7
    (obj,) = extract_objects(mask, instances, min_area=0)
    assert obj.id == 7 and obj.class_id == 2 and obj.area == 70
    state = State.from_mask(mask, instances)
    assert (state.instances[mask == 255] == 0).all()


def test_instances_take_majority_class_and_keep_ids() -> None:
    mask = np.zeros((20, 20), np.uint8)
    mask[0:10, 0:10] = 4
    mask[0:2, 0:10] = 5
    instances = np.zeros((20, 20), np.int64)
    instances[0:10, 0:10] = 42
    instances[12:20, 12:20] = 9  # class-agnostic instance on background
    state = State.from_mask(mask, instances)
    assert state.next_id == 43
    rows = {int(r[0]): int(r[1]) for r in state.objects().rows}
    assert rows == {9: 0, 42: 4}
    assert [o.id for o in extract_objects(mask, instances, min_area=0)] == [42]


def test_from_instances_builds_a_class_agnostic_state() -> None:
    instances = np.zeros((16, 16), np.int32)
    instances[1:5, 1:5] = 3
    instances[8:12, 8:14] = 8
    state = State.from_instances(instances, class_id=1)
    assert set(np.unique(state.mask)) == {0, 1}
    state.check()
    assert state.objects().ids.tolist() == [3, 8]


def test_geometry_centroid_orientation_footprint() -> None:
    mask = np.zeros((64, 64), np.uint8)
    cv2.ellipse(mask, (32, 30), (20, 5), -45.0, 0, 360, 1, -1)  # cv2 angles are clockwise
    (obj,) = extract_objects(mask)
    assert isinstance(obj, MaskObject)
    assert obj.centroid == pytest.approx((30, 32), abs=0.5)
    assert obj.orientation == pytest.approx(45, abs=3)
    y0, x0, y1, x1 = obj.bbox
    assert obj.footprint.shape == (y1 - y0, x1 - x0) == (obj.height, obj.width)
    assert obj.footprint.sum() == obj.area == (mask > 0).sum()
    assert (mask[y0:y1, x0:x1][obj.footprint] == 1).all()
    horizontal = np.zeros((20, 40), np.uint8)
    horizontal[8:12, 2:38] = 1
    assert extract_objects(horizontal)[0].orientation == pytest.approx(0, abs=1e-6)


def test_empty_mask_has_no_objects() -> None:
    assert extract_objects(np.zeros((10, 10), np.uint8)) == []
    assert extract_objects(np.full((10, 10), 255, np.uint8)) == []
    state = State.from_mask(np.zeros((10, 10), np.uint8))
    assert len(state.objects()) == 0 and state.next_id == 1


def test_other_background_and_ignore_ids() -> None:
    """LoveDA: background 1, ignore 0 (no-data)."""
    mask = np.ones((30, 30), np.uint8)
    mask[0:10, 0:10] = 2
    mask[20:30, 20:30] = 0
    objs = extract_objects(mask, background=1, ignore=0)
    assert [(o.class_id, o.area) for o in objs] == [(2, 100)]


def test_bad_inputs_raise_data_errors() -> None:
    with pytest.raises(DataError, match="2-D"):
        State.from_mask(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="uint8"):
        State.from_mask(np.full((4, 4), 300, np.int32))
    with pytest.raises(DataError, match="shape"):
        State.from_mask(np.zeros((4, 4), np.uint8), np.zeros((5, 4), np.int32))
    with pytest.raises(DataError, match="non-negative"):
        State.from_mask(np.zeros((4, 4), np.uint8), np.full((4, 4), -1, np.int32))
    state = State.from_mask(np.zeros((4, 4), np.uint8) + 1)
    with pytest.raises(ValueError, match="read-only"):
        state.mask[0, 0] = 2  # states do not change; their instances derive from the mask
    edited = state.mask.copy()
    edited[0, 0] = 2
    with pytest.raises(DataError, match="classes"):
        State(edited, state.instances, state.next_id, state.objects()).check()


def test_member_is_isin() -> None:
    values = np.random.default_rng(0).integers(0, 20, 50)
    for ids in [(), (3,), (0, 19, 7), tuple(range(0, 20, 2)), range(5, 15)]:
        assert np.array_equal(member(values, ids), np.isin(values, list(ids)))
