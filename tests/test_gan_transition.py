"""The masked transition layer ignores pre-event foreground features; the ablation does not."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor

from changen.synthesis.gan import PRESETS, ChangenGenerator, MaskedTransition
from changen.synthesis.gan.layers import one_hot
from changen.synthesis.gan.transition import foreground_at

C, N, H, W = 6, 3, 8, 8


def inputs(seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    pre = torch.randn(2, C, H, W, generator=g)
    post = torch.randn(2, C, H, W, generator=g)
    fg = torch.zeros(2, 1, H, W, dtype=torch.bool)
    fg[0, :, 1:4, 2:6] = True
    fg[1, :, 5:, :3] = True
    post_onehot = one_hot(torch.randint(0, N, (2, 4 * H, 4 * W), generator=g), N)
    return pre, post, fg, post_onehot


def layer(masking: bool, destyling: bool, norm: str = "group") -> MaskedTransition:
    torch.manual_seed(0)
    return MaskedTransition(C, N, 8, norm, 2, masking=masking, destyling=destyling)


@pytest.mark.parametrize("norm", ["group", "batch"])
@pytest.mark.parametrize("destyling", [True, False])
def test_change_field_ignores_pre_event_foreground(destyling: bool, norm: str) -> None:
    m = layer(masking=True, destyling=destyling, norm=norm)
    pre, post, fg, cond = inputs()
    field = m(pre, post, fg, cond)
    noisy = torch.where(fg, pre + 100 * torch.randn_like(pre), pre)
    assert torch.equal(m(noisy, post, fg, cond), field)
    # the background does reach it
    bg_noisy = torch.where(fg, pre, pre + torch.randn_like(pre))
    assert not torch.allclose(m(bg_noisy, post, fg, cond), field)


def test_gradient_wrt_pre_event_foreground_is_zero() -> None:
    m = layer(masking=True, destyling=True)
    pre, post, fg, cond = inputs()
    pre.requires_grad_(True)
    m(pre, post, fg, cond).square().sum().backward()
    grad = pre.grad.abs().sum(1, keepdim=True)
    assert torch.all(grad[fg] == 0)
    assert torch.all(grad[~fg] > 0)


def test_without_masking_the_foreground_leaks() -> None:
    m = layer(masking=False, destyling=False)
    pre, post, fg, cond = inputs()
    pre.requires_grad_(True)
    field = m(pre, post, fg, cond)
    field.square().sum().backward()
    assert torch.all(pre.grad.abs().sum(1, keepdim=True)[fg] > 0)
    noisy = torch.where(fg, pre + 1, pre).detach()
    changed = (m(noisy, post, fg, cond) - field).abs().sum(1, keepdim=True)
    assert torch.all(changed[fg] > 0)


def test_foreground_is_max_pooled_so_small_objects_still_mask() -> None:
    fg = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    fg[0, 0, 37, 5] = True
    small = foreground_at(fg, (2, 2))
    assert small.tolist() == [[[[False, False], [True, False]]]]
    assert foreground_at(fg, (64, 64)) is fg


def perturb_encoder(gen: ChangenGenerator, fg: Tensor) -> None:
    """Add large noise to every encoder feature at the (pooled) pre-event foreground."""

    def hook(_module, _inputs, features: list[Tensor]) -> list[Tensor]:
        out = []
        for f in features:
            cell = foreground_at(fg, f.shape[-2:])
            noise = 50 * torch.randn(f.shape, generator=torch.Generator().manual_seed(1))
            out.append(torch.where(cell, f + noise, f))
        return out

    gen.encoder.register_forward_hook(hook)


@pytest.mark.parametrize(
    ("masking", "destyling"), [("objects", True), ("objects", False), ("none", False)]
)
def test_generator_output_ignores_pre_event_foreground_features(
    masking: str, destyling: bool
) -> None:
    config = dataclasses.replace(
        PRESETS["tiny"].generator,
        num_classes=3,
        masking=masking,
        object_classes=(1, 2),
        destyling=destyling,
    )
    torch.manual_seed(0)
    gen = ChangenGenerator(config).eval()
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    t1 = torch.zeros(2, 64, 64, dtype=torch.long)
    t1[:, 10:30, 8:40] = 1
    t1[1, 40:60, 40:60] = 2
    t2 = torch.randint(0, 3, (2, 64, 64), generator=g)
    clean = gen(image, t1, t2, generator=torch.Generator().manual_seed(0))
    perturb_encoder(gen, (t1 > 0).unsqueeze(1))
    perturbed = gen(image, t1, t2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(clean, perturbed) == (masking != "none")


def test_object_classes_choose_what_is_masked() -> None:
    config = dataclasses.replace(PRESETS["tiny"].generator, num_classes=3, object_classes=(2,))
    gen = ChangenGenerator(config)
    assert gen.object_table.tolist() == [False, False, True]
