"""Training augmentations: image and label maps stay aligned, draws are seeded, errors are clear."""

from __future__ import annotations

import numpy as np
import pytest

from changen.data.augment import (
    AugmentConfig,
    AugmentPlan,
    apply_plan,
    center_plan,
    draw_plan,
)
from changen.errors import ConfigError, DataError

PALETTE = np.array(
    [[0, 0, 0], [250, 10, 10], [10, 250, 10], [10, 10, 250], [250, 250, 10]], np.uint8
)


def blocky_mask(rng: np.random.Generator, h: int, w: int, cell: int = 8) -> np.ndarray:
    """Class ids 0..4 constant over cell × cell blocks (so edges are sparse)."""
    blocks = rng.integers(0, len(PALETTE), (h // cell + 1, w // cell + 1)).astype(np.uint8)
    return np.kron(blocks, np.ones((cell, cell), np.uint8))[:h, :w]


def dihedral(a: np.ndarray) -> list[np.ndarray]:
    """The 8 images of ``a`` under flips, 90° rotations and transposes."""
    out = []
    for k in range(4):
        r = np.rot90(a, k)
        out += [r, r[:, ::-1]]
    return out


def interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3×3 neighbourhood holds a single class (not on a label edge)."""
    h, w = mask.shape
    pad = np.pad(mask, 1, mode="edge")
    same = np.ones((h, w), bool)
    for dy in range(3):
        for dx in range(3):
            same &= pad[dy : dy + h, dx : dx + w] == mask
    return same


@pytest.mark.parametrize("seed", range(6))
def test_image_mask_and_instances_stay_aligned(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = blocky_mask(rng, 90, 120)
    image = PALETTE[mask]
    instances = (np.arange(mask.size).reshape(mask.shape) // 8 % 7).astype(np.int32) * 10 + mask
    config = AugmentConfig(size=64, scale=(0.6, 1.4))
    plan = draw_plan(mask.shape, config, rng)
    aug_image = apply_plan(image, plan, "image")
    aug_mask = apply_plan(mask, plan, "labels")
    aug_inst = apply_plan(instances, plan, "labels")
    assert aug_image.shape == (64, 64, 3) and aug_mask.shape == (64, 64)
    assert aug_image.dtype == np.uint8 and aug_inst.dtype == np.int32
    # labels are taken, never blended: no new ids, and instance ↔ class stays consistent
    assert set(np.unique(aug_mask)) <= set(np.unique(mask))
    assert np.array_equal(aug_inst % 10, aug_mask)
    # away from label edges the mask-coloured image still has its mask's colour
    inner = interior(aug_mask)
    assert inner.mean() > 0.5
    diff = np.abs(aug_image.astype(int) - PALETTE[aug_mask].astype(int)).max(axis=2)
    assert (diff[inner] <= 2).mean() > 0.99


@pytest.mark.parametrize("seed", range(6))
def test_labels_take_the_pixel_the_image_samples(seed: int) -> None:
    """On coordinate ramps (image = 2·x, 2·y; labels = x, y) the label of every output pixel is
    the source pixel nearest to the point the image interpolates at: half a pixel at most."""
    h, w = 100, 120
    ys, xs = np.mgrid[0:h, 0:w].astype(np.uint8)
    image = np.stack([2 * xs, 2 * ys, np.zeros_like(xs)], axis=2)
    rng = np.random.default_rng(seed)
    plan = draw_plan((h, w), AugmentConfig(size=64, scale=(0.55, 1.8)), rng)
    aug = apply_plan(image, plan, "image").astype(float) / 2
    for band, labels in ((0, xs), (1, ys)):
        err = apply_plan(labels, plan, "labels") - aug[..., band]
        assert np.abs(err).max() <= 0.75, (plan, np.abs(err).max())


def test_without_scaling_the_crop_is_an_exact_dihedral_image() -> None:
    rng = np.random.default_rng(1)
    mask = blocky_mask(rng, 32, 32, cell=4)
    image = PALETTE[mask]
    config = AugmentConfig(size=32, scale=(1.0, 1.0))
    seen = set()
    for _ in range(64):
        plan = draw_plan(mask.shape, config, rng)
        aug_mask = apply_plan(mask, plan, "labels")
        assert np.array_equal(apply_plan(image, plan, "image"), PALETTE[aug_mask])
        matches = [k for k, t in enumerate(dihedral(mask)) if np.array_equal(t, aug_mask)]
        assert matches
        seen.add(matches[0])
    assert seen == set(range(8))  # flips, rotations and transposes are all drawn


def test_switches_turn_transforms_off() -> None:
    rng = np.random.default_rng(2)
    config = AugmentConfig(size=32, scale=(1.0, 1.0), flip=False, rotate=False, transpose=False)
    mask = blocky_mask(rng, 32, 32, cell=4)
    for _ in range(10):
        assert np.array_equal(apply_plan(mask, draw_plan(mask.shape, config, rng), "labels"), mask)


def test_draws_are_seeded() -> None:
    config = AugmentConfig(size=48)
    shape = (100, 80)
    a = [draw_plan(shape, config, np.random.default_rng(5)) for _ in range(2)]
    assert a[0] == a[1]
    others = {draw_plan(shape, config, np.random.default_rng(s)) for s in range(10)}
    assert len(others) > 5


def test_scale_jitter_changes_the_window_and_stays_inside() -> None:
    rng = np.random.default_rng(3)
    config = AugmentConfig(size=64, scale=(0.5, 2.0))
    sides = []
    for _ in range(200):
        plan = draw_plan((100, 70), config, rng)
        assert plan.y0 >= 0 and plan.x0 >= 0
        assert plan.y0 + plan.side <= 100 and plan.x0 + plan.side <= 70
        sides.append(plan.side)
    assert min(sides) == 32  # scale 2: a 32 px window enlarged to 64
    assert max(sides) == 70  # scales below 64/70 are raised so the window fits


def test_centre_plan_is_plain_crop() -> None:
    mask = np.arange(40 * 50).reshape(40, 50)
    plan = center_plan(mask.shape, 32)
    assert plan == AugmentPlan(4, 9, 32, 32)
    assert np.array_equal(apply_plan(mask, plan, "labels"), mask[4:36, 9:41])


def test_image_smaller_than_crop_is_an_error() -> None:
    with pytest.raises(DataError, match=r"smaller than the 64×64 training crop.*--size"):
        draw_plan((48, 100), AugmentConfig(size=64), np.random.default_rng(0), "a.png")
    with pytest.raises(DataError, match=r"a\.png"):
        center_plan((48, 100), 64, "a.png")


@pytest.mark.parametrize("scale", [(0.0, 1.0), (1.5, 1.0)])
def test_bad_scale_range(scale: tuple[float, float]) -> None:
    with pytest.raises(ConfigError, match="scale jitter"):
        AugmentConfig(scale=scale)
