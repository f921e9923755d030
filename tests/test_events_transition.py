"""Re-class events and transition kernels."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from changen.errors import ConfigError
from changen.events import (
    OPENEARTHMAP_KERNEL,
    ReclassConfig,
    State,
    TransitionKernel,
    reclass_objects,
)
from changen.taxonomies import OPENEARTHMAP


def _land_cover(seed: int, size: int = 96, cells: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(1, 9, (cells, cells), dtype=np.uint8)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_NEAREST)


def test_openearthmap_kernel_has_38_edges_and_stochastic_rows() -> None:
    k = OPENEARTHMAP_KERNEL
    assert len(k.edges) == 38
    assert k.sources == tuple(range(1, 9))
    assert all(a != b for a, b in k.edges)
    assert {c for e in k.edges for c in e} <= set(OPENEARTHMAP.foreground_ids)
    m = k.matrix(9)
    assert np.allclose(m[1:].sum(axis=1), 1.0) and m[0].sum() == 0
    assert np.count_nonzero(m) == 38
    assert k.allows(1, 8) and not k.allows(8, 6) and k.probability(4, 1) == pytest.approx(0.5)


def test_kernel_construction_and_validation() -> None:
    k = TransitionKernel.from_dict({1: {2: 3.0, 3: 1.0}}, name="t")
    assert k.probability(1, 2) == pytest.approx(0.75)
    assert TransitionKernel.from_json_dict(json.loads(json.dumps(k.to_dict()))) == k
    for bad in ({1: {1: 1.0}}, {1: {}}, {1: {2: -1.0}}, {1: {2: 0.0}}, {1: {300: 1.0}}):
        with pytest.raises(ConfigError):
            TransitionKernel.from_dict(bad)


def test_reclass_follows_kernel_edges_and_keeps_ids() -> None:
    mask = _land_cover(0)
    state = State.from_mask(mask, connectivity=4)
    new, log = reclass_objects(
        state, ReclassConfig(count=(5, 5), min_area=0), np.random.default_rng(0)
    )
    assert len(log) == 5
    new.check()
    changed = np.zeros(mask.shape, bool)
    for rec in log:
        assert OPENEARTHMAP_KERNEL.allows(rec.class_before, rec.class_after)
        pix = state.instances == rec.source_id
        assert rec.new_id == rec.source_id and pix.sum() == rec.area
        assert (new.mask[pix] == rec.class_after).all() and (new.instances[pix] == rec.new_id).all()
        changed |= pix
    assert np.array_equal(new.mask[~changed], mask[~changed])


def test_transition_frequencies_match_kernel() -> None:
    kernel = TransitionKernel.from_dict({1: {2: 0.7, 3: 0.2, 4: 0.1}})
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 1
    state = State.from_mask(mask)
    rng = np.random.default_rng(0)
    targets = [
        reclass_objects(state, ReclassConfig(kernel, count=(1, 1), min_area=0), rng)[1][
            0
        ].class_after
        for _ in range(2000)
    ]
    freq = np.bincount(targets, minlength=5)[2:] / 2000
    assert freq == pytest.approx([0.7, 0.2, 0.1], abs=0.04)


def test_small_objects_untouched_not_erased() -> None:
    mask = np.full((40, 40), 5, np.uint8)
    mask[10:15, 10:15] = 8  # 25 px building
    state = State.from_mask(mask)
    new, log = reclass_objects(
        state, ReclassConfig(rate=1.0, classes=(8,)), np.random.default_rng(0)
    )
    assert log == [] and new is state
    new, log = reclass_objects(
        state, ReclassConfig(rate=1.0, classes=(8,), min_area=25), np.random.default_rng(0)
    )
    assert [r.class_before for r in log] == [8]
    assert (new.mask[10:15, 10:15] != 8).all() and (new.mask[mask == 5] == 5).all()


def test_reclass_to_background_drops_instance() -> None:
    kernel = TransitionKernel.from_edges([(2, 0)])
    mask = np.zeros((20, 20), np.uint8)
    mask[0:10, 0:10] = 2
    state = State.from_mask(mask)
    new, (rec,) = reclass_objects(
        state, ReclassConfig(kernel, count=(1, 1)), np.random.default_rng(0)
    )
    assert rec.class_after == 0 and rec.new_id == 0
    assert not new.mask.any() and not new.instances.any() and len(new.objects()) == 0


def test_include_background_regions() -> None:
    kernel = TransitionKernel.from_edges([(0, 7)])
    mask = np.zeros((30, 30), np.uint8)
    mask[:, 10:12] = 4  # a road splits the background in two regions
    mask[0:2, 0:2] = 255
    state = State.from_mask(mask)
    cfg = ReclassConfig(kernel, rate=1.0, include_background=True)
    new, log = reclass_objects(state, cfg, np.random.default_rng(0))
    assert sorted(r.area for r in log) == [296, 540]
    assert all(r.class_before == 0 and r.class_after == 7 and r.source_id == 0 for r in log)
    assert len({r.new_id for r in log}) == 2 and min(r.new_id for r in log) >= state.next_id
    assert (new.mask == 7).sum() == 836 and (new.mask[0:2, 0:2] == 255).all()
    new.check()
    off, log = reclass_objects(state, ReclassConfig(kernel, rate=1.0), np.random.default_rng(0))
    assert log == [] and off is state


def test_config_round_trip() -> None:
    cfg = ReclassConfig(count=(2, 3), classes=(1, 5), include_background=True, min_area=10)
    assert ReclassConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
