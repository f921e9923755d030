"""The nuisance model: identity when off, seeded, components independent, each doing what its
module says, labels never touched (the pipeline test checks the written labels)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from changen.errors import ConfigError
from changen.synthesis.nuisance import (
    COMPONENTS,
    PRESETS,
    DonorBank,
    Nuisance,
    NuisanceConfig,
    nuisance_config,
)
from changen.synthesis.nuisance.style import lab_stats
from changen.taxonomies import get_taxonomy


def scene(seed: int = 0, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A textured RGB image and a mask with two classes in halves (left 1, right 2)."""
    rng = np.random.default_rng(seed)
    image = (rng.random((size, size, 3)) * 120 + 60).astype(np.uint8)
    mask = np.ones((size, size), np.uint8)
    mask[:, size // 2 :] = 2
    return image, mask


def only(component: str, strength: float = 1.0) -> NuisanceConfig:
    return NuisanceConfig(**{c: (strength if c == component else 0.0) for c in COMPONENTS})


def test_off_is_identity_and_inputs_are_not_modified() -> None:
    image, mask = scene()
    before = image.copy()
    out, params = Nuisance(PRESETS["off"]).apply(image, mask, np.random.default_rng(0))
    assert out is image and params == {}
    out, _ = Nuisance(PRESETS["strong"]).apply(image, mask, np.random.default_rng(0))
    assert np.array_equal(image, before) and not np.array_equal(out, image)


@pytest.mark.parametrize("component", ["photometric", "local", "misregistration", "sensor"])
def test_each_component_changes_the_image_and_records_its_draw(component: str) -> None:
    image, mask = scene()
    out, params = Nuisance(only(component)).apply(image, mask, np.random.default_rng(1))
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert list(params) == [component]
    assert np.abs(out.astype(int) - image).mean() > 0.5


def test_seeded_determinism_and_component_independence() -> None:
    image, mask = scene()
    model = Nuisance(PRESETS["default"])
    a, pa = model.apply(image, mask, np.random.default_rng(7))
    b, pb = model.apply(image, mask, np.random.default_rng(7))
    c, _ = model.apply(image, mask, np.random.default_rng(8))
    assert np.array_equal(a, b) and pa == pb and not np.array_equal(a, c)
    without_sensor = Nuisance(NuisanceConfig(sensor=0.0))
    _, pw = without_sensor.apply(image, mask, np.random.default_rng(7))
    assert pw["photometric"] == pa["photometric"] and "sensor" not in pw


def test_misregistration_keeps_t1_geometry_and_records_the_inverse() -> None:
    import cv2

    image, mask = scene(size=96)
    image = cv2.GaussianBlur(image, (0, 0), 2.0)
    out, params = Nuisance(only("misregistration", 2.0)).apply(
        image, mask, np.random.default_rng(3)
    )
    matrix = np.asarray(params["misregistration"]["affine"]).reshape(2, 3)
    assert np.hypot(*matrix[:, 2] - cv2.getRotationMatrix2D((47.5, 47.5), 0, 1)[:, 2]) < 4.0
    back = cv2.warpAffine(out, cv2.invertAffineTransform(matrix), (96, 96))
    inner = (slice(8, -8), slice(8, -8))
    error_before = np.abs(out[inner].astype(int) - image[inner]).mean()
    error_after = np.abs(back[inner].astype(int) - image[inner]).mean()
    assert error_after < 0.5 * error_before


def test_seasonal_changes_only_its_groups() -> None:
    image, _ = scene(size=64)
    loveda = get_taxonomy("loveda")
    mask = np.full((64, 64), loveda.id_of("building"), np.uint8)
    mask[:, 32:] = loveda.id_of("forest")
    model = Nuisance.for_taxonomy(only("seasonal", 2.0), loveda)
    out, params = model.apply(image, mask, np.random.default_rng(0))
    assert "vegetation" in params["seasonal"]
    diff = np.abs(out.astype(int) - image).sum(-1)
    assert diff[:, :24].max() == 0 and diff[:, 40:].mean() > 2
    buildings = Nuisance.for_taxonomy(only("seasonal"), get_taxonomy("binary_building"))
    assert buildings.groups == {}
    assert buildings.apply(image, mask, np.random.default_rng(0))[1] == {}


def test_shadows_fall_next_to_created_objects_only() -> None:
    image = np.full((64, 64, 3), 180, np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    created = np.zeros((64, 64), bool)
    created[24:40, 24:40] = True
    out, params = Nuisance(only("shadows")).apply(image, mask, np.random.default_rng(2), created)
    darker = out.astype(int).sum(-1) < image.astype(int).sum(-1) - 30
    assert darker.any() and not (darker & created).any()
    ys, xs = np.nonzero(darker)
    assert ys.min() >= 24 - 10 and ys.max() < 40 + 10 and xs.min() >= 24 - 10 and xs.max() < 50
    assert params["shadows"]["objects"] == 1
    _, none = Nuisance(only("shadows")).apply(image, mask, np.random.default_rng(2), None)
    assert none == {}


def test_style_moves_colour_statistics_towards_a_donor() -> None:
    image, mask = scene()
    donor = np.zeros_like(image)
    donor[..., 2] = 200
    bank = DonorBank.from_images([donor])
    out, params = Nuisance(only("style"), donors=bank).apply(image, mask, np.random.default_rng(0))
    target = bank.stats[0, 0]
    assert np.linalg.norm(lab_stats(out)[0] - target) < np.linalg.norm(lab_stats(image)[0] - target)
    assert params["style"]["donor"] == 0
    assert Nuisance(only("style")).apply(image, mask, np.random.default_rng(0))[1] == {}


def test_configs_presets_files_and_errors(tmp_path) -> None:
    assert nuisance_config("mild") == PRESETS["mild"]
    path = tmp_path / "n.json"
    path.write_text(json.dumps({"preset": "off", "sensor": 0.5}))
    assert nuisance_config(path) == NuisanceConfig(**{**PRESETS["off"].to_dict(), "sensor": 0.5})
    path.write_text(json.dumps({"blurr": 1}))
    with pytest.raises(ConfigError, match="unknown nuisance keys blurr"):
        nuisance_config(path)
    with pytest.raises(ConfigError, match="not a preset"):
        nuisance_config(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="between 0"):
        NuisanceConfig(sensor=-1)
    assert not PRESETS["off"].active and PRESETS["default"].active
