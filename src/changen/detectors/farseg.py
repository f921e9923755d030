"""FarSeg (Zheng et al., CVPR 2020) as used by ChangeStar: backbone → FPN → F-S relation → decoder.

Layout and widths follow the official ChangeStar (1×96) release (``ever`` modules ``FPN``,
``FSRelation`` with scale-aware projection, ``AssymetricDecoder``):

- FPN: 1×1 lateral and 3×3 output convolutions, ``fpn_channels`` wide, **without bias** and
  without normalisation; nearest ×2 top-down path.
- Foreground-scene relation: scene = GAP(C5); per level ``i`` a scene projection
  (1×1 conv, ReLU, 1×1 conv), a content encoder and a feature re-encoder (1×1 conv, BN, ReLU);
  relation_i = sigmoid(⟨scene_i, content_i⟩) over channels re-weights the re-encoded level.
- Decoder: per level, log2(stride/4) blocks of (3×3 conv without bias, BN, ReLU, bilinear ×2)
  (one block without upsampling at stride 4); the levels are averaged.

Bilinear upsampling uses ``align_corners=True`` (``nn.UpsamplingBilinear2d`` in the original),
so converted official weights give the official outputs. Inputs must have H and W divisible
by 32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from changen.detectors.backbones import Backbone


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int, bias: bool
) -> list[nn.Module]:
    """The (conv, BN, ReLU) triple whose indices 0/1 the official key layout relies on."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class FPN(nn.Module):
    """Feature pyramid: lateral 1×1 convs, nearest top-down sum, 3×3 output convs (no bias)."""

    def __init__(self, in_channels: tuple[int, ...], channels: int = 256) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1, bias=False) for c in in_channels)
        self.output = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in in_channels
        )

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        inner = self.lateral[-1](features[-1])
        outputs = [self.output[-1](inner)]
        for i in range(len(features) - 2, -1, -1):
            inner = self.lateral[i](features[i]) + F.interpolate(
                inner, scale_factor=2.0, mode="nearest"
            )
            outputs.insert(0, self.output[i](inner))
        return outputs


class ForegroundSceneRelation(nn.Module):
    """FarSeg's F-S relation: scene-content similarity gates each pyramid level (scale-aware)."""

    def __init__(self, scene_channels: int, num_levels: int, channels: int = 256) -> None:
        super().__init__()
        self.scene = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(scene_channels, channels, 1),
                nn.ReLU(inplace=True),
                nn.Conv2d(channels, channels, 1),
            )
            for _ in range(num_levels)
        )
        self.content = nn.ModuleList(
            nn.Sequential(*conv_bn_relu(channels, channels, 1, bias=True))
            for _ in range(num_levels)
        )
        self.reencode = nn.ModuleList(
            nn.Sequential(*conv_bn_relu(channels, channels, 1, bias=True))
            for _ in range(num_levels)
        )

    def forward(self, scene: torch.Tensor, features: list[torch.Tensor]) -> list[torch.Tensor]:
        refined = []
        for project, content, reencode, feature in zip(
            self.scene, self.content, self.reencode, features, strict=True
        ):
            relation = torch.sigmoid((project(scene) * content(feature)).sum(dim=1, keepdim=True))
            refined.append(relation * reencode(feature))
        return refined


class LightDecoder(nn.Module):
    """Upsample every level to stride ``out_stride`` with conv-BN-ReLU-×2 blocks; average them."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        strides: tuple[int, ...] = (4, 8, 16, 32),
        out_stride: int = 4,
    ) -> None:
        super().__init__()
        self.levels = nn.ModuleList()
        for stride in strides:
            num_up = int(math.log2(stride)) - int(math.log2(out_stride))
            blocks = []
            for i in range(max(num_up, 1)):
                layers = conv_bn_relu(
                    in_channels if i == 0 else out_channels, out_channels, 3, bias=False
                )
                if num_up > 0:
                    layers.append(
                        nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=True)
                    )
                blocks.append(nn.Sequential(*layers))
            self.levels.append(nn.Sequential(*blocks))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        outs = [level(f) for level, f in zip(self.levels, features, strict=True)]
        return torch.stack(outs).mean(dim=0)


class FarSeg(nn.Module):
    """Backbone + FarSeg neck/decoder: (B, 3, H, W) → (B, ``out_channels``, H/4, W/4)."""

    def __init__(self, backbone: Backbone, fpn_channels: int = 256, out_channels: int = 96) -> None:
        super().__init__()
        self.backbone = backbone
        self.out_channels = out_channels
        levels = len(backbone.out_channels)
        self.fpn = FPN(backbone.out_channels, fpn_channels)
        self.relation = ForegroundSceneRelation(backbone.out_channels[-1], levels, fpn_channels)
        self.decoder = LightDecoder(fpn_channels, out_channels, backbone.strides)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        scene = F.adaptive_avg_pool2d(features[-1], 1)
        return self.decoder(self.relation(scene, self.fpn(features)))
