"""Event regions: one rule for which pixels each record touched, reclass-to-background included."""

from __future__ import annotations

import numpy as np

from changen.events import (
    ChangeProcess,
    CreateConfig,
    EventSpec,
    ReclassConfig,
    RemoveConfig,
    TransitionKernel,
    simulate,
)
from changen.events.regions import event_maps, event_regions


def _two_objects() -> np.ndarray:
    mask = np.zeros((48, 48), np.uint8)
    mask[4:16, 4:16] = 1
    mask[28:40, 26:44] = 2
    return mask


def test_reclass_to_background_marks_the_pixels_that_lost_their_id() -> None:
    mask = _two_objects()
    kernel = TransitionKernel.from_edges([(1, 0), (2, 0)])
    process = ChangeProcess((EventSpec("reclass", ReclassConfig(kernel, count=(2, 2))),))
    chain = simulate(mask, process, np.random.default_rng(0))
    assert [r.new_id for r in chain.log] == [0, 0]
    created, removed, reclassed = event_maps(chain, 1)
    assert np.array_equal(reclassed, mask > 0)
    assert not created.any() and not removed.any()


def test_each_record_gets_its_own_pixels() -> None:
    mask = _two_objects()
    events = (
        EventSpec("remove", RemoveConfig(count=(1, 1), min_area=1)),
        EventSpec("create", CreateConfig(count=(1, 1), min_area=1)),
    )
    chain = simulate(mask, ChangeProcess(events), np.random.default_rng(3))
    found = event_regions(chain.log, chain.instances[0], chain.instances[1], chain.masks[1])
    assert [r.event for r, _ in found] == ["remove", "create"]
    (remove, gone), (create, born) = found
    assert np.array_equal(gone.footprint, chain.instances[0][gone.box] == remove.source_id)
    assert np.array_equal(born.footprint, chain.instances[1][born.box] == create.new_id)
    created, removed, _ = event_maps(chain, 1)
    assert np.array_equal(created, chain.instances[1] == create.new_id)
    assert np.array_equal(removed, chain.instances[0] == remove.source_id)


def test_records_with_nothing_left_are_dropped() -> None:
    mask = _two_objects()
    process = ChangeProcess((EventSpec("create", CreateConfig(count=(1, 1), min_area=1)),))
    chain = simulate(mask, process, np.random.default_rng(1))
    assert event_regions(chain.log, chain.instances[0], chain.instances[0], chain.masks[0]) == []
