"""Change processes: composition, chains, labels between steps, determinism, JSON."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from changen.errors import ConfigError, DataError
from changen.events import (
    CHANGE_IGNORE,
    ChangeProcess,
    CreateConfig,
    EventRecord,
    EventSpec,
    ReclassConfig,
    RemoveConfig,
    State,
    TransitionKernel,
    apply_step,
    decode_change,
    simulate,
)
from changen.taxonomies import LOVEDA, OPENEARTHMAP


def _buildings(seed: int = 0, size: int = 128, n: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(n):
        h, w = rng.integers(8, 16, 2)
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        mask[y : y + h, x : x + w] = 1
    return mask


def test_chain_shapes_labels_and_records() -> None:
    mask = _buildings()
    process = ChangeProcess.from_flags(
        "create,remove", steps=4, count=(1, 3), scale=(0.8, 1.2), rotate="any", flip=True
    )
    chain = simulate(mask, process, np.random.default_rng(0))
    assert chain.masks.shape == (5, 128, 128) and chain.masks.dtype == np.uint8
    assert chain.instances.shape == (5, 128, 128) and chain.instances.dtype == np.int32
    assert np.array_equal(chain.masks[0], mask) and chain.steps == 4
    assert {r.step for r in chain.log} <= {1, 2, 3, 4} and chain.log
    for i, j in [(0, 1), (1, 3), (0, 4), (4, 0)]:
        assert np.array_equal(chain.change(i, j), (chain.masks[i] != chain.masks[j]))
        recs = chain.records(i, j)
        assert all(min(i, j) < r.step <= max(i, j) for r in recs)
    code = chain.semantic_change(0, 4)
    assert ((code > 0) == chain.change(0, 4).astype(bool)).all()
    assert chain.object_change(0, 4).sum() >= chain.change(0, 4).sum()
    json.dumps(chain.log_dicts())


def test_each_step_replays_from_its_log() -> None:
    """The masks at t and t+1 differ exactly on the pixels the step's records touched."""
    mask = _buildings(1)
    process = ChangeProcess.from_flags("remove,create", steps=3, count=(1, 2))
    chain = simulate(mask, process, np.random.default_rng(1))
    for t in range(1, 4):
        touched = np.zeros(mask.shape, bool)
        for rec in chain.records(t - 1, t):
            if rec.event == "remove":
                touched |= chain.instances[t - 1] == rec.source_id
            else:
                touched |= chain.instances[t] == rec.new_id
        assert np.array_equal(chain.change(t - 1, t).astype(bool), touched)


def test_objects_born_in_a_step_survive_that_step() -> None:
    mask = _buildings(2)
    process = ChangeProcess.from_flags("create,remove", steps=1, count=(3, 3))
    state = State.from_mask(mask)
    _new, log = apply_step(state, process, np.random.default_rng(0), step=1)
    born = {r.new_id for r in log if r.event == "create"}
    removed = {r.source_id for r in log if r.event == "remove"}
    assert born and removed and not born & removed


def test_mixture_applies_one_event_per_step_with_weights() -> None:
    mask = _buildings(3, n=20)
    process = ChangeProcess(
        (
            EventSpec("create", CreateConfig(count=(1, 1)), 0.8),
            EventSpec("remove", RemoveConfig(count=(1, 1)), 0.2),
        ),
        mode="mixture",
        steps=200,
    )
    chain = simulate(mask, process, np.random.default_rng(0))
    kinds = [r.event for r in chain.log]
    assert len({r.step for r in chain.log}) == len(chain.log)  # one event per step
    assert kinds.count("create") / len(kinds) == pytest.approx(0.8, abs=0.1)


def test_sequence_probability_skips_events() -> None:
    mask = _buildings(4)
    never = ChangeProcess((EventSpec("remove", RemoveConfig(), 0.0),), steps=3)
    chain = simulate(mask, never, np.random.default_rng(0))
    assert chain.log == [] and (chain.masks == mask).all()


def test_determinism_byte_identical() -> None:
    mask = _buildings(5)
    process = ChangeProcess.from_flags("create,remove", steps=4, scale=(0.5, 1.5), rotate="any")
    a = simulate(mask, process, np.random.default_rng(42))
    b = simulate(mask, process, np.random.default_rng(42))
    c = simulate(mask, process, np.random.default_rng(43))
    assert a.masks.tobytes() == b.masks.tobytes() and a.instances.tobytes() == b.instances.tobytes()
    assert a.log == b.log
    assert a.masks.tobytes() != c.masks.tobytes()


def test_process_json_round_trip() -> None:
    process = ChangeProcess(
        (
            EventSpec("create", CreateConfig(scale=(0.5, 2.0), rotation="90"), 0.5),
            EventSpec("remove", RemoveConfig(fill="surrounding")),
            EventSpec("reclass", ReclassConfig(TransitionKernel.from_edges([(1, 2)], "x"))),
        ),
        mode="mixture",
        steps=6,
        connectivity=4,
    )
    again = ChangeProcess.from_dict(json.loads(json.dumps(process.to_dict())))
    assert again == process


def test_from_flags_and_validation() -> None:
    p = ChangeProcess.from_flags("create, reclass", count=(2, 2), rotate="90", min_area=10)
    assert [e.kind for e in p.events] == ["create", "reclass"]
    assert p.events[0].config.rotation == "90" and p.events[1].config.min_area == 10
    with pytest.raises(ConfigError, match="unknown event"):
        ChangeProcess.from_flags("create,explode")
    with pytest.raises(ConfigError):
        ChangeProcess(())
    with pytest.raises(ConfigError):
        ChangeProcess((EventSpec("remove", RemoveConfig()),), steps=0)
    with pytest.raises(ConfigError, match="RemoveConfig"):
        EventSpec("remove", CreateConfig())


def test_land_cover_chain_with_taxonomy() -> None:
    rng = np.random.default_rng(0)
    mask = cv2.resize(
        rng.integers(1, 9, (8, 8), dtype=np.uint8), (96, 96), interpolation=cv2.INTER_NEAREST
    )
    process = ChangeProcess.from_flags("reclass,remove", steps=3, count=(2, 4), fill="surrounding")
    chain = simulate(mask, process, np.random.default_rng(1), taxonomy=OPENEARTHMAP)
    assert chain.num_classes == 9
    kernel = process.events[0].config.kernel
    for rec in chain.log:
        if rec.event == "reclass":
            assert kernel.allows(rec.class_before, rec.class_after)
        else:  # a removed patch takes a neighbouring class, never its own nor background
            assert rec.class_after not in (rec.class_before, 0)
    assert (chain.masks[3] != 0).all()  # land cover stays fully labelled
    src, dst = decode_change(chain.semantic_change(0, 3), 9)
    changed = chain.change(0, 3).astype(bool)
    assert np.array_equal(src[changed], chain.masks[0][changed])
    assert np.array_equal(dst[changed], chain.masks[3][changed])


def test_loveda_ids_and_checks() -> None:
    mask = np.ones((64, 64), np.uint8)  # LoveDA background is 1, ignore (no-data) is 0
    mask[5:20, 5:20] = 2
    mask[40:60, 40:60] = 0
    process = ChangeProcess.from_flags("remove", count=(1, 1))
    chain = simulate(mask, process, np.random.default_rng(0), taxonomy=LOVEDA)
    (rec,) = chain.log
    assert rec.class_after == 1 and (chain.masks[1][40:60, 40:60] == 0).all()
    change = chain.change(0, 1)
    assert (change[40:60, 40:60] == CHANGE_IGNORE).all()  # LoveDA's ignore id 0 is not "unchanged"
    assert set(np.unique(change)) == {0, 1, CHANGE_IGNORE}
    with pytest.raises(ConfigError, match="kernel"):
        simulate(
            mask, ChangeProcess.from_flags("reclass"), np.random.default_rng(0), taxonomy=LOVEDA
        )
    with pytest.raises(DataError):
        simulate(mask + 20, process, np.random.default_rng(0), taxonomy=LOVEDA)


def test_empty_mask_chain_is_constant() -> None:
    mask = np.zeros((32, 32), np.uint8)
    chain = simulate(mask, ChangeProcess.from_flags(steps=3), np.random.default_rng(0))
    assert chain.log == [] and (chain.masks == 0).all() and not chain.change(0, 3).any()
    assert isinstance(
        EventRecord.from_dict(EventRecord(1, "create", 2, 3, 0, 1, offset=(1, -2)).to_dict()),
        EventRecord,
    )
