"""The masked transition layer ``M_i`` of Changen (Eq. 4 of the paper).

Reading of the paper used here. At decoder scale i the layer receives

- ``f_t,i``: the pre-event image encoder's feature at that scale, and
- ``f_t+1,i``: the *decoder's own* post-event feature at that scale, i.e. the input of residual
  block ``G_i`` before the change field is added (Eq. 5:
  ``f_t+1,i+1 = G_i(f_t+1,i + Δf_i, S_t+1, z)``),

and returns the change field ``Δf_i`` in three steps, in the paper's order:

1. Masking: ``where(masked, f_t+1,i, f_t,i)`` - at masked positions the pre-event feature is
   replaced by the post-event one, so nothing of what was there can leak into the change field
   (the "feature leakage" the paper fights). The paper masks the pre-event foreground
   (buildings); which positions are masked is the generator's rule
   (``GeneratorConfig.masking``), this layer only receives them.
2. De-styling: 1×1 conv, instance norm, LeakyReLU on the masked map, weakening the style of the
   pre-event background that remains in it.
3. Spatially-adaptive normalisation conditioned on the one-hot ``S_t+1``.

Instance norm is written out (``instance_norm``) because torch's refuses the 1×1 maps a
32-pixel input gives at ``h/32``. Because masking happens before any
spatial statistic, the change field does not depend on ``f_t,i`` at masked positions at
all; with masking off (the paper's last ablation) it does. The masked positions are reduced to
each scale by max pooling: a cell holding any masked pixel is masked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from changen.synthesis.gan.layers import LEAK, SpatiallyAdaptiveNorm


def instance_norm(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-sample, per-channel normalisation over space; a 1×1 map normalises to zeros.
    Computed in fp32 under autocast, so bf16 results do not depend on the batch."""
    y = x.float()
    var, mean = torch.var_mean(y, dim=(-2, -1), keepdim=True, correction=0)
    return ((y - mean) * torch.rsqrt(var + eps)).to(x.dtype)


class Destyle(nn.Module):
    """1×1 conv + instance norm + LeakyReLU (the paper's De-styling)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(instance_norm(self.conv(x)), LEAK)


def foreground_at(foreground: Tensor, size: tuple[int, int]) -> Tensor:
    """Reduce a (B, 1, H, W) bool mask to ``size``: true where any pixel of a cell is."""
    if tuple(foreground.shape[-2:]) == tuple(size):
        return foreground
    return F.adaptive_max_pool2d(foreground.float(), size) > 0


class MaskedTransition(nn.Module):
    """``Δf = SAN(Destyle(where(masked, f_t+1, f_t)), S_t+1)`` with optional ablations."""

    def __init__(
        self,
        channels: int,
        num_classes: int,
        hidden: int,
        norm: str,
        max_groups: int,
        *,
        masking: bool = True,
        destyling: bool = True,
    ) -> None:
        super().__init__()
        self.masking = masking
        self.destyle = Destyle(channels) if destyling else None
        self.norm = SpatiallyAdaptiveNorm(channels, num_classes, hidden, norm, max_groups)

    def forward(
        self, pre: Tensor, post: Tensor, pre_foreground: Tensor, post_onehot: Tensor
    ) -> Tensor:
        """Change field from ``f_t,i`` (``pre``), ``f_t+1,i`` (``post``), the masked positions
        (B, 1, H, W) bool at any resolution, and the one-hot ``S_t+1``."""
        x = pre
        if self.masking:
            x = torch.where(
                foreground_at(pre_foreground, (pre.shape[-2], pre.shape[-1])), post, pre
            )
        if self.destyle is not None:
            x = self.destyle(x)
        return self.norm(x, post_onehot)
