"""Remove events: background fill, surrounding-class fill, eligibility, bookkeeping."""

from __future__ import annotations

import json

import numpy as np
import pytest

from changen.errors import ConfigError
from changen.events import (
    ChangeProcess,
    RemoveConfig,
    State,
    default_fill,
    remove_objects,
    simulate,
    surrounding_class,
)
from changen.sample import Taxonomy
from changen.taxonomies import BINARY_BUILDING, LOVEDA, OPENEARTHMAP


def _houses() -> np.ndarray:
    mask = np.zeros((64, 64), np.uint8)
    mask[4:14, 4:14] = 1
    mask[30:40, 30:44] = 1
    mask[50:60, 2:12] = 2
    mask[20:24, 50:54] = 1  # 16 px: below min_area
    return mask


def test_background_fill_removes_only_chosen_objects() -> None:
    mask = _houses()
    state = State.from_mask(mask)
    new, log = remove_objects(state, RemoveConfig(count=(2, 2)), np.random.default_rng(0))
    assert len(log) == 2
    new.check()
    gone = np.zeros(mask.shape, bool)
    for rec in log:
        was = state.instances == rec.source_id
        assert was.sum() == rec.area
        assert (new.mask[was] == 0).all() and (new.instances[was] == 0).all()
        assert rec.class_after == 0 and rec.new_id == 0 and rec.class_before == mask[was][0]
        gone |= was
    assert np.array_equal(new.mask[~gone], mask[~gone])
    assert np.array_equal(new.instances[~gone], state.instances[~gone])
    assert len(new.objects()) == len(state.objects()) - 2


def test_small_objects_are_never_removed() -> None:
    mask = _houses()
    state = State.from_mask(mask)
    new, log = remove_objects(state, RemoveConfig(count=(10, 10)), np.random.default_rng(0))
    assert len(log) == 3
    assert (new.mask[20:24, 50:54] == 1).all()


def test_rate_and_class_filter() -> None:
    mask = _houses()
    state = State.from_mask(mask)
    _, log = remove_objects(state, RemoveConfig(rate=1.0, classes=(2,)), np.random.default_rng(0))
    assert [r.class_before for r in log] == [2]
    _, log = remove_objects(state, RemoveConfig(rate=0.0), np.random.default_rng(0))
    assert log == []


def test_surrounding_fill_takes_ring_majority_and_joins_that_instance() -> None:
    mask = np.full((60, 60), 7, np.uint8)  # agriculture
    mask[:, 40:] = 4  # a road on the right
    mask[20:30, 28:38] = 8  # a building, closer to the field than to the road
    mask[0:3, :] = 255
    state = State.from_mask(mask)
    field_id = int(state.instances[10, 10])
    cfg = RemoveConfig(count=(1, 1), fill="surrounding", ring=4, classes=(8,))
    new, (rec,) = remove_objects(state, cfg, np.random.default_rng(0))
    assert rec.class_before == 8 and rec.class_after == 7 and rec.new_id == field_id
    assert (new.mask[20:30, 28:38] == 7).all()
    assert (new.instances[20:30, 28:38] == field_id).all()
    new.check()  # the field's bbox and area grew consistently


def test_surrounding_ignores_ignore_and_own_class_and_falls_back() -> None:
    mask = np.full((30, 30), 255, np.uint8)
    mask[10:20, 10:20] = 3
    mask[5:10, 10:20] = 3  # a touching neighbour of the same class (its own instance)
    instances = np.zeros(mask.shape, np.int32)
    instances[10:20, 10:20] = 1
    instances[5:10, 10:20] = 2
    state = State.from_mask(mask, instances)
    cls, _, band = surrounding_class(
        mask, (10, 10, 20, 20), np.ones((10, 10), bool), ring=3, exclude=(255, 3), background=0
    )
    assert cls == 0 and band.any()
    new, (rec,) = remove_objects(
        state, RemoveConfig(count=(1, 1), fill="surrounding"), np.random.default_rng(0)
    )
    assert rec.class_after == 0  # nothing but ignore and its own class around it
    removed = state.instances == rec.source_id
    assert (new.mask[removed] == 0).all() and (new.mask[~removed] == mask[~removed]).all()


def test_surrounding_band_stays_inside_the_image() -> None:
    mask = np.zeros((20, 20), np.uint8) + 5
    mask[0:8, 0:8] = 2  # in the corner
    state = State.from_mask(mask)
    new, (rec,) = remove_objects(
        state,
        RemoveConfig(count=(1, 1), classes=(2,), fill="surrounding"),
        np.random.default_rng(0),
    )
    assert rec.class_after == 5 and (new.mask == 5).all()


def test_empty_and_no_eligible_return_input() -> None:
    for mask in (np.zeros((16, 16), np.uint8), _houses()[18:26, 48:56]):
        state = State.from_mask(mask)
        out, log = remove_objects(state, RemoveConfig(), np.random.default_rng(0))
        assert out is state and log == []


def test_config_validation_and_round_trip() -> None:
    with pytest.raises(ConfigError):
        RemoveConfig(fill="inpaint")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        RemoveConfig(rate=1.5)
    cfg = RemoveConfig(count=(0, 3), fill="surrounding", ring=7, classes=(1, 2))
    assert RemoveConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_determinism() -> None:
    state = State.from_mask(_houses())
    cfg = RemoveConfig(count=(1, 2))
    runs = [remove_objects(state, cfg, np.random.default_rng(s)) for s in (3, 3)]
    assert runs[0][1] == runs[1][1]
    assert runs[0][0].mask.tobytes() == runs[1][0].mask.tobytes()
    logs = {
        tuple(r.source_id for r in remove_objects(state, cfg, np.random.default_rng(s))[1])
        for s in range(12)
    }
    assert len(logs) > 1


def _remove_fill(process: ChangeProcess) -> str:
    (fill,) = (e.config.fill for e in process.events if isinstance(e.config, RemoveConfig))
    return fill


def test_user_facing_defaults_fill_multiclass_removals_with_the_surrounding_class() -> None:
    """OpenEarthMap's background id 0 is "unknown": without a --fill, the one default policy
    (used by the CLI and the GAN trainer) fills removed land-cover objects from their
    surroundings; binary masks keep 0."""
    from changen.cli.options import change_process
    from changen.events.policy import default_process

    def cli(
        taxonomy: Taxonomy, events: str | None = None, unlabeled: bool = False
    ) -> ChangeProcess:
        return change_process(events, taxonomy, unlabeled=unlabeled)

    assert default_fill(OPENEARTHMAP) == default_fill(LOVEDA) == "surrounding"
    assert default_fill(BINARY_BUILDING) == "background"
    assert _remove_fill(cli(OPENEARTHMAP)) == _remove_fill(default_process(OPENEARTHMAP))
    assert _remove_fill(cli(OPENEARTHMAP)) == "surrounding"
    assert _remove_fill(cli(BINARY_BUILDING)) == _remove_fill(default_process(BINARY_BUILDING))
    assert _remove_fill(cli(BINARY_BUILDING)) == "background"
    assert _remove_fill(cli(OPENEARTHMAP, "create,remove", unlabeled=True)) == "background"
    assert RemoveConfig().fill == "background"

    mask = np.full((64, 64), 2, np.uint8)  # rangeland | agriculture, buildings on both
    mask[:, 32:] = 7
    for y, x in ((4, 4), (4, 40), (40, 10), (40, 44)):
        mask[y : y + 12, x : x + 12] = 8
    chain = simulate(
        mask, cli(OPENEARTHMAP, "remove"), np.random.default_rng(0), taxonomy=OPENEARTHMAP
    )
    assert chain.log and all(r.class_after in (2, 7, 8) for r in chain.log)
    assert (chain.masks[1] != OPENEARTHMAP.background).all()
