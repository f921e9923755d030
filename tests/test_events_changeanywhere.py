"""ChangeAnywhere's events: appearance moves an instance (same class and shape) into the
interior of a homogeneous region and the place it leaves takes the class around it;
disappearance fills with the surrounding class; the change label is the XOR of the masks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from changen.cli.app import app
from changen.errors import ConfigError
from changen.events import ChangeProcess, CreateConfig, ShapeBank, State, simulate
from changen.events.create import create_objects
from changen.events.policy import changeanywhere_process, default_process
from changen.events.records import EventRecord
from changen.taxonomies import OPENEARTHMAP

SETTINGS = settings(max_examples=40, deadline=None)
seeds = st.integers(0, 2**32 - 1)
APPEAR = changeanywhere_process().events[0].config
assert isinstance(APPEAR, CreateConfig)
RING = np.ones((3, 3), np.uint8)


def farmland(rng: np.random.Generator, size: int) -> np.ndarray:
    """Land cover as ChangeAnywhere sees it: 2–4 bands of fields (classes 1–4) across the
    image with small buildings (8) and tree patches (6) on them, and sometimes ignore."""
    cuts = np.sort(rng.choice(np.arange(8, size - 8), int(rng.integers(1, 4)), replace=False))
    mask = np.zeros((size, size), np.uint8)
    for band, (y0, y1) in enumerate(zip([0, *cuts], [*cuts, size], strict=True)):
        mask[y0:y1] = 1 + (band + int(rng.integers(4))) % 4
    for _ in range(int(rng.integers(2, 9))):
        h, w = rng.integers(4, 12, 2)
        y, x = rng.integers(1, size - 13, 2)
        mask[y : y + h, x : x + w] = rng.choice([6, 8])
    if rng.random() < 0.3:
        y = int(rng.integers(0, size - 3))
        mask[y : y + 3, : size // 3] = 255
    return mask


@st.composite
def scenes(draw: st.DrawFn) -> np.ndarray:
    return farmland(np.random.default_rng(draw(seeds)), draw(st.integers(48, 96)))


def moves(log: list[EventRecord]) -> list[tuple[EventRecord, EventRecord]]:
    """The (create, remove) record pairs of a move event's log, checking their order."""
    assert [r.event for r in log] == ["create", "remove"] * (len(log) // 2)
    pairs = list(zip(log[0::2], log[1::2], strict=True))
    assert all(c.source_id == r.source_id for c, r in pairs)
    return pairs


def tight(footprint: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(footprint)
    return footprint[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


@SETTINGS
@given(scenes(), seeds, st.integers(1, 4))
def test_a_move_keeps_class_and_shape_lands_inside_one_region_and_leaves_its_surroundings(
    mask: np.ndarray, seed: int, count: int
) -> None:
    state = State.from_mask(mask)
    config = dataclasses.replace(APPEAR, count=(count, count), min_area=12)
    new, log = create_objects(state, config, np.random.default_rng(seed))
    new.check()
    edited = np.zeros(mask.shape, bool)
    for create, remove in moves(log):
        src = state.instances == create.source_id
        dst = new.instances == create.new_id
        cls = create.class_after
        assert (mask[src] == cls).all() and (new.mask[dst] == cls).all()  # class kept
        assert np.array_equal(tight(src), tight(dst)) and not (src & dst).any()  # shape kept
        # the copy lies in one connected region of one other class at t1, mostly inside it
        host = create.class_before
        assert host != cls and (mask[dst] == host).all()
        _, regions = cv2.connectedComponents((mask == host).view(np.uint8), connectivity=8)
        assert len(np.unique(regions[dst])) == 1
        inner = cv2.erode((mask == host).view(np.uint8), RING).view(bool)
        assert inner[dst].mean() > 0.8
        # the place it left takes one class found around it, never its own
        band = cv2.dilate(src.view(np.uint8), np.ones((11, 11), np.uint8)).view(bool) & ~src
        assert remove.class_after != cls and remove.class_after in mask[band]
        assert (new.mask[src] == remove.class_after).all() and remove.area == src.sum()
        edited |= src | dst
    assert np.array_equal(new.mask[~edited], mask[~edited])  # nothing else changed
    assert np.array_equal(new.instances[~edited], state.instances[~edited])
    if not log:
        assert new is state


def test_a_building_moves_into_the_field_and_its_plot_becomes_rangeland() -> None:
    mask = np.full((64, 64), 2, np.uint8)  # rangeland
    mask[:, 36:] = 7  # a field along the right edge (not a source: it touches the border)
    mask[10:18, 10:18] = 8  # a building
    mask[:, :6] = 3  # a road along the left edge
    process = changeanywhere_process(count=(1, 1))
    process = dataclasses.replace(process, events=process.events[:1])  # appearance only
    for seed in range(5):
        chain = simulate(mask, process, np.random.default_rng(seed))
        after = chain.masks[1]
        assert (after[10:18, 10:18] == 2).all()  # the plot takes the surrounding class
        assert (after == 8).sum() == 64  # moved, not copied
        ys, xs = np.nonzero(after == 8)
        assert np.ptp(ys) == np.ptp(xs) == 7 and len(np.unique(mask[ys, xs])) == 1
        assert np.array_equal(chain.change(0, 1), (mask != after).astype(np.uint8))  # XOR


@pytest.mark.parametrize("seed", range(4))
def test_the_process_gives_xor_labels_deterministically(seed: int) -> None:
    mask = farmland(np.random.default_rng(seed), 96)
    process = default_process(OPENEARTHMAP, events="changeanywhere", count=(2, 3))
    a = simulate(mask, process, np.random.default_rng(seed), taxonomy=OPENEARTHMAP)
    b = simulate(mask, process, np.random.default_rng(seed), taxonomy=OPENEARTHMAP)
    assert a.masks.tobytes() == b.masks.tobytes() and a.log == b.log
    expected = (a.masks[0] != a.masks[1]).astype(np.uint8)
    expected[(a.masks[0] == 255) | (a.masks[1] == 255)] = 255
    assert np.array_equal(a.change(0, 1), expected)
    assert {r.event for r in a.log} <= {"create", "remove"}
    assert {r.class_after for r in a.log if r.event == "remove"} & {0, 255} == set()


def test_the_process_is_saved_with_its_moves() -> None:
    process = default_process(OPENEARTHMAP, events="changeanywhere", within=(2, 7), steps=3)
    data = json.loads(json.dumps(process.to_dict()))
    create = data["events"][0]["config"]
    assert create["move"] is True and create["placement"] == "homogeneous"
    assert create["within_classes"] == [2, 7] and create["scale"] == [1.0, 1.0]
    assert data["events"][1]["config"]["fill"] == "surrounding" and data["steps"] == 3
    assert ChangeProcess.from_dict(data) == process
    copying = CreateConfig(placement="homogeneous")
    assert "move" not in copying.to_dict()  # copying processes save as before


def test_flags_the_preset_fixes_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="changeanywhere fixes --scale, --fill"):
        default_process(OPENEARTHMAP, events="changeanywhere", scale=(0.5, 1.5), fill="background")
    with pytest.raises(ConfigError, match="--within 42"):
        default_process(OPENEARTHMAP, events="changeanywhere", within=(42,))
    bank = ShapeBank((np.ones((9, 9), bool),), np.array([1]))
    with pytest.raises(ConfigError, match="drop move or the shape bank"):
        CreateConfig(move=True, shape_bank=bank)


def test_simulate_runs_the_changeanywhere_events(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "sim"
    result = CliRunner().invoke(
        app, ["simulate", str(source), "--out", str(out), "--events", "changeanywhere"]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "process.json").read_text())
    assert saved["events"][0]["config"]["move"] is True
    records = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert records and {r["event"] for r in records} <= {"create", "remove"}
    bad = CliRunner().invoke(
        app,
        [
            "simulate",
            str(source),
            "--out",
            str(tmp_path / "bad"),
            "--events",
            "changeanywhere",
            "--rotate",
            "90",
        ],
    )
    assert isinstance(bad.exception, ConfigError) and "fixes --rotate" in str(bad.exception)
    assert not (tmp_path / "bad").exists()
