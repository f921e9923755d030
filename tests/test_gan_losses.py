"""OASIS N+1 losses with class balancing, as used in bitemporal adversarial learning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from changen.errors import DataError
from changen.synthesis.gan import (
    FAKE,
    PRESETS,
    ChangenGenerator,
    SegDiscriminator,
    class_balance_weights,
    d_loss,
    g_loss,
)
from changen.synthesis.gan.losses import class_loss, fake_loss

N = 3


def masks(seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    real = torch.randint(0, N, (2, 16, 16), generator=g)
    fake = torch.randint(0, N, (2, 16, 16), generator=g)
    return real, fake


def confident(mask: Tensor, fake: bool) -> Tensor:
    """Logits that put (almost) all mass on the class (channel 1 + id) or on "fake"."""
    target = torch.full_like(mask, FAKE) if fake else mask + 1
    return 12 * F.one_hot(target, N + 1).permute(0, 3, 1, 2).float()


class Lookup:
    """A stand-in discriminator returning fixed logits per input tensor."""

    def __init__(self, table: dict[int, Tensor]) -> None:
        self.table = table

    def __call__(self, image: Tensor) -> Tensor:
        return self.table[image.data_ptr()]


def test_class_balance_weights_match_the_formula() -> None:
    mask = torch.tensor([[[0, 0, 0, 0], [0, 0, 1, 1], [255, 255, 255, 255]]])
    weights = class_balance_weights(mask, num_classes=3)
    # n = 8 valid pixels, K = 2 present classes: w_c = n / (K n_c)
    assert torch.allclose(weights, torch.tensor([8 / (2 * 6), 8 / (2 * 2), 0.0]))
    valid = mask[mask != 255]
    assert torch.isclose(weights[valid].mean(), torch.tensor(1.0))


def test_class_loss_is_the_balanced_mean_over_valid_pixels() -> None:
    real, _ = masks()
    real[0, :4] = 255
    logits = torch.randn(2, N + 1, 16, 16, generator=torch.Generator().manual_seed(1))
    valid = real != 255
    target = torch.where(valid, real, 0)
    ce = F.cross_entropy(logits, target + 1, reduction="none")
    w = class_balance_weights(real, N)[target]
    expected = (ce * w)[valid].sum() / valid.sum()
    assert torch.isclose(class_loss(logits, real), expected)
    # ignore pixels do not count, whatever the logits say there
    changed = logits.clone()
    changed[0, :, :4] = 50 * torch.randn(N + 1, 4, 16)
    assert torch.isclose(class_loss(changed, real), expected)
    assert torch.isclose(fake_loss(changed, real), fake_loss(logits, real))


def test_rare_class_errors_cost_more_than_frequent_ones() -> None:
    mask = torch.zeros(1, 10, 10, dtype=torch.long)
    mask[0, 0, :2] = 1  # 2 pixels of class 1, 98 of class 0
    good = confident(mask, fake=False)
    wrong_rare, wrong_frequent = good.clone(), good.clone()
    wrong_rare[0, :, 0, 0] = confident(torch.tensor([[[0]]]), fake=False)[0, :, 0, 0]
    wrong_frequent[0, :, 5, 5] = confident(torch.tensor([[[1]]]), fake=False)[0, :, 0, 0]
    assert class_loss(wrong_rare, mask) > 10 * class_loss(wrong_frequent, mask)


def test_d_loss_lower_for_a_right_discriminator_than_random_logits() -> None:
    real_mask, fake_mask = masks()
    real_image, fake_image = torch.zeros(2, 3, 16, 16), torch.ones(2, 3, 16, 16)
    right = Lookup(
        {
            real_image.data_ptr(): confident(real_mask, fake=False),
            fake_image.data_ptr(): confident(fake_mask, fake=True),
        }
    )
    g = torch.Generator().manual_seed(2)
    noise = Lookup(
        {
            real_image.data_ptr(): torch.randn(2, N + 1, 16, 16, generator=g),
            fake_image.data_ptr(): torch.randn(2, N + 1, 16, 16, generator=g),
        }
    )
    swapped = Lookup(
        {
            real_image.data_ptr(): confident(real_mask, fake=True),
            fake_image.data_ptr(): confident(fake_mask, fake=False),
        }
    )
    good = d_loss(right, real_image, real_mask, fake_image, fake_mask)
    assert good < 1e-3
    assert d_loss(noise, real_image, real_mask, fake_image, fake_mask) > 1 > 1000 * good
    assert d_loss(swapped, real_image, real_mask, fake_image, fake_mask) > 10
    # the generator wants the opposite on its fakes: its class of S_t+1, not "fake"
    assert g_loss(swapped, fake_image, fake_mask) < 1e-3
    assert g_loss(right, fake_image, fake_mask) > 10


def test_real_pair_is_pre_event_and_fake_pair_post_event() -> None:
    """d_loss scores real pixels against the real (S_t) mask, g_loss against S_t+1."""
    real_mask, fake_mask = masks()
    real_image, fake_image = torch.zeros(2, 3, 16, 16), torch.ones(2, 3, 16, 16)
    d = Lookup(
        {
            real_image.data_ptr(): confident(real_mask, fake=False),
            fake_image.data_ptr(): confident(fake_mask, fake=False),
        }
    )
    assert class_loss(confident(real_mask, False), real_mask) < 1e-3
    assert d_loss(d, real_image, fake_mask, fake_image, fake_mask) > 1
    assert g_loss(d, fake_image, fake_mask) < 1e-3
    assert g_loss(d, fake_image, real_mask) > 1


def test_d_loss_does_not_reach_the_generator_and_g_loss_does() -> None:
    config = PRESETS["tiny"]
    torch.manual_seed(0)
    gen, disc = ChangenGenerator(config.generator), SegDiscriminator(config.discriminator)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    t1 = torch.randint(0, 2, (2, 64, 64), generator=g)
    t2 = torch.randint(0, 2, (2, 64, 64), generator=g)
    fake = gen(image, t1, t2, generator=g)
    loss = d_loss(disc, image, t1, fake, t2)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is None for p in gen.parameters())
    assert all(p.grad is not None for p in disc.parameters())
    disc.zero_grad(set_to_none=True)
    g_loss(disc, fake, t2).backward()
    assert all(p.grad is not None for p in gen.parameters())


def test_bad_masks_raise() -> None:
    logits = torch.zeros(1, N + 1, 8, 8)
    with pytest.raises(DataError, match="does not match"):
        class_loss(logits, torch.zeros(1, 4, 8, dtype=torch.long))
    with pytest.raises(DataError, match="outside"):
        class_loss(logits, torch.full((1, 8, 8), N, dtype=torch.long))
