"""Adversarial losses of bitemporal adversarial learning (Changen Algorithm 1, OASIS N+1 loss).

The discriminator labels each pixel with N + 1 classes (channel 0 = fake, ``1 + c`` = class c).

- ``d_loss``: the *real* pair is the pre-event ``(I_t, S_t)`` - every real pixel should be its
  class of ``S_t``, class-balanced - and the *fake* pair is ``(G(I_t, S_t, S_t+1, z), S_t+1)``
  - every fake pixel should be "fake". The fake image is detached, so D's loss never reaches G.
- ``g_loss``: every fake pixel should be its class of ``S_t+1``, class-balanced.

Class balancing (OASIS): with ``n_c`` the number of valid pixels of class c in the batch,
``n = sum_c n_c`` and ``K`` the number of classes present, class c weighs ``n / (K * n_c)``,
so each present class contributes equally and the weights average to 1 over valid pixels.
Pixels equal to ``ignore_index`` weigh nothing in any term, and every term is a mean over the
valid pixels. LabelMix (OASIS's regulariser) is not provided: it mixes a real and a fake image
that share one label map, which bitemporal pairs (S_t vs S_t+1) do not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from changen.errors import DataError
from changen.synthesis.gan.discriminator import FAKE

Discriminator = Callable[[Tensor], Tensor]


def _check(logits: Tensor, mask: Tensor, ignore_index: int) -> tuple[Tensor, Tensor]:
    """Valid-pixel map and targets with ignore pixels set to 0; shapes and ids checked."""
    b, k, h, w = logits.shape
    if mask.shape != (b, h, w):
        raise DataError(
            f"mask shape {tuple(mask.shape)} does not match logits {tuple(logits.shape)}"
        )
    valid = mask != ignore_index
    target = torch.where(valid, mask, torch.zeros_like(mask)).long()
    if bool(((target < 0) | (target >= k - 1)).any()):
        raise DataError(
            f"mask holds class ids outside 0..{k - 2} (ignore id {ignore_index}); "
            "remap it or give the networks the right num_classes"
        )
    return valid, target


def class_balance_weights(mask: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """Per-class weights ``n / (K * n_c)`` over the batch (0 for absent classes)."""
    valid = mask != ignore_index
    counts = torch.bincount(mask[valid].long(), minlength=num_classes)[:num_classes].float()
    present = counts > 0
    weights = torch.zeros(num_classes, device=mask.device)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def class_loss(logits: Tensor, mask: Tensor, ignore_index: int = 255) -> Tensor:
    """Class-balanced cross-entropy pushing each valid pixel to its class (channel 1 + id)."""
    valid, target = _check(logits, mask, ignore_index)
    weights = class_balance_weights(mask, logits.shape[1] - 1, ignore_index)
    ce = F.cross_entropy(logits.float(), target + 1, reduction="none")
    return (ce * weights[target] * valid).sum() / valid.sum().clamp(min=1)


def fake_loss(logits: Tensor, mask: Tensor, ignore_index: int = 255) -> Tensor:
    """Cross-entropy pushing each valid pixel to the "fake" channel."""
    valid, _ = _check(logits, mask, ignore_index)
    target = torch.full_like(mask, FAKE, dtype=torch.long)
    ce = F.cross_entropy(logits.float(), target, reduction="none")
    return (ce * valid).sum() / valid.sum().clamp(min=1)


def d_loss(
    d: Discriminator,
    real_image: Tensor,
    real_mask: Tensor,
    fake_image: Tensor,
    fake_mask: Tensor,
    ignore_index: int = 255,
) -> Tensor:
    """Discriminator loss: real ``(I_t, S_t)`` -> classes, fake ``(G(.), S_t+1)`` -> fake."""
    real = class_loss(d(real_image), real_mask, ignore_index)
    return real + fake_loss(d(fake_image.detach()), fake_mask, ignore_index)


def g_loss(
    d: Discriminator, fake_image: Tensor, fake_mask: Tensor, ignore_index: int = 255
) -> Tensor:
    """Generator loss: each fake pixel should be classified as its ``S_t+1`` class."""
    return class_loss(d(fake_image), fake_mask, ignore_index)
