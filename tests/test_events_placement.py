"""Where created objects land: whole sources only, homogeneous interiors on land cover, and a
warning that says why a create never fired."""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from changen.events import ChangeProcess, CreateConfig, EventSpec, ShapeBank, State, simulate
from changen.events.create import create_objects
from changen.events.policy import default_process, unfired_warnings
from changen.events.records import EventTally
from changen.taxonomies import OPENEARTHMAP

SETTINGS = settings(max_examples=30, deadline=None)
seeds = st.integers(0, 2**32 - 1)


def land_cover(rng: np.random.Generator, size: int, classes: int = 8) -> np.ndarray:
    """A land-cover mask of ``classes`` classes 1..classes (no background 0): coarse random
    regions upsampled, so that large single-class regions exist, plus small blobs."""
    cells = rng.integers(1, classes + 1, (4, 4)).astype(np.uint8)
    mask = cv2.resize(cells, (size, size), interpolation=cv2.INTER_NEAREST)
    for _ in range(int(rng.integers(3, 9))):
        h, w = rng.integers(8, 21, 2)
        y, x = rng.integers(2, size - 23, 2)
        mask[y : y + h, x : x + w] = rng.integers(1, classes + 1)
    return mask


@st.composite
def land_cover_masks(draw: st.DrawFn) -> np.ndarray:
    return land_cover(np.random.default_rng(draw(seeds)), draw(st.integers(128, 192)))


def test_sources_touching_the_border_are_not_copied() -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[0:12, 20:40] = 1  # clipped by the top edge
    mask[30:42, 20:32] = 2  # whole
    state = State.from_mask(mask)
    for seed in range(10):
        config = CreateConfig(count=(3, 3), min_area=16)
        _, log = create_objects(state, config, np.random.default_rng(seed))
        assert log and {r.class_after for r in log} == {2}
    clipped = CreateConfig(count=(3, 3), min_area=16, clipped=True)
    classes = set()
    for seed in range(10):
        _, log = create_objects(state, clipped, np.random.default_rng(seed))
        classes |= {r.class_after for r in log}
    assert classes == {1, 2}


def test_shape_bank_leaves_out_clipped_shapes() -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[50:64, 0:10] = 1
    mask[10:20, 10:30] = 2
    assert ShapeBank.harvest([mask], min_area=16).classes.tolist() == [2]
    assert ShapeBank.harvest([mask], min_area=16, clipped=True).classes.tolist() == [1, 2]


@SETTINGS
@given(land_cover_masks(), seeds, st.sampled_from(["none", "any"]))
def test_homogeneous_copies_lie_inside_one_host_region(
    mask: np.ndarray, seed: int, rotation: str
) -> None:
    hosts = (1, 2, 3, 4, 5)
    config = CreateConfig(
        count=(1, 6),
        scale=(0.5, 1.0),
        rotation=rotation,
        placement="homogeneous",
        within_classes=hosts,
        min_area=16,
        clipped=True,
    )
    state = State.from_mask(mask)
    new, log = create_objects(state, config, np.random.default_rng(seed))
    new.check()
    created = np.zeros(mask.shape, bool)
    for rec in log:
        drawn = new.instances == rec.new_id
        below = np.unique(mask[drawn])
        assert below.tolist() == [rec.class_before]  # one host region's class
        assert rec.class_before in hosts and rec.class_before != rec.class_after
        assert not (created & drawn).any()  # copies never overlap each other
        created |= drawn
    assert np.array_equal(new.mask[~created], mask[~created])  # the rest is untouched
    again, log2 = create_objects(state, config, np.random.default_rng(seed))
    assert log2 == log and np.array_equal(again.mask, new.mask)  # deterministic


@SETTINGS
@given(land_cover_masks(), seeds)
def test_default_policy_creates_or_explains_why_on_land_cover(mask: np.ndarray, seed: int) -> None:
    assert not (mask == 0).any()
    process = default_process(OPENEARTHMAP, events="create")
    chain = simulate(mask, process, np.random.default_rng(seed), taxonomy=OPENEARTHMAP)
    assert chain.tally.done["create"] == len(chain.log)
    if not chain.log:  # rare: no whole object to copy, or no homogeneous spot it fits
        assert set(chain.tally.reasons) <= {("create", "no_source"), ("create", "no_fit")}
        assert chain.tally.reasons


def test_default_policy_creates_on_nearly_every_land_cover_mask() -> None:
    process = default_process(OPENEARTHMAP, events="create")
    created = sum(
        bool(
            simulate(
                land_cover(np.random.default_rng(s), 128),
                process,
                np.random.default_rng(s),
                taxonomy=OPENEARTHMAP,
            ).log
        )
        for s in range(20)
    )
    assert created >= 19


def test_free_placement_on_land_cover_explains_why_nothing_was_created() -> None:
    rng = np.random.default_rng(0)
    process = default_process(OPENEARTHMAP, events="create", placement="free")
    tally = EventTally()
    for i in range(4):
        chain = simulate(land_cover(rng, 96), process, np.random.default_rng(i))
        assert not chain.log
        tally.update(chain.tally)
    (line,) = unfired_warnings(process, Counter(), tally)
    tried = tally.tried["create"]
    assert tried > 0
    assert line.startswith(f"warning: create never happened: 0 of {tried} attempts placed")
    assert "no background (id 0) pixels" in line and "--placement homogeneous" in line


def test_warnings_tell_missing_sources_and_undrawn_events() -> None:
    mask = np.zeros((32, 32), np.uint8)
    mask[0:8, 0:8] = 1  # the only object touches the border
    create = EventSpec("create", CreateConfig(count=(1, 1), min_area=16))
    chain = simulate(mask, ChangeProcess((create,)), np.random.default_rng(0))
    (line,) = unfired_warnings(ChangeProcess((create,)), Counter(), chain.tally)
    assert "no eligible object" in line and "off the mask border" in line
    never = ChangeProcess((create,), mode="mixture")
    (line,) = unfired_warnings(never, Counter(), EventTally())
    assert "never drew it" in line
