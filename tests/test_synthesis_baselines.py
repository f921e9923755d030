"""Learning-free synthesis baselines: Copy-Paste (harmonised pastes, patch or Telea fills) and
Inpainting."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from changen.data.world import WorldConfig, render_scene
from changen.errors import ConfigError
from changen.events import (
    ChangeProcess,
    CreateConfig,
    ReclassConfig,
    RemoveConfig,
    ShapeBank,
    State,
    TransitionKernel,
    create_objects,
    reclass_objects,
    remove_objects,
    simulate,
    transform_shape,
)
from changen.events.records import EventRecord
from changen.events.regions import Region
from changen.synthesis import SynthesisBatch, load_synthesizer
from changen.synthesis.copy_paste import CopyPaste
from changen.synthesis.harmonize import HARMONIZE, POISSON_MIN_SIDE, ring, to_lab
from changen.synthesis.inpaint import Inpaint
from changen.synthesis.patches import warp_patch
from changen.taxonomies import OPENEARTHMAP

SIZE = 80
BACKGROUND = np.array([90, 120, 70])
BLUE = np.array([20, 40, 200])


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth background, two noisy class-1 objects (every pixel distinct, so a misplaced
    copy cannot pass) and a blue class-6 field."""
    rng = np.random.default_rng(seed)
    image = (BACKGROUND + rng.integers(-3, 4, (SIZE, SIZE, 3))).astype(np.uint8)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[6:18, 8:26] = 1
    mask[20:25, 8:12] = 1
    mask[55:78, 50:78] = 6
    for cls in (1,):
        sel = mask == cls
        image[sel] = rng.integers(0, 256, (int(sel.sum()), 3))
    sel = mask == 6
    image[sel] = (BLUE + rng.integers(-6, 7, (int(sel.sum()), 3))).astype(np.uint8)
    return image, mask


def _batch(image: np.ndarray, before: State, after: State, records: list) -> SynthesisBatch:
    return SynthesisBatch(
        image[None],
        before.mask[None],
        after.mask[None],
        before.instances[None],
        after.instances[None],
        [records],
    )


def _interior(region: np.ndarray, feather: int) -> np.ndarray:
    """Pixels at least ``feather + 1`` pixels inside ``region`` (the fully opaque ones)."""
    dist = cv2.distanceTransform(np.pad(region, 1).view(np.uint8), cv2.DIST_L2, 5)
    return dist[1:-1, 1:-1] >= feather + 1


def _create(config: CreateConfig, want, seeds=range(200)):
    """First seed whose single create record satisfies ``want``."""
    image, mask = _scene()
    state = State.from_mask(mask)
    for seed in seeds:
        after, log = create_objects(state, config, np.random.default_rng(seed))
        if len(log) == 1 and want(log[0]):
            return image, state, after, log[0]
    raise AssertionError("no seed produced the wanted create event")


def test_translated_copy_takes_the_source_pixels() -> None:
    cfg = CreateConfig(count=(1, 1), classes=(1,), min_area=100)
    image, before, after, rec = _create(cfg, lambda r: True)
    out = CopyPaste(feather=2, harmonize="none")(
        _batch(image, before, after, [rec]), [np.random.default_rng(0)]
    )
    created = after.instances == rec.new_id
    inner = _interior(created, 2)
    assert inner.sum() > 20
    dy, dx = rec.offset
    ys, xs = np.nonzero(inner)
    np.testing.assert_array_equal(out[0][ys, xs], image[ys - dy, xs - dx])
    ey, ex = np.nonzero(created & ~inner)
    assert (out[0][ey, ex] != image[ey - dy, ex - dx]).any()  # the edge is blended
    assert out[0][created].std() > 30  # the noisy object, not a smooth fill


@pytest.mark.parametrize("quarter", [1, 2, 3])
def test_rotated_flipped_copy_is_exact(quarter: int) -> None:
    cfg = CreateConfig(count=(1, 1), classes=(1,), min_area=100, rotation="90", flip=True)
    image, before, after, rec = _create(cfg, lambda r: r.angle == 90.0 * quarter and r.flip)
    out = CopyPaste(feather=1, harmonize="none")(
        _batch(image, before, after, [rec]), [np.random.default_rng(0)]
    )
    src = before.instances == rec.source_id
    ys, xs = np.nonzero(src)
    crop = image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    expected = np.rot90(crop[:, ::-1], quarter)
    created = after.instances == rec.new_id
    cy, cx = np.nonzero(created)
    y0, x0 = cy.min(), cx.min()
    inner = _interior(created, 1)
    iy, ix = np.nonzero(inner)
    assert iy.size > 20
    np.testing.assert_array_equal(out[0][iy, ix], expected[iy - y0, ix - x0])


@pytest.mark.parametrize(
    ("scale", "angle", "flip"),
    [
        (1.0, 0.0, True),
        (1.0, 270.0, False),
        (0.7, 90.0, True),
        (1.3, 0.0, False),
        (1.0, 33.0, False),
        (0.8, 151.5, True),
        (1.2, 301.0, True),
    ],
)
def test_warp_patch_matches_transform_shape(scale: float, angle: float, flip: bool) -> None:
    rng = np.random.default_rng(3)
    fp = np.zeros((13, 21), bool)
    fp[2:11, 1:20] = True
    fp[rng.random(fp.shape) < 0.2] = False
    fp[0, 5:9] = True
    pixels = rng.integers(0, 256, (*fp.shape, 3), dtype=np.uint8)
    img, warped = warp_patch(pixels, fp, scale=scale, angle=angle, flip=flip)
    np.testing.assert_array_equal(warped, transform_shape(fp, scale=scale, angle=angle, flip=flip))
    assert img.shape == (*warped.shape, 3) and img.dtype == np.uint8


def test_any_angle_copy_lands_on_the_created_footprint() -> None:
    cfg = CreateConfig(
        count=(1, 1), classes=(1,), min_area=100, rotation="any", scale=(0.8, 1.3), flip=True
    )
    image, before, after, rec = _create(cfg, lambda r: r.angle % 90 > 10 and r.scale != 1.0)
    src = before.instances == rec.source_id
    ys, xs = np.nonzero(src)
    box = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
    patch, fp = warp_patch(image[box], src[box], scale=rec.scale, angle=rec.angle, flip=rec.flip)
    created = after.instances == rec.new_id
    cy, cx = np.nonzero(created)
    y0, x0 = cy.min(), cx.min()
    np.testing.assert_array_equal(created[y0 : y0 + fp.shape[0], x0 : x0 + fp.shape[1]], fp)
    out = CopyPaste(feather=0, harmonize="none")(
        _batch(image, before, after, [rec]), [np.random.default_rng(0)]
    )
    np.testing.assert_array_equal(out[0][cy, cx], patch[cy - y0, cx - x0])


def test_removed_object_takes_the_surrounding_background() -> None:
    image, mask = _scene()
    before = State.from_mask(mask)
    after, log = remove_objects(
        before, RemoveConfig(count=(1, 1), classes=(1,), min_area=100), np.random.default_rng(0)
    )
    removed = before.instances == log[0].source_id
    for synth in (CopyPaste(), Inpaint()):
        out = synth(_batch(image, before, after, log), [np.random.default_rng(0)])[0]
        assert (out[removed] != image[removed]).any(axis=1).mean() > 0.95
        np.testing.assert_allclose(out[removed].mean(axis=0), BACKGROUND, atol=8)
        assert out[removed].std(axis=0).max() < 10
        np.testing.assert_array_equal(out[~removed], image[~removed])


def test_reclassed_region_takes_the_target_class_colours() -> None:
    image, mask = _scene()
    before = State.from_mask(mask)
    cfg = ReclassConfig(
        kernel=TransitionKernel.from_edges([(1, 6)]), count=(1, 1), classes=(1,), min_area=100
    )
    after, log = reclass_objects(before, cfg, np.random.default_rng(0))
    region = after.mask != mask
    assert region.sum() == 12 * 18
    out = CopyPaste(feather=2)(_batch(image, before, after, log), [np.random.default_rng(1)])[0]
    inner = _interior(region, 2)
    field = image[mask == 6].astype(float)
    np.testing.assert_allclose(out[inner].mean(axis=0), field.mean(axis=0), atol=3)
    np.testing.assert_allclose(out[inner].std(axis=0), field.std(axis=0), rtol=0.5)
    np.testing.assert_array_equal(out[~region], image[~region])


def test_reclass_to_a_class_absent_from_t1_is_inpainted() -> None:
    image, mask = _scene()
    before = State.from_mask(mask)
    cfg = ReclassConfig(
        kernel=TransitionKernel.from_edges([(1, 3)]), count=(1, 1), classes=(1,), min_area=100
    )
    after, log = reclass_objects(before, cfg, np.random.default_rng(0))
    batch = _batch(image, before, after, log)
    rngs = [np.random.default_rng(0)]
    np.testing.assert_array_equal(CopyPaste()(batch, rngs), Inpaint()(batch, rngs))


def test_shape_bank_creation_borrows_the_nearest_same_class_object() -> None:
    image, mask = _scene()
    before = State.from_mask(mask)
    square = np.ones((10, 10), bool)
    bank = ShapeBank((square, square), np.array([1, 3]))
    rngs = [np.random.default_rng(0)]
    for cls, like_object in ((1, True), (3, False)):
        cfg = CreateConfig(count=(1, 1), classes=(cls,), shape_bank=bank, min_area=1)
        after, log = create_objects(before, cfg, np.random.default_rng(2))
        assert log[0].source_id == -1
        batch = _batch(image, before, after, log)
        out = CopyPaste(feather=1)(batch, rngs)[0]
        created = after.instances == log[0].new_id
        if like_object:  # noisy like the class-1 objects of t1, not a smooth fill
            assert out[_interior(created, 1)].std() > 40
        else:  # no class-3 object in t1: the footprint keeps its fill, like the ground
            telea = CopyPaste(fill="telea")(batch, rngs)[0]
            np.testing.assert_array_equal(telea, Inpaint(fill="telea")(batch, rngs)[0])
            np.testing.assert_allclose(out[created].mean(axis=0), BACKGROUND, atol=8)


def test_telea_inpaint_cannot_render_a_created_object() -> None:
    cfg = CreateConfig(count=(1, 1), classes=(1,), min_area=100)
    image, before, after, rec = _create(cfg, lambda r: True)
    out = Inpaint(fill="telea")(_batch(image, before, after, [rec]), [np.random.default_rng(0)])[0]
    created = after.instances == rec.new_id
    np.testing.assert_allclose(out[created].mean(axis=0), BACKGROUND, atol=8)
    np.testing.assert_array_equal(out[~created], image[~created])


def _world_batch(seeds: list[int], steps: int = 1) -> SynthesisBatch:
    """Sample-world scenes changed by creations, removals and re-classes (OpenEarthMap ids:
    no background id, so copies land within rangeland)."""
    process = ChangeProcess.from_flags(
        "create,remove,reclass",
        count=(1, 3),
        rotate="90",
        flip=True,
        placement="within",
        within_classes=(2,),
        fill="surrounding",
        min_area=16,
        steps=steps,
    )
    parts: list[list] = [[], [], [], [], [], []]
    for seed in seeds:
        rng = np.random.default_rng(seed)
        scene = render_scene(rng, WorldConfig(size=64))
        chain = simulate(scene.mask, process, rng, instances=scene.instances, taxonomy=OPENEARTHMAP)
        for part, value in zip(
            parts,
            (
                scene.image,
                chain.masks[0],
                chain.masks[-1],
                chain.instances[0],
                chain.instances[-1],
                chain.records(0, steps),
            ),
            strict=True,
        ):
            part.append(value)
    return SynthesisBatch(*(np.stack(p) for p in parts[:5]), events=parts[5])


def _rngs(seed: int, n: int) -> list[np.random.Generator]:
    return [np.random.default_rng(np.random.SeedSequence([seed, i])) for i in range(n)]


@pytest.mark.parametrize("steps", [1, 2])
def test_mixed_batch_keeps_unchanged_pixels(steps: int) -> None:
    batch = _world_batch([0, 1, 2], steps=steps)
    assert {r.event for recs in batch.events for r in recs} == {"create", "remove", "reclass"}
    unchanged = (batch.t1_mask == batch.t2_mask) & (batch.t1_instances == batch.t2_instances)
    for synth in (CopyPaste(), Inpaint()):
        out = synth(batch, _rngs(7, 3))
        assert out.dtype == np.uint8 and out.shape == batch.t1_image.shape
        np.testing.assert_array_equal(out[unchanged], batch.t1_image[unchanged])
        assert (out[~unchanged] != batch.t1_image[~unchanged]).any()


def test_deterministic_and_independent_of_batch_order() -> None:
    batch = _world_batch([3, 4, 5])
    synth = CopyPaste()
    out = synth(batch, _rngs(1, 3))
    np.testing.assert_array_equal(out, synth(batch, _rngs(1, 3)))
    order = [2, 0, 1]
    assert batch.events is not None
    permuted = SynthesisBatch(
        batch.t1_image[order],
        batch.t1_mask[order],
        batch.t2_mask[order],
        batch.t1_instances[order],
        batch.t2_instances[order],
        [batch.events[i] for i in order],
    )
    rngs = _rngs(1, 3)
    np.testing.assert_array_equal(synth(permuted, [rngs[i] for i in order]), out[order])


def test_without_records_both_inpaint_the_class_changes() -> None:
    batch = _world_batch([6, 7])
    masks_only = SynthesisBatch(batch.t1_image, batch.t1_mask, batch.t2_mask)
    copy = CopyPaste()(masks_only, _rngs(0, 2))
    np.testing.assert_array_equal(copy, Inpaint()(masks_only, _rngs(0, 2)))
    changed = batch.t1_mask != batch.t2_mask
    np.testing.assert_array_equal(copy[~changed], batch.t1_image[~changed])
    assert (copy[changed] != batch.t1_image[changed]).any()
    with_records = CopyPaste()(batch, _rngs(0, 2))
    assert (with_records != copy).any()  # records make copies, not just fills


def _two_light_scene(
    obj: tuple[slice, slice], dest: tuple[int, int], size: int = 96
) -> tuple[np.ndarray, SynthesisBatch]:
    """A bright left half and a dark right half of noisy ground, one noisy roof (class 1,
    id 1) at ``obj`` copied by a create record so its top-left lands at ``dest`` (id 2)."""
    rng = np.random.default_rng(5)
    image = np.empty((size, size, 3), np.uint8)
    half = size // 2
    image[:, :half] = np.clip(np.array([190, 180, 160]) + rng.normal(0, 6, (size, half, 3)), 0, 255)
    image[:, half:] = np.clip(
        np.array([70, 66, 58]) + rng.normal(0, 4, (size, size - half, 3)), 0, 255
    )
    t1_inst = np.zeros((size, size), np.int32)
    t1_inst[obj] = 1
    image[obj] = np.clip(np.array([225, 140, 115]) + rng.normal(0, 10, image[obj].shape), 0, 255)
    (ys, xs), (dy, dx) = obj, dest
    t2_inst = t1_inst.copy()
    t2_inst[dy : dy + ys.stop - ys.start, dx : dx + xs.stop - xs.start] = 2
    offset = (dy - ys.start, dx - xs.start)
    area = int((t2_inst == 2).sum())
    rec = EventRecord(step=0, event="create", source_id=1, new_id=2, class_before=0,
                      class_after=1, offset=offset, area=area)  # fmt: skip
    batch = SynthesisBatch(
        image[None],
        (t1_inst > 0).astype(np.uint8)[None],
        (t2_inst > 0).astype(np.uint8)[None],
        t1_inst[None],
        t2_inst[None],
        [[rec]],
    )
    return image, batch


def _lab_gap(out: np.ndarray, image: np.ndarray, batch: SynthesisBatch) -> float:
    """Distance between the Lab means of the pasted object and the ring of t1 ground around
    it."""
    created = batch.t2_instances[0] == 2
    ys, xs = np.nonzero(created)
    region = Region(ys.min(), xs.min(), created[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    around = ring(image, region, batch.t1_instances[0] > 0)
    return float(np.linalg.norm(to_lab(out[created]).mean(0) - to_lab(around).mean(0)))


def test_harmonized_paste_narrows_the_colour_gap_to_its_new_surroundings() -> None:
    image, batch = _two_light_scene((slice(30, 50), slice(10, 30)), (40, 62))
    gaps = {
        h: _lab_gap(CopyPaste(harmonize=h)(batch, [np.random.default_rng(0)])[0], image, batch)
        for h in HARMONIZE
    }
    src = batch.t1_instances[0] == 1
    ys, xs = np.nonzero(src)
    natural = float(
        np.linalg.norm(
            to_lab(image[src]).mean(0)
            - to_lab(ring(image, Region(ys.min(), xs.min(), src[30:50, 10:30]), src)).mean(0)
        )
    )
    print(f"Lab gap to the new ring: {gaps}; the object's own gap at its source: {natural:.1f}")
    assert gaps["stats"] < 0.6 * gaps["none"]
    assert gaps["poisson"] < 0.7 * gaps["none"]


@pytest.mark.parametrize(
    ("obj", "dest"),
    [
        ((slice(30, 50), slice(10, 30)), (76, 76)),  # pasted into the corner: touches the border
        ((slice(30, 35), slice(10, 30)), (60, 62)),  # 5 pixels thin: too thin for Poisson
    ],
)
def test_poisson_never_fails_and_keeps_other_pixels(obj, dest) -> None:
    image, batch = _two_light_scene(obj, dest)
    out = CopyPaste(harmonize="poisson")(batch, [np.random.default_rng(0)])[0]
    created = batch.t2_instances[0] == 2
    np.testing.assert_array_equal(out[~created], image[~created])
    plain = CopyPaste(harmonize="none")(batch, [np.random.default_rng(0)])[0]
    assert _lab_gap(out, image, batch) < 0.7 * _lab_gap(plain, image, batch)
    if obj[0].stop - obj[0].start < POISSON_MIN_SIDE:  # falls back to statistics matching
        stats = CopyPaste(harmonize="stats")(batch, [np.random.default_rng(0)])[0]
        np.testing.assert_array_equal(out, stats)


def _textured(size: int, seed: int) -> np.ndarray:
    """Stripes of period 6 under seeded noise: texture a smooth fill cannot fake."""
    rng = np.random.default_rng(seed)
    stripes = 25.0 * np.sin(2 * np.pi * np.arange(size) / 6.0)[None, :, None]
    return np.clip(
        np.array([110, 130, 80]) + stripes + rng.normal(0, 12, (size, size, 3)), 0, 255
    ).astype(np.uint8)


def test_patch_fill_leaves_texture_where_telea_leaves_a_smudge() -> None:
    size = 96
    image = _textured(size, 2)
    mask = np.zeros((size, size), np.uint8)
    mask[34:58, 30:60] = 1
    image[mask == 1] = [200, 60, 60]
    before = State.from_mask(mask)
    after, log = remove_objects(before, RemoveConfig(count=(1, 1), classes=(1,)), _rngs(0, 1)[0])
    hole = mask == 1
    ground = image[~hole].astype(float).std(axis=0).mean()
    ratios = {}
    for synth in (Inpaint(fill="telea"), Inpaint(), CopyPaste()):
        out = synth(_batch(image, before, after, log), _rngs(3, 1))[0]
        np.testing.assert_array_equal(out[~hole], image[~hole])
        ratios[f"{synth.name}/{synth.fill}"] = out[hole].astype(float).std(axis=0).mean() / ground
        np.testing.assert_allclose(out[hole].mean(axis=0), image[~hole].mean(axis=0), atol=8)
    print(f"hole std / ground std: {ratios}")
    assert ratios["inpaint/telea"] < 0.45
    assert ratios["inpaint/patch"] > 0.8 and ratios["copy_paste/patch"] > 0.8


def test_patch_fill_tiles_a_class_too_small_to_hold_the_hole() -> None:
    """A 40x40 field re-classed to a class seen only in a 10x10 patch: no shift of the hole
    fits, so the patch is tiled, with its colours (the rim is another class)."""
    size = 80
    image = _textured(size, 4)
    t1_mask = np.zeros((size, size), np.uint8)
    t1_mask[5:15, 60:70] = 6
    image[5:15, 60:70] = _textured(10, 5) // 2 + [0, 0, 100]
    t2_mask = t1_mask.copy()
    t2_mask[30:70, 20:60] = 6
    batch = SynthesisBatch(image[None], t1_mask[None], t2_mask[None])
    out = Inpaint()(batch, _rngs(0, 1))[0]
    field, patch = out[30:70, 20:60].reshape(-1, 3), image[5:15, 60:70].reshape(-1, 3)
    np.testing.assert_allclose(field.mean(axis=0), patch.mean(axis=0), atol=6)
    assert field.astype(float).std() > 0.5 * patch.astype(float).std()
    np.testing.assert_array_equal(out[t2_mask == t1_mask], image[t2_mask == t1_mask])


OPTIONS = [
    CopyPaste(),
    CopyPaste(harmonize="none", fill="telea"),
    CopyPaste(harmonize="poisson"),
    Inpaint(),
    Inpaint(fill="telea"),
]


@pytest.mark.parametrize("synth", OPTIONS, ids=lambda s: "-".join(map(str, s.config().values())))
def test_every_option_is_deterministic_batch_independent_and_local(synth) -> None:
    batch = _world_batch([8, 9, 10])
    out = synth(batch, _rngs(2, 3))
    np.testing.assert_array_equal(out, synth(batch, _rngs(2, 3)))
    for i in range(3):
        single = SynthesisBatch(
            *(a[i : i + 1] for a in (batch.t1_image, batch.t1_mask, batch.t2_mask)),
            batch.t1_instances[i : i + 1],
            batch.t2_instances[i : i + 1],
            [batch.events[i]],
        )
        np.testing.assert_array_equal(synth(single, [_rngs(2, 3)[i]])[0], out[i])
    unchanged = (batch.t1_mask == batch.t2_mask) & (batch.t1_instances == batch.t2_instances)
    np.testing.assert_array_equal(out[unchanged], batch.t1_image[unchanged])


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("copy_paste", {"harmonize": "reinhard"}, "harmonize must be one of none, stats, poisson"),
        ("copy_paste", {"fill": "smudge"}, "fill must be one of telea, patch"),
        ("inpaint", {"fill": "smudge"}, "fill must be one of telea, patch"),
    ],
)
def test_bad_options_are_one_clear_line(name, options, message) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_synthesizer(name, **options)
    assert "\n" not in str(err.value)


def test_config_records_the_new_options() -> None:
    assert CopyPaste().config() == {
        "name": "copy_paste",
        "feather": 2,
        "inpaint_radius": 5,
        "harmonize": "poisson",
        "fill": "patch",
    }
    assert Inpaint(fill="telea").config() == {
        "name": "inpaint",
        "inpaint_radius": 5,
        "fill": "telea",
    }
