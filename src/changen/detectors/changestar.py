"""ChangeStar: a Siamese FarSeg encoder with a ChangeMixin head (and optional semantic head).

Both dates go through one shared FarSeg in a single batch (so BatchNorm sees both), giving
``decoder_channels``-wide features at stride 4. The ChangeMixin turns the pair into change
logits; an optional 1×1-conv semantic head (shared by both dates, ×4 bilinear) gives t1/t2
segmentation logits for semantic supervision (``num_classes=1`` for binary object masks as
in STAR training).

Parameter counts (measured, random init): 1×96 with ResNet-18 16,401,569 and with MiT-B1
18,392,865, matching the paper's 16.4M / 18.4M; the official widths are used throughout
(see ``farseg.py``). Inputs: float (B, 3, H, W) tensors, normalised by the caller, H and W
divisible by 32.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from changen.detectors.backbones import build_backbone
from changen.detectors.changemixin import ChangeMixin, ChangeOutput, check_pair
from changen.detectors.farseg import FarSeg


class ChangeStar(nn.Module):
    """ChangeStar (N×d_c); defaults are Changen's ChangeStar 1×96 with a ResNet-18."""

    def __init__(
        self,
        backbone: str = "resnet18",
        *,
        weights: str | os.PathLike[str] | None = None,
        fpn_channels: int = 256,
        decoder_channels: int = 96,
        mixin_layers: int = 1,
        mixin_channels: int = 96,
        symmetric: bool = False,
        num_semantic_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "backbone": backbone,
            "fpn_channels": fpn_channels,
            "decoder_channels": decoder_channels,
            "mixin_layers": mixin_layers,
            "mixin_channels": mixin_channels,
            "symmetric": symmetric,
            "num_semantic_classes": num_semantic_classes,
        }
        self.encoder = FarSeg(build_backbone(backbone, weights), fpn_channels, decoder_channels)
        self.mixin = ChangeMixin(decoder_channels, mixin_channels, mixin_layers, symmetric)
        self.semantic_head = (
            nn.Conv2d(decoder_channels, num_semantic_classes, 1) if num_semantic_classes else None
        )

    def forward(self, t1: torch.Tensor, t2: torch.Tensor) -> ChangeOutput:
        check_pair(t1, t2)
        f1, f2 = self.encoder(torch.cat([t1, t2])).chunk(2)
        change, change_t2t1 = self.mixin(f1, f2)
        out = ChangeOutput(change=change, change_t2t1=change_t2t1)
        if self.semantic_head is not None:
            semantic = F.interpolate(
                self.semantic_head(torch.cat([f1, f2])),
                scale_factor=4.0,
                mode="bilinear",
                align_corners=True,
            )
            out.t1_semantic, out.t2_semantic = semantic.chunk(2)
        return out
