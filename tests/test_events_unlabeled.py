"""Tests of unlabeled mode: region proposals, instance preparation, contours, agnostic events."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.measure import label

from changen.data.imageio import read_image
from changen.errors import ConfigError, DataError
from changen.events import (
    ChangeProcess,
    CreateConfig,
    EventSpec,
    RemoveConfig,
    State,
    create_objects,
    remove_objects,
    simulate,
)
from changen.events.unlabeled import (
    OBJECT_CLASS,
    OBJECT_TAXONOMY,
    agnostic_mask,
    contour_map,
    prepare_instances,
    propose_instances,
)

QUADRANT_COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]


def quadrant_image(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Four flat colour quadrants with mild noise, and the quadrant index of every pixel."""
    h = size // 2
    truth = np.zeros((size, size), np.int64)
    truth[:h, h:], truth[h:, :h], truth[h:, h:] = 1, 2, 3
    image = np.array(QUADRANT_COLOURS, np.int16)[truth]
    image = image + rng.integers(-2, 3, image.shape)
    return image.clip(0, 255).astype(np.uint8), truth


def assert_instance_format(inst: np.ndarray, min_area: int = 1) -> None:
    assert inst.dtype == np.int32 and inst.ndim == 2
    ids = np.unique(inst[inst > 0])
    assert (ids == np.arange(1, len(ids) + 1)).all()  # consecutive from 1
    assert (np.bincount(inst.ravel())[1:] >= min_area).all()
    # every instance is one 4-connected piece
    assert label(inst, background=0, connectivity=1).max() == len(ids)


def test_felzenszwalb_recovers_flat_regions(rng: np.random.Generator) -> None:
    image, truth = quadrant_image(rng)
    inst = propose_instances(image, "felzenszwalb", scale=1000, sigma=0, min_area=16)
    assert_instance_format(inst, 16)
    assert inst.max() == 4
    for q in range(4):
        assert len(np.unique(inst[truth == q])) == 1  # one region per quadrant


def test_slic_superpixels_respect_strong_edges(rng: np.random.Generator) -> None:
    image, truth = quadrant_image(rng)
    inst = propose_instances(image, "slic", n_segments=16, min_area=8)
    assert_instance_format(inst, 8)
    assert 8 <= inst.max() <= 32
    purity = [np.bincount(truth[inst == i]).max() / (inst == i).sum() for i in range(1, 17)]
    assert min(purity) > 0.95


def test_proposals_are_deterministic_and_follow_band_rules(rng: np.random.Generator) -> None:
    image, _ = quadrant_image(rng)
    a = propose_instances(image, "slic", n_segments=16)
    assert (a == propose_instances(image, "slic", n_segments=16)).all()
    grey16 = image[..., :1].astype(np.uint16) * 200
    assert propose_instances(grey16, "felzenszwalb", scale=1000, sigma=0, min_area=16).max() >= 2
    rgba = np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    rgba[:10, :, 3] = 0  # no-data rows
    inst = propose_instances(rgba, "slic", n_segments=16, min_area=8)
    assert (inst[:10] == 0).all() and (inst[10:] > 0).any()


def test_area_limits_drop_fragments_and_large_regions(rng: np.random.Generator) -> None:
    image, truth = quadrant_image(rng)
    image[truth == 0] = image[truth == 1]  # merge two quadrants into one large region
    inst = propose_instances(
        image, "felzenszwalb", scale=1000, sigma=0, min_area=16, max_area=32 * 32
    )
    assert (inst[truth <= 1] == 0).all()  # the 2048-px region is free space
    assert inst.max() == 2


def test_bad_proposal_arguments_raise_typed_errors(rng: np.random.Generator) -> None:
    image, _ = quadrant_image(rng)
    with pytest.raises(ConfigError, match="unknown method"):
        propose_instances(image, "sam")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_area"):
        propose_instances(image, min_area=100, max_area=10)
    with pytest.raises(DataError, match="shape"):
        propose_instances(np.zeros(10, np.uint8))


def test_prepare_instances_accepts_arbitrary_ids() -> None:
    sam = np.zeros((20, 20), np.int64)
    sam[1:5, 1:5] = 7
    sam[10:15, 10:15] = 2**40  # ids beyond int32 are fine: they are relabelled
    sam[1:5, 12:16] = 7  # a second piece of id 7 becomes its own instance
    sam[18, 18] = 3  # a 1-px fragment
    inst = prepare_instances(sam, min_area=2)
    assert_instance_format(inst, 2)
    assert inst.max() == 3
    assert inst[18, 18] == 0
    assert ((inst > 0) == ((sam > 0) & (sam != 3))).all()


def test_prepare_instances_rejects_bad_maps() -> None:
    with pytest.raises(DataError, match="negative"):
        prepare_instances(np.full((4, 4), -1))
    with pytest.raises(DataError, match="integer"):
        prepare_instances(np.zeros((4, 4), np.float32))
    with pytest.raises(DataError, match="HW"):
        prepare_instances(np.zeros((4, 4, 1), np.int32))


def test_agnostic_mask_convention() -> None:
    inst = np.array([[0, 3], [9, 0]], np.int32)
    mask = agnostic_mask(inst)
    assert mask.dtype == np.uint8
    assert (mask == np.array([[0, OBJECT_CLASS], [OBJECT_CLASS, 0]])).all()
    assert OBJECT_TAXONOMY.foreground_ids == [OBJECT_CLASS]


def brute_force_contour(inst: np.ndarray, t: int) -> np.ndarray:
    h, w = inst.shape
    padded = np.pad(inst, t, mode="edge")
    out = np.zeros((h, w), bool)
    for dy in range(-t, t + 1):
        for dx in range(-t, t + 1):
            out |= padded[t + dy : t + dy + h, t + dx : t + dx + w] != inst
    return (out & (inst > 0)).astype(np.uint8)


@settings(max_examples=40, deadline=None)
@given(
    inst=arrays(
        np.int32, st.tuples(st.integers(1, 24), st.integers(1, 24)), elements=st.integers(0, 3)
    ),
    thickness=st.integers(1, 3),
)
def test_contour_map_marks_pixels_near_another_instance(inst: np.ndarray, thickness: int) -> None:
    out = contour_map(inst, thickness=thickness)
    assert out.dtype == np.uint8 and out.shape == inst.shape
    assert (out == brute_force_contour(inst, thickness)).all()


def test_contour_map_of_touching_squares() -> None:
    inst = np.zeros((8, 10), np.int32)
    inst[1:6, 1:4] = 3
    inst[1:6, 4:8] = 9
    out = contour_map(inst)
    assert out[3, 3] == 1 and out[3, 4] == 1  # both sides of the shared edge
    assert out[3, 2] == 0 and out[3, 5] == 0  # interiors
    assert out[0].sum() == 0  # background is never a contour
    thick = contour_map(inst, thickness=2)
    assert (thick >= out).all() and thick[3, 2] == 1
    with pytest.raises(ConfigError, match="thickness"):
        contour_map(inst, thickness=0)


SAM_IDS = (17, 4242, 99_999, 3, 250_000, 61)


def sam_style_map() -> np.ndarray:
    """Six separate instances with arbitrary, non-consecutive ids, as a SAM export might hold."""
    inst = np.zeros((128, 128), np.int32)
    for k, sid in enumerate(SAM_IDS):
        y, x = 8 + 40 * (k // 3), 8 + 40 * (k % 3)
        inst[y : y + 12 + 2 * k, x : x + 14] = sid
    return inst


def test_remove_on_a_class_agnostic_instance_map() -> None:
    inst = sam_style_map()
    state = State.from_mask(agnostic_mask(inst), inst)
    after, log = remove_objects(state, RemoveConfig(count=(2, 2)), np.random.default_rng(1))
    assert len(log) == 2 and all(r.event == "remove" for r in log)
    gone = {r.source_id for r in log}
    assert gone <= set(SAM_IDS)
    assert not np.isin(after.instances, list(gone)).any()
    kept = ~np.isin(inst, list(gone))
    assert (after.instances[kept] == inst[kept]).all()  # other instances untouched
    assert (after.mask == agnostic_mask(after.instances)).all()


def test_create_on_a_class_agnostic_instance_map() -> None:
    inst = sam_style_map()
    state = State.from_mask(agnostic_mask(inst), inst)
    config = CreateConfig(count=(3, 3), rotation="90", flip=True)
    after, log = create_objects(state, config, np.random.default_rng(2))
    assert len(log) == 3
    for r in log:
        assert r.source_id in SAM_IDS and r.new_id > max(SAM_IDS)
        assert r.class_after == OBJECT_CLASS
        assert (after.instances == r.new_id).sum() == (inst == r.source_id).sum() == r.area
    assert (after.instances[inst > 0] == inst[inst > 0]).all()  # no overlap with the originals
    assert (after.mask == agnostic_mask(after.instances)).all()


def test_chain_on_proposed_instances_stays_consistent(rng: np.random.Generator) -> None:
    image, _ = quadrant_image(rng, size=128)
    inst = propose_instances(image, "slic", n_segments=64, min_area=64, max_area=256)
    assert inst.max() >= 10 and (inst == 0).any()
    events = (
        EventSpec("remove", RemoveConfig(count=(1, 2))),
        EventSpec("create", CreateConfig(count=(1, 2))),
    )
    process = ChangeProcess(events, steps=3)
    chain = simulate(
        agnostic_mask(inst),
        process,
        np.random.default_rng(5),
        instances=inst,
        taxonomy=OBJECT_TAXONOMY,
    )
    assert chain.log
    for k in range(4):
        assert (chain.masks[k] == agnostic_mask(chain.instances[k])).all()
        assert (contour_map(chain.instances[k]) <= chain.masks[k]).all()
    again = simulate(
        agnostic_mask(inst),
        process,
        np.random.default_rng(5),
        instances=inst,
        taxonomy=OBJECT_TAXONOMY,
    )
    assert (again.instances == chain.instances).all() and again.log == chain.log


@pytest.mark.real
def test_proposals_on_a_real_loveda_tile(real_root) -> None:
    image = read_image(real_root / "loveda" / "img_dir" / "0.png")[:512, :512]
    start = time.perf_counter()
    inst = propose_instances(image, "slic", n_segments=300, min_area=64)
    elapsed = time.perf_counter() - start
    assert_instance_format(inst, 64)
    assert 150 <= inst.max() <= 600
    assert (inst > 0).mean() > 0.9
    contours = contour_map(inst)
    assert 0.02 < contours.mean() < 0.5
    assert elapsed < 10
