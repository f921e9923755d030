"""ChangeMixin (Zheng et al., ICCV 2021): a change head on two dates' dense features.

``num_layers`` × (3×3 conv without bias, BN, ReLU) of ``channels`` on cat(f_t1, f_t2), then a
1×1 conv to one change logit and bilinear ×4 upsampling (``align_corners=True``, as the
official ``ConvUpsampling``). "1×96" is ``num_layers=1, channels=96`` (Changen's detector);
the original ChangeStar used ``num_layers=4, channels=16``.

Temporal symmetry (optional) also scores cat(f_t2, f_t1) with the same weights: in training
both logits are returned (the loss supervises each ordering), in evaluation they are averaged.
(torchange's later ``ChangeMixinBiSupN1`` instead sums the two orderings' hidden features
before the classifier; Changen's released 1×96 models do not use symmetry at all.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from changen.detectors.farseg import conv_bn_relu
from changen.errors import DataError


@dataclass
class ChangeOutput:
    """Logits of a change detector, all at input resolution.

    ``change``: (B, 1, H, W) change logits, t1→t2 ordering (averaged over both orderings in
    evaluation when the model is temporally symmetric). ``change_t2t1``: the t2→t1 ordering,
    only in training mode of a symmetric model. ``t1_semantic`` / ``t2_semantic``:
    (B, num_classes, H, W) segmentation logits when the model has a semantic head.
    ``aux``: (B, 1, H, W) auxiliary change logits of a deeply supervised model (LightCDNet),
    only in training mode.
    """

    change: torch.Tensor
    t1_semantic: torch.Tensor | None = None
    t2_semantic: torch.Tensor | None = None
    change_t2t1: torch.Tensor | None = None
    aux: torch.Tensor | None = None


def check_pair(t1: torch.Tensor, t2: torch.Tensor, multiple: int = 32) -> None:
    """Raise ``DataError`` unless t1 and t2 are one (B, 3, H, W) shape.

    H and W must be multiples of ``multiple``.
    """
    if t1.shape != t2.shape or t1.ndim != 4 or t1.shape[1] != 3:
        raise DataError(
            f"detector inputs must be two (B, 3, H, W) tensors of one shape, got "
            f"{tuple(t1.shape)} and {tuple(t2.shape)}; stack RGB images as float tensors"
        )
    h, w = t1.shape[-2:]
    if h % multiple or w % multiple:
        raise DataError(
            f"detector input size {h}x{w} is not divisible by {multiple}; crop or pad the images"
        )


class ChangeMixin(nn.Module):
    """Change logits from a pair of (B, C, h, w) features: returns (change, change_t2t1 | None)."""

    def __init__(
        self,
        in_channels: int = 96,
        channels: int = 96,
        num_layers: int = 1,
        symmetric: bool = False,
        scale_factor: float = 4.0,
    ) -> None:
        super().__init__()
        self.symmetric = symmetric
        self.scale_factor = scale_factor
        self.layers = nn.Sequential(
            *(
                nn.Sequential(
                    *conv_bn_relu(2 * in_channels if i == 0 else channels, channels, 3, bias=False)
                )
                for i in range(num_layers)
            )
        )
        self.classifier = nn.Conv2d(channels, 1, 1)

    def score(self, pair: torch.Tensor) -> torch.Tensor:
        """Change logits at input resolution for channel-concatenated features."""
        logit = self.classifier(self.layers(pair))
        return F.interpolate(
            logit, scale_factor=self.scale_factor, mode="bilinear", align_corners=True
        )

    def forward(
        self, f1: torch.Tensor, f2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.symmetric:
            return self.score(torch.cat([f1, f2], dim=1)), None
        both = self.score(torch.cat([torch.cat([f1, f2], dim=1), torch.cat([f2, f1], dim=1)]))
        forward, backward = both.chunk(2)
        if self.training:
            return forward, backward
        return (forward + backward) / 2, None
