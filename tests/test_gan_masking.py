"""Which pre-event positions the Changen generator masks, on object and land-cover taxonomies.

The rule (``GeneratorConfig.masking``) must let I_t guide the output wherever the scene stays
the same, and must keep I_t out of the change field wherever it is masked.
"""

from __future__ import annotations

import dataclasses
import json
from importlib import resources
from pathlib import Path

import pytest
import torch
from torch import Tensor

from changen.errors import ConfigError
from changen.synthesis.classes import model_object_classes
from changen.synthesis.gan import PRESETS, ChangenGenerator, GanConfig, GeneratorConfig
from changen.synthesis.gan.transition import foreground_at
from changen.taxonomies import BINARY_BUILDING, LOVEDA, OPENEARTHMAP, object_classes

SIZE = 64


def binary_masks() -> tuple[Tensor, Tensor]:
    """Buildings (1) on background: one kept, one removed, one created."""
    t1 = torch.zeros(2, SIZE, SIZE, dtype=torch.long)
    t1[:, 8:24, 8:24] = 1
    t1[:, 40:56, 8:24] = 1
    t2 = t1.clone()
    t2[:, 40:56, 8:24] = 0
    t2[:, 40:56, 40:56] = 1
    return t1, t2


def land_cover_masks() -> tuple[Tensor, Tensor]:
    """Eight classes, 0 never used: stripes of land cover 1..6, a building (7), a reclass."""
    t1 = torch.arange(SIZE).div(11, rounding_mode="floor").add(1).clamp(max=6)
    t1 = t1[None, :, None].expand(2, SIZE, SIZE).clone()
    t1[:, 4:14, 44:60] = 7
    t2 = t1.clone()
    t2[:, 30:50, 10:40] = 3
    return t1, t2


CASES = {
    "binary": (2, (1,), binary_masks),
    "land_cover": (8, (7,), land_cover_masks),
}


def generator(num_classes: int, objects: tuple[int, ...], **changes: object) -> ChangenGenerator:
    config = dataclasses.replace(
        PRESETS["tiny"].generator, num_classes=num_classes, object_classes=objects, **changes
    )
    torch.manual_seed(0)
    return ChangenGenerator(config).eval()


def image(seed: int = 0) -> Tensor:
    return torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def run(gen: ChangenGenerator, t1_image: Tensor, t1: Tensor, t2: Tensor) -> Tensor:
    with torch.no_grad():
        return gen(t1_image, t1, t2, generator=torch.Generator().manual_seed(0))


def perturbed_where(where: Tensor, t1_image: Tensor) -> Tensor:
    """``t1_image`` with a large random change at the (B, 1, H, W) positions ``where``."""
    noise = torch.rand(t1_image.shape, generator=torch.Generator().manual_seed(9)) * 2 - 1
    return torch.where(where, noise, t1_image)


@pytest.mark.parametrize("case", sorted(CASES))
def test_masked_positions_are_objects_and_changed_pixels(case: str) -> None:
    n, objects, masks = CASES[case]
    t1, t2 = masks()
    masked = generator(n, objects).masked_positions(t1, t2)[:, 0]
    is_object = torch.isin(t1, torch.tensor(objects))
    assert torch.equal(masked, is_object | (t1 != t2))
    assert 0.05 < masked.float().mean() < 0.6
    only_objects = generator(n, objects, masking="objects").masked_positions(t1, t2)[:, 0]
    assert torch.equal(only_objects, is_object)
    assert not generator(n, objects, masking="none").masked_positions(t1, t2).any()


@pytest.mark.parametrize("case", sorted(CASES))
def test_pre_event_image_guides_unchanged_regions(case: str, one_thread: None) -> None:
    n, objects, masks = CASES[case]
    t1, t2 = masks()
    gen = generator(n, objects)
    kept = ~gen.masked_positions(t1, t2)
    clean = run(gen, image(), t1, t2)
    moved = run(gen, perturbed_where(kept, image()), t1, t2)
    delta = (moved - clean).abs().mean(1, keepdim=True)
    assert delta[kept].mean() > 1e-3


@pytest.mark.parametrize("mask_input", [True, False])
@pytest.mark.parametrize("case", sorted(CASES))
def test_masked_pre_event_content_does_not_reach_the_output(
    case: str, mask_input: bool, one_thread: None
) -> None:
    n, objects, masks = CASES[case]
    t1, t2 = masks()
    gen = generator(n, objects, mask_input=mask_input)
    masked = gen.masked_positions(t1, t2)
    clean = run(gen, image(), t1, t2)
    if mask_input:
        assert torch.equal(run(gen, perturbed_where(masked, image()), t1, t2), clean)
    perturb_masked_features(gen, masked)
    assert torch.equal(run(gen, image(), t1, t2), clean)


def test_without_masking_masked_content_reaches_the_changed_region(one_thread: None) -> None:
    t1, t2 = land_cover_masks()
    gen = generator(8, (7,), masking="none")
    changed = (t1 != t2).unsqueeze(1)
    clean = run(gen, image(), t1, t2)
    moved = run(gen, perturbed_where(changed, image()), t1, t2)
    assert (moved - clean).abs().mean(1, keepdim=True)[changed].mean() > 1e-3


def test_old_rule_on_land_cover_ignored_the_pre_event_image(one_thread: None) -> None:
    """The defect the rule fixes: every class but 0 masked, class 0 absent, I_t unused."""
    t1, t2 = land_cover_masks()
    tiny = {**PRESETS["tiny"].generator.to_dict(), "num_classes": 8}
    old = GeneratorConfig.from_dict({**tiny, "masking": True, "foreground_classes": None})
    assert (old.masking, old.object_classes) == ("objects", tuple(range(1, 8)))
    torch.manual_seed(0)
    gen = ChangenGenerator(old).eval()
    assert torch.equal(run(gen, image(0), t1, t2), run(gen, image(1), t1, t2))


def perturb_masked_features(gen: ChangenGenerator, masked: Tensor) -> None:
    """Add large noise to every encoder feature at the (pooled) masked positions."""

    def hook(_module: object, _inputs: object, features: list[Tensor]) -> list[Tensor]:
        out = []
        for f in features:
            cell = foreground_at(masked, f.shape[-2:])
            noise = 50 * torch.randn(f.shape, generator=torch.Generator().manual_seed(1))
            out.append(torch.where(cell, f + noise, f))
        return out

    assert gen.encoder is not None
    gen.encoder.register_forward_hook(hook)


def test_legacy_configs_load_with_the_rule_they_were_trained_with() -> None:
    base = {"num_classes": 4}
    on = GeneratorConfig.from_dict({**base, "masking": True, "foreground_classes": None})
    assert (on.masking, on.object_classes, on.mask_input) == ("objects", (1, 2, 3), False)
    listed = GeneratorConfig.from_dict({**base, "masking": True, "foreground_classes": [3]})
    assert listed.object_classes == (3,)
    off = GeneratorConfig.from_dict({**base, "masking": False, "destyling": False})
    assert (off.masking, off.object_classes) == ("none", ())
    new = GeneratorConfig(num_classes=4, object_classes=(3,))
    assert GeneratorConfig.from_dict(new.to_dict()) == new
    assert new.to_dict()["masking"] == "objects+changed"


def test_rule_validation() -> None:
    with pytest.raises(ConfigError, match="masking"):
        GeneratorConfig(masking="everything")
    with pytest.raises(ConfigError, match="masking"):
        GeneratorConfig(masking=True)  # type: ignore[arg-type]  # a bool is the old format
    with pytest.raises(ConfigError, match="object_classes"):
        GeneratorConfig(num_classes=2, object_classes=(2,))


def test_shipped_demo_masks_buildings_and_changed_pixels() -> None:
    folder = Path(str(resources.files("changen"))) / "assets" / "demo_gan"
    generator = GanConfig.from_dict(json.loads((folder / "config.json").read_text())["gan"])
    g = generator.generator
    assert (g.masking, g.object_classes, g.mask_input) == ("objects+changed", (8,), True)


def test_taxonomies_name_their_object_classes() -> None:
    assert object_classes(BINARY_BUILDING) == (1,)
    assert object_classes(OPENEARTHMAP) == (8,)
    assert model_object_classes(OPENEARTHMAP) == (8,)
    assert model_object_classes(LOVEDA) == (1,)  # building 2 -> model id 1 (background 1 -> 0)
    custom = dataclasses.replace(OPENEARTHMAP, name="my_land_cover")
    assert object_classes(custom) == (8,)
