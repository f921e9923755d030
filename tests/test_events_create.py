"""Create events: class kept, no overlap, transforms, placement rules, shape bank."""

from __future__ import annotations

import json

import numpy as np
import pytest

from changen.errors import ConfigError, DataError
from changen.events import CreateConfig, ShapeBank, State, create_objects, transform_shape
from changen.events import create as create_module


def _scene() -> np.ndarray:
    mask = np.zeros((96, 96), np.uint8)
    mask[5:15, 5:25] = 1  # 200 px, class 1
    mask[40:52, 60:70] = 3  # 120 px, class 3
    mask[70:96, 0:40] = 6  # a "field" region
    return mask


def test_copies_keep_class_and_do_not_overlap() -> None:
    mask = _scene()
    state = State.from_mask(mask)
    new, log = create_objects(state, CreateConfig(count=(6, 6)), np.random.default_rng(1))
    assert len(log) == 6
    new.check()
    for rec in log:
        drawn = new.instances == rec.new_id
        assert drawn.sum() == rec.area
        assert (new.mask[drawn] == rec.class_after).all()
        assert rec.class_after == mask[state.instances == rec.source_id][0]
        assert (mask[drawn] == 0).all()  # only on former background
        assert rec.class_before == 0 and rec.event == "create"
    assert len({r.new_id for r in log}) == 6 and min(r.new_id for r in log) >= state.next_id
    changed = new.mask != mask
    assert (mask[changed] == 0).all()  # nothing existing was overwritten
    assert (new.mask[~changed] == mask[~changed]).all()
    assert new.next_id == state.next_id + 6


def test_translation_copy_is_an_exact_shifted_copy() -> None:
    mask = _scene()
    state = State.from_mask(mask)
    new, (rec,) = create_objects(state, CreateConfig(count=(1, 1)), np.random.default_rng(4))
    src = np.argwhere(state.instances == rec.source_id)
    dst = np.argwhere(new.instances == rec.new_id)
    assert np.array_equal(src + np.array(rec.offset), dst)
    assert rec.scale == 1.0 and rec.angle == 0.0 and rec.flip is False


def test_input_state_is_not_modified() -> None:
    state = State.from_mask(_scene())
    before = (state.mask.copy(), state.instances.copy(), state.objects().rows.copy())
    create_objects(state, CreateConfig(count=(3, 3), allow_overlap=True), np.random.default_rng(0))
    assert np.array_equal(before[0], state.mask) and np.array_equal(before[1], state.instances)
    assert np.array_equal(before[2], state.objects().rows)


@pytest.mark.parametrize("scale", [0.5, 0.8, 1.5, 2.0])
@pytest.mark.parametrize("rotation", ["none", "90", "any"])
def test_area_scales_with_scale_squared(scale: float, rotation: str) -> None:
    mask = np.zeros((128, 128), np.uint8)
    mask[4:24, 4:34] = 2  # 600 px
    state = State.from_mask(mask)
    cfg = CreateConfig(count=(5, 5), scale=(scale, scale), rotation=rotation, flip=True)
    _new, log = create_objects(state, cfg, np.random.default_rng(2))
    assert log
    for rec in log:
        assert rec.scale == scale
        assert rec.area == pytest.approx(600 * scale**2, rel=0.12)
        assert rec.class_after == 2


def test_rotation_90_gives_exact_quarter_turns() -> None:
    mask = np.zeros((80, 80), np.uint8)
    mask[2:6, 2:20] = 1
    mask[6:14, 2:6] = 1  # an L shape, asymmetric
    state = State.from_mask(mask)
    src = state.objects().footprint(state.instances, 0)
    new, log = create_objects(
        state, CreateConfig(count=(8, 8), rotation="90", flip=True), np.random.default_rng(5)
    )
    assert {r.angle for r in log} <= {0.0, 90.0, 180.0, 270.0}
    assert len({r.angle for r in log}) > 1
    for rec in log:
        ys, xs = np.nonzero(new.instances == rec.new_id)
        drawn = np.zeros((ys.max() - ys.min() + 1, xs.max() - xs.min() + 1), bool)
        drawn[ys - ys.min(), xs - xs.min()] = True
        ref = np.rot90(src[:, ::-1] if rec.flip else src, int(rec.angle // 90))
        assert np.array_equal(drawn, ref)


def test_transform_shape() -> None:
    fp = np.zeros((10, 20), bool)
    fp[2:8, 1:19] = True
    assert np.array_equal(transform_shape(fp), fp[2:8, 1:19])
    assert transform_shape(fp, angle=90).shape == (18, 6)
    assert transform_shape(fp, scale=0.5).sum() == pytest.approx(fp.sum() / 4, rel=0.1)
    rotated = transform_shape(fp, angle=45)
    assert rotated.sum() == pytest.approx(fp.sum(), rel=0.1)
    assert rotated.shape[0] > 10 and rotated.shape[1] < 20
    assert np.array_equal(transform_shape(fp, flip=True), fp[2:8, 1:19][:, ::-1])


def test_within_places_whole_footprint_inside_region() -> None:
    mask = _scene()
    state = State.from_mask(mask)
    cfg = CreateConfig(
        count=(3, 3), classes=(1, 3), placement="within", within_classes=(6,), min_area=0
    )
    new, log = create_objects(state, cfg, np.random.default_rng(3))
    assert log
    new.check()
    for rec in log:
        drawn = new.instances == rec.new_id
        assert (mask[drawn] == 6).all()
        assert rec.class_before == 6 and rec.class_after in (1, 3)
    # the field lost exactly the created pixels; the field object was refreshed
    assert (new.mask == 6).sum() == (mask == 6).sum() - sum(r.area for r in log)


def test_within_without_room_creates_nothing() -> None:
    mask = _scene()
    cfg = CreateConfig(count=(2, 2), placement="within", within_classes=(3,))  # too small
    new, log = create_objects(State.from_mask(mask), cfg, np.random.default_rng(0))
    assert log == [] and np.array_equal(new.mask, mask)


def test_ignore_is_never_written_even_with_overlap() -> None:
    mask = np.full((60, 60), 255, np.uint8)
    mask[20:40, 20:40] = 0
    mask[22:30, 22:30] = 1
    state = State.from_mask(mask)
    cfg = CreateConfig(count=(20, 20), allow_overlap=True, min_area=0)
    new, log = create_objects(state, cfg, np.random.default_rng(0))
    assert log
    assert (new.mask[mask == 255] == 255).all()
    new.check()


def test_allow_overlap_cuts_existing_objects_consistently() -> None:
    rng = np.random.default_rng(7)
    mask = np.zeros((40, 40), np.uint8)
    mask[0:20, 0:20] = 1
    mask[20:40, 20:40] = 2
    state = State.from_mask(mask)
    config = CreateConfig(count=(10, 10), allow_overlap=True, clipped=True)
    new, log = create_objects(state, config, rng)
    assert len(log) == 10
    new.check()  # cut objects have refreshed bboxes and areas


def test_margin_keeps_distance() -> None:
    mask = np.zeros((100, 100), np.uint8)
    mask[40:50, 40:50] = 1
    state = State.from_mask(mask)
    new, log = create_objects(state, CreateConfig(count=(6, 6), margin=3), np.random.default_rng(0))
    assert log
    for rec in log:
        ys, xs = np.nonzero(new.instances == rec.new_id)
        others = (new.mask > 0) & (new.instances != rec.new_id)
        oy, ox = np.nonzero(others)
        gap = np.maximum(np.abs(ys[:, None] - oy[None]), np.abs(xs[:, None] - ox[None]))
        assert gap.min() > 3


@pytest.mark.parametrize("max_tries", [50, 1])
def test_placement_is_uniform_over_fitting_positions(max_tries: int) -> None:
    """A 3x3 square in a 7x7 free window has 25 positions; each should be drawn (by rejection,
    or, with one try, mostly by the fallback over fully free bboxes)."""
    mask = np.full((9, 9), 255, np.uint8)
    mask[1:8, 1:8] = 0
    bank = ShapeBank((np.ones((3, 3), bool),), np.array([1]))
    state = State.from_mask(mask)
    rng = np.random.default_rng(0)
    cfg = CreateConfig(count=(1, 1), shape_bank=bank, min_area=0, max_tries=max_tries)
    seen = np.zeros((9, 9), int)
    for _ in range(1000):
        new, (rec,) = create_objects(state, cfg, rng)
        ys, xs = np.nonzero(new.instances == rec.new_id)
        seen[ys.min(), xs.min()] += 1
    counts = seen[1:6, 1:6].ravel()
    assert seen.sum() == counts.sum() == 1000 and (counts > 0).all()
    assert counts.max() < 3 * counts.min()  # 40 expected per cell


def test_shape_bank_harvest_save_load_and_use(tmp_path) -> None:
    a = np.zeros((32, 32), np.uint8)
    a[2:12, 2:12] = 8
    b = np.zeros((32, 32), np.uint8)
    b[5:25, 5:9] = 8
    b[20:30, 20:30] = 2
    bank = ShapeBank.harvest([a, b], classes=[8])
    assert len(bank) == 2 and bank.classes.tolist() == [8, 8]
    path = tmp_path / "bank.npz"
    bank.save(path)
    loaded = ShapeBank.load(path)
    assert all(
        np.array_equal(x, y) for x, y in zip(bank.footprints, loaded.footprints, strict=True)
    )
    target = np.zeros((64, 64), np.uint8)  # no objects of its own
    new, log = create_objects(
        State.from_mask(target),
        CreateConfig(count=(3, 3), shape_bank=loaded),
        np.random.default_rng(0),
    )
    assert len(log) == 3
    assert all(r.source_id == -1 and r.bank_index in (0, 1) and r.class_after == 8 for r in log)
    assert sorted(np.unique(new.mask).tolist()) == [0, 8]
    with pytest.raises(DataError):
        ShapeBank.load(tmp_path / "missing.npz")
    with pytest.raises(ConfigError):
        ShapeBank.harvest([a], max_per_mask=1)


def test_no_source_or_no_room_returns_input_and_empty_log() -> None:
    empty = State.from_mask(np.zeros((20, 20), np.uint8))
    out, log = create_objects(empty, CreateConfig(), np.random.default_rng(0))
    assert out is empty and log == []
    full = State.from_mask(np.ones((20, 20), np.uint8))
    out, log = create_objects(full, CreateConfig(), np.random.default_rng(0))
    assert out is full and log == []


def test_config_validation_and_json_round_trip() -> None:
    with pytest.raises(ConfigError):
        CreateConfig(scale=(0.0, 1.0))
    with pytest.raises(ConfigError):
        CreateConfig(rotation="45")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        CreateConfig(placement="within")
    with pytest.raises(ConfigError):
        CreateConfig(count=(3, 1))
    cfg = CreateConfig(
        count=(2, 4),
        scale=(0.5, 1.5),
        rotation="any",
        flip=True,
        placement="within",
        within_classes=(6, 7),
        classes=(8,),
    )
    assert CreateConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_same_seed_same_result_different_seed_differs() -> None:
    state = State.from_mask(_scene())
    cfg = CreateConfig(count=(3, 3), scale=(0.5, 1.5), rotation="any", flip=True)
    a, la = create_objects(state, cfg, np.random.default_rng(11))
    b, lb = create_objects(state, cfg, np.random.default_rng(11))
    c, _lc = create_objects(state, cfg, np.random.default_rng(12))
    assert a.mask.tobytes() == b.mask.tobytes() and la == lb
    assert a.mask.tobytes() != c.mask.tobytes()


def test_room_fits_and_bbox_draw_match_pixelwise_checks() -> None:
    """The room's fit test (OpenCV min/max under the footprint) is the pixel-wise check for
    one free class, several, and an explicit free map; the fallback draw takes the n-th fitting
    box in raster order."""
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 4, (40, 40), dtype=np.uint8)
    mask[rng.random(mask.shape) < 0.6] = 0
    configs = [CreateConfig(), CreateConfig(allow_overlap=True), CreateConfig(margin=1)]
    for config in configs:
        free = create_module._free_classes(config, 0, 255)
        room = create_module._Room(mask.copy(), config, free)
        explicit = room.free_map()
        for _ in range(200):
            fp = rng.random(tuple(int(v) for v in rng.integers(1, 6, 2))) < 0.7
            h, w = fp.shape
            py, px = int(rng.integers(0, 41 - h)), int(rng.integers(0, 41 - w))
            expected = bool(explicit[py : py + h, px : px + w][fp].all())
            assert room.fits(fp, py, px) == expected
    image = (rng.random((9, 13)) < 0.4).astype(np.uint8)
    flat = np.flatnonzero(image)
    for n in range(flat.size):
        assert create_module._nth_set(image, n) == divmod(int(flat[n]), 13)
    for fp in (np.zeros((3, 4), bool), np.pad(np.ones((2, 3), bool), ((1, 2), (4, 0)))):
        tight = create_module._tight(fp)
        assert tight.shape == ((0, 0) if not fp.any() else (2, 3)) and tight.all()
