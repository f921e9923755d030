"""ChangeFormer (Bandara & Patel, IGARSS 2022) as Open-CD builds it: a Siamese MiT encoder and
a SegFormer all-MLP decoder on the concatenated pair.

ChangeAnywhere trained "ChangeFormer (MiT-B1)" with Open-CD, whose ``changeformer_mit-b*``
is: one shared Mix Transformer (here smp's ``mit_b1``: widths 64/128/320/512, two blocks per
stage) on both dates; the dates' maps concatenated per level (``FeatureFusionNeck``,
``concat``); mmseg's ``SegformerHead``: per level a 1×1 conv-BN-ReLU to ``channels`` (256),
bilinear to stride 4, concatenation, a 1×1 conv-BN-ReLU fusion, dropout 0.1 and a 1×1 conv —
here to one change logit, upsampled ×4 (bilinear).

This is not the authors' ChangeFormerV6 (its own MiT-B2-like encoder with difference
modules and a transposed-conv decoder: 41.0 M parameters). Parameters here: 13,940,673
(13,151,424 in the MiT-B1 encoder). Inputs: (B, 3, H, W), H, W divisible by 32.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from changen.detectors.backbones import build_backbone
from changen.detectors.changemixin import ChangeOutput, check_pair
from changen.detectors.changer import conv_bn_relu


class ChangeFormer(nn.Module):
    """Siamese MiT encoder + SegFormer MLP head on the channel-concatenated pair."""

    def __init__(
        self,
        backbone: str = "mit_b1",
        *,
        weights: str | os.PathLike[str] | None = None,
        channels: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "backbone": backbone,
            "channels": channels,
            "dropout": dropout,
        }
        self.backbone = build_backbone(backbone, weights)
        self.lateral = nn.ModuleList(
            conv_bn_relu(2 * c, channels) for c in self.backbone.out_channels
        )
        self.fuse = conv_bn_relu(channels * len(self.lateral), channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, 1, 1)

    def forward(self, t1: torch.Tensor, t2: torch.Tensor) -> ChangeOutput:
        check_pair(t1, t2)
        features = [torch.cat(f.chunk(2), dim=1) for f in self.backbone(torch.cat([t1, t2]))]
        size = features[0].shape[-2:]
        levels = [
            F.interpolate(lateral(f), size=size, mode="bilinear", align_corners=False)
            for lateral, f in zip(self.lateral, features, strict=True)
        ]
        logit = self.classifier(self.dropout(self.fuse(torch.cat(levels, dim=1))))
        change = F.interpolate(logit, scale_factor=4.0, mode="bilinear", align_corners=False)
        return ChangeOutput(change=change)
