"""The one default change policy: land cover gets creates, object masks keep the paper's
setting, and an event that never fires says why."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from changen.data.world import WorldConfig, render_scene
from changen.errors import ConfigError
from changen.events import simulate
from changen.events.policy import (
    default_process,
    host_classes,
    is_land_cover,
    kernel_fits,
    unfired_warnings,
)
from changen.events.transition import OPENEARTHMAP_KERNEL
from changen.taxonomies import BINARY_BUILDING, LOVEDA, OPENEARTHMAP, XVIEW2_DAMAGE


def test_land_cover_and_object_taxonomies() -> None:
    assert is_land_cover(OPENEARTHMAP) and is_land_cover(LOVEDA)
    assert not is_land_cover(BINARY_BUILDING) and not is_land_cover(XVIEW2_DAMAGE)
    assert 8 not in host_classes(OPENEARTHMAP) and 0 not in host_classes(OPENEARTHMAP)
    assert kernel_fits(OPENEARTHMAP_KERNEL, OPENEARTHMAP)
    assert not kernel_fits(OPENEARTHMAP_KERNEL, BINARY_BUILDING)


def test_object_masks_keep_background_placement() -> None:
    create = default_process(BINARY_BUILDING).events[0].config
    assert create.placement == "free"  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", range(4))
def test_default_events_create_on_land_cover_without_background(seed: int) -> None:
    scene = render_scene(np.random.default_rng(seed), WorldConfig(size=128))
    assert not (scene.mask == OPENEARTHMAP.background).any()  # no free ground at all
    process = default_process(OPENEARTHMAP)
    chain = simulate(scene.mask, process, np.random.default_rng(seed), taxonomy=OPENEARTHMAP)
    created = [r for r in chain.log if r.event == "create"]
    assert created, "no create on a land-cover scene with default events"
    before, after = chain.masks[0], chain.masks[1]
    hosts = set(host_classes(OPENEARTHMAP))
    grown = (after != before) & np.isin(after, [8])
    assert set(np.unique(before[grown]).tolist()) <= hosts


def test_reclass_needs_a_fitting_kernel() -> None:
    with pytest.raises(ConfigError, match="kernel"):
        default_process(BINARY_BUILDING, events="create,reclass")


def test_an_event_that_never_fires_is_explained() -> None:
    process = default_process(OPENEARTHMAP, placement="free")
    lines = unfired_warnings(process, Counter({"remove": 3}))
    assert [line.split(":")[1].strip() for line in lines] == [
        "create never happened",
        "reclass never happened",
    ]
    assert "--placement within" in lines[0] and "\n" not in lines[0]
    assert unfired_warnings(process, Counter(create=1, remove=1, reclass=1)) == []
