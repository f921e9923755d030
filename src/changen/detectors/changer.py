"""ChangerEx (Fang et al., "Changer: Feature Interaction is What You Need for Change
Detection", IEEE TGRS 2023), as Open-CD's ``changer_ex_r18`` builds it.

- **Interaction in the encoder**: both dates go through one shared ResNet-18-V1c; after
  layer2 the dates swap every other *column* (spatial exchange, p = 1/2), after layer3 and
  layer4 every other *channel* (channel exchange, p = 1/2). Exchanged features feed the next
  stage and the decoder.
- **Decoder** (per date, shared weights): each level 1×1 conv-BN-ReLU to ``channels`` (128),
  bilinear to stride 4, concatenated and fused by a 1×1 conv-BN-ReLU to ``channels // 2``.
- **Flow dual-alignment fusion (FDAF)**: a depthwise 5×5 conv, InstanceNorm, GELU and a 1×1
  conv predict two flows from the pair; each date is warped towards the other and the other
  subtracted (``warp(f1) − f2``, ``warp(f2) − f1``), and the two are concatenated.
- **Head**: a MixFFN (1×1, depthwise 3×3, GELU, 1×1, residual) as projection, dropout 0.1,
  a 1×1 conv to one change logit, bilinear ×4.

Parameters: 11,390,817 with the default ResNet-18-V1c (11.39 M in the Changer paper for
ChangerEx R-18); ``backbone="resnet18"`` (7×7 stem, loads torchvision / timm ImageNet
weights directly) 11,371,585. Inputs: (B, 3, H, W), H, W divisible by 32.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from changen.detectors.backbones import ResNetBackbone, build_backbone
from changen.detectors.changemixin import ChangeOutput, check_pair
from changen.errors import ConfigError

#: Interaction after each ResNet stage, as ChangerEx: none, spatial, channel, channel.
EXCHANGES = {"layer2": "spatial", "layer3": "channel", "layer4": "channel"}


def exchange(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Swap every other column (``spatial``) or channel (``channel``) between the two dates
    stacked along the batch of ``x`` (t1 first)."""
    x1, x2 = x.chunk(2)
    if kind == "spatial":
        mask = (torch.arange(x.shape[-1], device=x.device) % 2 == 0).view(1, 1, 1, -1)
    else:
        mask = (torch.arange(x.shape[1], device=x.device) % 2 == 0).view(1, -1, 1, 1)
    return torch.cat([torch.where(mask, x2, x1), torch.where(mask, x1, x2)])


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """1×1 conv without bias, BN, ReLU (mmcv's ConvModule with a norm)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class FlowDualAlignment(nn.Module):
    """FDAF: warp each date by a predicted flow towards the other, subtract, concatenate."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.flow = nn.Sequential(
            nn.Conv2d(2 * channels, 2 * channels, 5, padding=2, groups=2 * channels),
            nn.InstanceNorm2d(2 * channels),
            nn.GELU(),
            nn.Conv2d(2 * channels, 4, 1, bias=False),
        )

    @staticmethod
    def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """Sample ``x`` at the identity grid plus ``flow`` (pixels, (B, 2, h, w) as x, y)."""
        _, _, h, w = x.shape
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
        norm = torch.tensor([w, h], device=x.device, dtype=x.dtype)
        grid = grid.unsqueeze(0) + flow.permute(0, 2, 3, 1) / norm
        return F.grid_sample(x, grid, align_corners=True)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        f1, f2 = self.flow(torch.cat([x1, x2], dim=1)).chunk(2, dim=1)
        return torch.cat([self.warp(x1, f1) - x2, self.warp(x2, f2) - x1], dim=1)


class MixFFN(nn.Module):
    """SegFormer's Mix-FFN on (B, C, H, W) maps, with a residual connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(channels, channels, 1),
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
            nn.GELU(),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class Changer(nn.Module):
    """ChangerEx: feature exchange in a shared ResNet, FDAF fusion, MLP decoder."""

    def __init__(
        self,
        backbone: str = "resnet18_v1c",
        *,
        weights: str | os.PathLike[str] | None = None,
        channels: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "backbone": backbone,
            "channels": channels,
            "dropout": dropout,
        }
        self.backbone = build_backbone(backbone, weights)
        if not isinstance(self.backbone, ResNetBackbone):
            raise ConfigError(
                f"Changer exchanges features between ResNet stages; {backbone!r} is not a "
                f"ResNet: choose resnet18_v1c, resnet18, resnet50 or resnext101_32x4d"
            )
        self.lateral = nn.ModuleList(conv_bn_relu(c, channels) for c in self.backbone.out_channels)
        self.fuse = conv_bn_relu(channels * len(self.lateral), channels // 2)
        self.align = FlowDualAlignment(channels // 2)
        self.project = MixFFN(channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, 1, 1)

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four stage outputs of the stacked pair, exchanged after stages 2–4."""
        features = []
        for name, module in self.backbone.body.named_children():
            x = module(x)
            if name in EXCHANGES:
                x = exchange(x, EXCHANGES[name])
            if name.startswith("layer"):
                features.append(x)
        return features

    def forward(self, t1: torch.Tensor, t2: torch.Tensor) -> ChangeOutput:
        check_pair(t1, t2)
        features = self._encode(torch.cat([t1, t2]))
        size = features[0].shape[-2:]
        levels = [
            F.interpolate(lateral(f), size=size, mode="bilinear", align_corners=False)
            for lateral, f in zip(self.lateral, features, strict=True)
        ]
        f1, f2 = self.fuse(torch.cat(levels, dim=1)).chunk(2)
        fused = self.project(self.align(f1, f2))
        logit = self.classifier(self.dropout(fused))
        change = F.interpolate(logit, scale_factor=4.0, mode="bilinear", align_corners=False)
        return ChangeOutput(change=change)
