"""Property tests on random masks (hypothesis): invariants every event must keep."""

from __future__ import annotations

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from changen.events import (
    OPENEARTHMAP_KERNEL,
    ChangeProcess,
    CreateConfig,
    ReclassConfig,
    RemoveConfig,
    State,
    binary_change,
    create_objects,
    reclass_objects,
    remove_objects,
    simulate,
)

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def masks(draw: st.DrawFn, classes: int = 3, empty_ok: bool = True) -> np.ndarray:
    """A random mask of 32..96 px: rectangles (at least 4 px thick) of 1..classes on
    background 0, with some ignore (255) pixels."""
    size = draw(st.integers(32, 96))
    n = draw(st.integers(0 if empty_ok else 1, 10))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(n):
        h, w = rng.integers(4, size // 3 + 5, 2)
        y, x = rng.integers(0, size - 3, 2)
        mask[y : y + h, x : x + w] = rng.integers(1, classes + 1)
    if draw(st.booleans()):
        y, x = rng.integers(0, size - 4, 2)
        mask[y : y + 4, x : x + rng.integers(1, size // 2)] = 255
    return mask


seeds = st.integers(0, 2**32 - 1)


def _boundary(fp: np.ndarray) -> int:
    inner = cv2.erode(fp.astype(np.uint8), np.ones((3, 3), np.uint8), borderValue=0)
    return int(fp.sum() - inner.sum())


@SETTINGS
@given(masks(), seeds, st.floats(0.5, 1.5), st.sampled_from(["none", "90", "any"]), st.booleans())
def test_create_invariants(
    mask: np.ndarray, seed: int, scale: float, rotation: str, flip: bool
) -> None:
    state = State.from_mask(mask)
    cfg = CreateConfig(
        count=(1, 4), scale=(scale, scale), rotation=rotation, flip=flip, min_area=16
    )
    new, log = create_objects(state, cfg, np.random.default_rng(seed))
    assert new.mask.shape == mask.shape and new.mask.dtype == np.uint8
    assert new.instances.dtype == np.int32
    new.check()
    created = np.zeros(mask.shape, bool)
    for rec in log:
        drawn = new.instances == rec.new_id
        assert drawn.sum() == rec.area > 0
        src = state.instances == rec.source_id
        assert rec.class_after == mask[src][0]  # class preserved
        assert (new.mask[drawn] == rec.class_after).all()
        expected = src.sum() * scale**2
        tolerance = 0.1 * expected + 0.75 * _boundary(src) * max(scale, 1.0) + 4
        assert abs(rec.area - expected) <= tolerance
        if rotation == "90":
            assert rec.angle in (0.0, 90.0, 180.0, 270.0)
        created |= drawn
    assert (mask[created] == 0).all()  # only on background: no overlap, ignore untouched
    assert np.array_equal(new.mask[~created], mask[~created])  # nothing else changed
    assert np.array_equal(new.instances[~created], state.instances[~created])
    if not log:
        assert new is state


@SETTINGS
@given(masks(), seeds, st.sampled_from(["background", "surrounding"]))
def test_remove_invariants(mask: np.ndarray, seed: int, fill: str) -> None:
    state = State.from_mask(mask)
    new, log = remove_objects(
        state, RemoveConfig(count=(1, 4), fill=fill), np.random.default_rng(seed)
    )
    new.check()
    cur_mask, cur_inst = mask.copy(), state.instances.copy()
    for rec in log:  # replaying the log on the input gives the output exactly
        src = cur_inst == rec.source_id
        assert src.sum() == rec.area and (state.instances == rec.source_id).sum() >= 64
        assert rec.class_after != rec.class_before and rec.class_after != 255
        if rec.class_after != 0:
            assert (cur_mask[cur_inst == rec.new_id] == rec.class_after).all()
        cur_mask[src], cur_inst[src] = rec.class_after, rec.new_id
    assert np.array_equal(cur_mask, new.mask) and np.array_equal(cur_inst, new.instances)
    assert (new.mask[mask == 255] == 255).all()
    eligible = state.objects().eligible(min_area=64, classes=None, exclude=(0, 255))
    assert (len(log) == 0) == (eligible.size == 0)


@SETTINGS
@given(masks(classes=8), seeds)
def test_reclass_moves_only_along_kernel(mask: np.ndarray, seed: int) -> None:
    state = State.from_mask(mask)
    new, log = reclass_objects(
        state, ReclassConfig(rate=0.5, min_area=30), np.random.default_rng(seed)
    )
    new.check()
    touched = np.zeros(mask.shape, bool)
    for rec in log:
        assert OPENEARTHMAP_KERNEL.allows(rec.class_before, rec.class_after)
        src = state.instances == rec.source_id
        assert src.sum() >= 30 and (new.mask[src] == rec.class_after).all()
        touched |= src
    assert np.array_equal(new.mask[~touched], mask[~touched])
    small = [r for r in state.objects().rows if r[6] < 30]
    for r in small:  # objects below min_area are untouched, not erased
        assert (new.mask[state.instances == r[0]] == r[1]).all()


@SETTINGS
@given(masks(), seeds, st.integers(1, 4), st.sampled_from(["sequence", "mixture"]))
def test_chain_labels_and_determinism(mask: np.ndarray, seed: int, steps: int, mode: str) -> None:
    process = ChangeProcess.from_flags(
        "create,remove",
        steps=steps,
        mode=mode,
        count=(1, 3),
        scale=(0.7, 1.3),
        rotate="any",
        flip=True,
        min_area=16,
    )
    a = simulate(mask, process, np.random.default_rng(seed))
    b = simulate(mask, process, np.random.default_rng(seed))
    assert a.masks.tobytes() == b.masks.tobytes() and a.log == b.log
    assert a.masks.shape == (steps + 1, *mask.shape)
    for i in range(steps + 1):
        for j in range(steps + 1):
            expected = (a.masks[i] != a.masks[j]).astype(np.uint8)
            ign = (a.masks[i] == 255) | (a.masks[j] == 255)
            expected[ign] = 255
            assert np.array_equal(a.change(i, j), expected)
            assert np.array_equal(binary_change(a.masks[i], a.masks[j]), a.change(i, j))
    assert (a.masks[:, mask == 255] == 255).all()
    if a.log and any(r.event == "create" for r in a.log):
        c = simulate(mask, process, np.random.default_rng(seed + 1))
        d = simulate(mask, process, np.random.default_rng(seed + 2))
        assert not (a.log == c.log == d.log)


@SETTINGS
@given(st.integers(32, 96), seeds, st.sampled_from([0, 255]))
def test_empty_or_uniform_masks_return_input(size: int, seed: int, value: int) -> None:
    mask = np.full((size, size), value, np.uint8)
    state = State.from_mask(mask)
    rng = np.random.default_rng(seed)
    for fn, cfg in (
        (create_objects, CreateConfig()),
        (remove_objects, RemoveConfig()),
        (reclass_objects, ReclassConfig()),
    ):
        out, log = fn(state, cfg, rng)
        assert out is state and log == []
    chain = simulate(mask, ChangeProcess.from_flags(steps=2), rng)
    assert chain.log == [] and (chain.masks == value).all()
