"""Lazy instance maps: layers replay edits exactly; labelling falls back when a trace fails."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.measure import label

from changen.events import (
    ChangeProcess,
    CreateConfig,
    RemoveConfig,
    State,
    create_objects,
    labelling,
    remove_objects,
    simulate,
)
from changen.events import instances as lazy
from changen.events.labelling import component_rows, label_mask, stats_rows


def _mask(seed: int, size: int = 96, classes: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(14):
        h, w = rng.integers(6, 20, 2)
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        mask[y : y + h, x : x + w] = rng.integers(1, classes + 1)
    return mask


def test_windows_and_footprints_agree_with_the_full_map() -> None:
    mask = _mask(0)
    state = State.from_mask(mask)
    removal = RemoveConfig(count=(2, 2), fill="surrounding", min_area=0)
    state, _ = remove_objects(state, removal, np.random.default_rng(0))
    overlap = CreateConfig(count=(3, 3), allow_overlap=True, min_area=0)
    state, log = create_objects(state, overlap, np.random.default_rng(1))
    assert log and state.layer.edits
    full = state.instances
    assert not full.flags.writeable
    for box in [(0, 0, 96, 96), (10, 5, 40, 90), (50, 50, 51, 51), (90, 0, 96, 7)]:
        y0, x0, y1, x1 = box
        assert np.array_equal(state.layer.window(box), full[y0:y1, x0:x1])
    table = state.objects()
    for i in range(len(table)):
        y0, x0, y1, x1 = table.bbox(i)
        fp = state.footprint(i)
        assert np.array_equal(fp, full[y0:y1, x0:x1] == table.ids[i])
    state.check()


def test_layer_folds_edits_into_a_new_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lazy, "MAX_EDITS", 3)
    mask = _mask(1)
    process = ChangeProcess.from_flags("remove,create", steps=4, count=(2, 2), min_area=0)
    chain = simulate(mask, process, np.random.default_rng(0))
    assert any(isinstance(layer.base, lazy.GivenBase) for layer in chain.layers)
    assert all(len(layer.edits) <= 4 for layer in chain.layers)
    for t, layer in enumerate(chain.layers):  # incremental chain maps = each state's own
        assert np.array_equal(chain.instances[t], layer.full())
    State(chain.masks[-1], chain.instances[-1], 10**6).check()


def test_chain_instances_are_built_only_on_demand() -> None:
    mask = _mask(2)
    chain = simulate(mask, ChangeProcess.from_flags(steps=3), np.random.default_rng(0))
    assert chain._instances is None
    inst = chain.instances
    assert inst.shape == (4, *mask.shape) and inst.dtype == np.int32
    assert chain.instances is inst
    ref = State.from_mask(mask).instances
    assert np.array_equal(inst[0], ref)


def test_stats_rows_equal_traced_rows() -> None:
    rng = np.random.default_rng(5)
    binary = (rng.random((200, 200)) < 0.4).astype(np.uint8)
    assert np.array_equal(stats_rows(binary, 8), component_rows(binary, 8))


def test_failed_area_check_falls_back_to_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    """A trace whose areas do not add up is replaced by OpenCV's statistics, per class."""
    touching = _mask(3, classes=4)
    separate = np.zeros((64, 64), np.uint8)
    separate[2:10, 2:10], separate[20:30, 20:40], separate[40:60, 5:9] = 1, 2, 2
    assert labelling._classes_touch(touching, touching)  # per-class path
    assert not labelling._classes_touch(separate, separate)  # foreground path
    expected = {id(m): label_mask(m) for m in (touching, separate)}
    monkeypatch.setattr(labelling, "_RUNS", False)  # the foreground goes to the border tracer
    real = labelling._trace_rows

    def corrupt(*args: object) -> tuple[np.ndarray, np.ndarray]:
        rows, outer = real(*args)  # type: ignore[arg-type]
        rows = rows.copy()
        rows[:1, labelling.AREA] += 1
        return rows, outer

    monkeypatch.setattr(labelling, "_trace_rows", corrupt)
    for m in (touching, separate):
        classes, rows = label_mask(m)
        assert np.array_equal(classes, expected[id(m)][0])
        assert np.array_equal(rows, expected[id(m)][1])
    binary = (touching > 0).view(np.uint8)
    assert np.array_equal(component_rows(binary, 8), stats_rows(binary, 8))


@pytest.mark.parametrize("background,ignore", [(0, 255), (1, 0), (5, 200)])
def test_other_background_ignore_and_touching_classes(background: int, ignore: int) -> None:
    """Both labelling paths (classes apart / touching) give the per-class partition."""
    mask = np.full((80, 80), background, np.uint8)
    mask[5:20, 5:20] = 2
    mask[30:40, 30:50] = 3
    mask[60:70, 60:70] = ignore
    apart = mask.copy()
    mask[20:25, 5:20] = 3  # touches the class-2 square
    for m in (apart, mask):
        state = State.from_mask(m, background=background, ignore=ignore)
        state.check()
        ref = label(np.where(np.isin(m, [background, ignore]), 0, m + 1), connectivity=2)
        pairs = np.unique(np.stack([state.instances.ravel(), ref.ravel()]), axis=1)
        assert pairs.shape[1] == len(np.unique(ref)) == len(state.objects()) + 1


def _binaries(seed: int, n: int = 40) -> list[np.ndarray]:
    """Small binary images of every kind of shape: noise (diagonal pinches, holes), blobs,
    one-pixel lines and rings."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        h, w = (int(v) for v in rng.integers(1, 48, 2))
        if k % 3 == 0:
            img = (rng.random((h, w)) < rng.uniform(0.1, 0.9)).astype(np.uint8)
        else:
            img = np.zeros((h, w), np.uint8)
            for _ in range(int(rng.integers(1, 6))):
                centre = (int(rng.integers(0, 48)), int(rng.integers(0, 48)))
                thickness = -1 if k % 3 == 1 else 1
                cv2.circle(img, centre, int(rng.integers(1, 12)), 1, thickness)
        out.append(img)
    return out


@pytest.mark.skipif(not labelling._RUNS, reason="OpenCV < 4.9 has no findContoursLinkRuns")
def test_linked_runs_equal_opencv_statistics() -> None:
    """Rows from linked runs are OpenCV's statistics exactly (seed = first pixel in raster
    order, bbox, area, order), or None when a component has a hole."""
    found = declined = 0
    for img in _binaries(0):
        rows = labelling._run_rows(img, cv2.countNonZero(img))
        trace = labelling._Trace.of(img, 1)
        holes = bool((trace.parents >= 0).any())
        if rows is None:
            assert holes
            declined += 1
        else:
            assert np.array_equal(rows, stats_rows(img, 8))
            found += 1
    assert found > 10 and declined > 5


@pytest.mark.skipif(not labelling._RUNS, reason="OpenCV < 4.9 has no findContoursLinkRuns")
def test_label_mask_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """Linked runs, or the border tracer when they decline (holes, areas that do not add up to
    the pixel count), give the same objects as the border tracer alone."""
    masks = [img * np.uint8(1 + k % 3) for k, img in enumerate(_binaries(1, 20))]
    with_runs = [label_mask(m) for m in masks]
    img = masks[0]
    assert labelling._run_rows(img, cv2.countNonZero(img) + 1) is None
    monkeypatch.setattr(labelling, "_RUNS", False)
    for m, (classes, rows) in zip(masks, with_runs, strict=True):
        ref_classes, ref_rows = label_mask(m)
        assert np.array_equal(classes, ref_classes) and np.array_equal(rows, ref_rows)
