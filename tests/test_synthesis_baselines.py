"""Learning-free synthesis baselines: Copy-Paste (+ Telea for removals) and Inpainting."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from changen.data.world import WorldConfig, render_scene
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
from changen.synthesis import SynthesisBatch
from changen.synthesis.copy_paste import CopyPaste
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
    out = CopyPaste(feather=2)(_batch(image, before, after, [rec]), [np.random.default_rng(0)])
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
    out = CopyPaste(feather=1)(_batch(image, before, after, [rec]), [np.random.default_rng(0)])
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
    out = CopyPaste(feather=0)(_batch(image, before, after, [rec]), [np.random.default_rng(0)])
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
        else:  # no class-3 object in t1: the footprint is inpainted
            np.testing.assert_array_equal(out, Inpaint()(batch, rngs)[0])


def test_inpaint_cannot_render_a_created_object() -> None:
    cfg = CreateConfig(count=(1, 1), classes=(1,), min_area=100)
    image, before, after, rec = _create(cfg, lambda r: True)
    out = Inpaint()(_batch(image, before, after, [rec]), [np.random.default_rng(0)])[0]
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
    rngs = _rngs(0, 2)
    copy = CopyPaste()(masks_only, rngs)
    np.testing.assert_array_equal(copy, Inpaint()(masks_only, rngs))
    changed = batch.t1_mask != batch.t2_mask
    np.testing.assert_array_equal(copy[~changed], batch.t1_image[~changed])
    assert (copy[changed] != batch.t1_image[changed]).any()
    with_records = CopyPaste()(batch, rngs)
    assert (with_records != copy).any()  # records make copies, not just fills
