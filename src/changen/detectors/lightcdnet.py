"""LightCDNet (Xing et al., IEEE GRSL 2023): early fusion by a deep-supervised fusion module,
a ShuffleNet-V2 pyramid and a light FPN decoder. Layout of Open-CD's ``lightcdnet`` (the
authors' code, integrated there), small variant by default.

- **Stem** (shared): 3×3 conv stride 2 (no bias), channel LayerNorm, GELU → 24 channels.
- **Deep supervised fusion module (DSFM)**: each date through a residual ShuffleNet-V2 stack
  (1×1 conv to 4×, ``block_num`` shuffle units, 1×1 conv back); a temporal attention
  (squeeze of both dates, sigmoid gates, x·a + x) re-weights them; channel shuffle of the
  concatenated pair and a 1×1 conv-BN-ReLU fuse them into one stride-2 map. An auxiliary
  FCN head (3×3 conv-BN-ReLU, 1×1 conv) on it is the deep supervision (loss weight 0.4,
  training only: ``ChangeOutput.aux``).
- **Backbone**: three ShuffleNet-V2 stages (``stage_repeat`` units; strides 4, 8, 16), each
  followed by two recurrences of criss-cross attention (CCNet; pure PyTorch here).
- **Neck and head**: an FPN over the fused map and the three stages (1×1 laterals, nearest
  top-down sum, 3×3 outputs, ``channels`` wide, with bias, no norm); the head sums 1×1
  conv-BN-ReLU of every level at stride 2 and a 1×1 conv gives the change logit (×2).

One deliberate difference: Open-CD takes the pyramid outputs at cumulative block indices
that skip the criss-cross attention of stages 1 and 3 (so stage 3's attention and last two
units never reach the output); here every stage's output is taken after its attention, as the
paper's figure draws it. Same parameters either way (one logit): small 347,697, base
1,318,359, large 2,820,945 — the paper's and Open-CD's 0.35 M, 1.32 M and 2.82 M. Inputs:
(B, 3, H, W), H, W divisible by 16.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from changen.detectors.changemixin import ChangeOutput, check_pair
from changen.errors import ConfigError, DataError

#: Variant → (stage widths after the 24-wide stem, shuffle units in the fusion stack).
VARIANTS = {
    "small": ((48, 96, 192), 4),
    "base": ((116, 232, 464), 8),
    "large": ((176, 352, 704), 16),
}
STEM = 24
AUX_WEIGHT = 0.4


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    """ShuffleNet's channel shuffle: interleave ``groups`` channel groups."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


def _bn(channels: int, relu: bool = True) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), *([nn.ReLU(inplace=True)] if relu else [])]


def _pw(in_channels: int, out_channels: int, relu: bool = True) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 1, bias=False), *_bn(out_channels, relu)]


def _dw(channels: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False),
        *_bn(channels, relu=False),
    ]


class ShuffleUnit(nn.Module):
    """ShuffleNet-V2 unit: split + (1×1, dw 3×3, 1×1) when keeping the size, two strided
    branches when halving it; then channel shuffle."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = False) -> None:
        super().__init__()
        half = out_channels // 2
        self.downsample = downsample
        if downsample:
            self.branch1: nn.Module = nn.Sequential(*_dw(in_channels, 2), *_pw(in_channels, half))
            self.branch2 = nn.Sequential(*_pw(in_channels, half), *_dw(half, 2), *_pw(half, half))
        else:
            if in_channels != out_channels:
                raise ConfigError(f"a shuffle unit keeps its width: {in_channels}→{out_channels}")
            self.branch1 = nn.Identity()
            self.branch2 = nn.Sequential(*_pw(half, half), *_dw(half, 1), *_pw(half, half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample:
            out = torch.cat([self.branch1(x), self.branch2(x)], dim=1)
        else:
            keep, transform = x.chunk(2, dim=1)
            out = torch.cat([keep, self.branch2(transform)], dim=1)
        return channel_shuffle(out)


class CrissCrossAttention(nn.Module):
    """CCNet's criss-cross attention, ``recurrence`` times: every pixel attends to its row and
    column (its own position once); out = γ·attention + x with γ starting at 0."""

    def __init__(self, channels: int, recurrence: int = 2) -> None:
        super().__init__()
        self.recurrence = recurrence
        self.query = nn.Conv2d(channels, channels // 8, 1)
        self.key = nn.Conv2d(channels, channels // 8, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def _once(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2]
        q, k, v = self.query(x), self.key(x), self.value(x)
        energy_h = torch.einsum("bchw,bckw->bhwk", q, k)  # along the column
        self_mask = torch.eye(h, dtype=torch.bool, device=x.device).view(1, h, 1, h)
        energy_h = energy_h.masked_fill(self_mask, float("-inf"))
        energy_w = torch.einsum("bchw,bchk->bhwk", q, k)  # along the row
        attention = torch.softmax(torch.cat([energy_h, energy_w], dim=-1), dim=-1)
        out = torch.einsum("bckw,bhwk->bchw", v, attention[..., :h])
        out = out + torch.einsum("bchk,bhwk->bchw", v, attention[..., h:])
        return self.gamma * out + x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.recurrence):
            x = self._once(x)
        return x


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map (mmseg's ``LayerNorm2d``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class TimeAttention(nn.Module):
    """Gates both dates from a squeeze of the pair: x·sigmoid(a) + x."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(channels // 16, 8)
        self.mlp = nn.Sequential(
            *_pw(2 * channels, hidden), nn.Conv2d(hidden, 2 * channels, 1, bias=False)
        )

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.cat([x1, x2], dim=1).mean((2, 3), keepdim=True)
        a1, a2 = torch.sigmoid(self.mlp(pooled)).chunk(2, dim=1)
        return x1 * a1 + x1, x2 * a2 + x2


class FusionModule(nn.Module):
    """The DSFM: residual shuffle stack per date, temporal attention, shuffle-and-fuse."""

    def __init__(self, channels: int, num_units: int) -> None:
        super().__init__()
        wide = 4 * channels
        self.stack = nn.Sequential(
            *_pw(channels, wide),
            *(ShuffleUnit(wide, wide) for _ in range(num_units)),
            *_pw(wide, channels),
        )
        self.time_attention = TimeAttention(channels)
        self.fuse = nn.Sequential(*_pw(2 * channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.stack(x)  # both dates stacked along the batch
        x1, x2 = self.time_attention(*x.chunk(2))
        return self.fuse(channel_shuffle(torch.cat([x1, x2], dim=1)))


class LightCDNet(nn.Module):
    """LightCDNet (see the module docstring); ``variant`` small, base or large."""

    def __init__(
        self,
        variant: str = "small",
        stage_repeat: tuple[int, ...] = (4, 8, 4),
        channels: int = 48,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ConfigError(f"LightCDNet variant {variant!r}: choose one of {sorted(VARIANTS)}")
        self.config: dict[str, Any] = {
            "variant": variant,
            "stage_repeat": list(stage_repeat),
            "channels": channels,
        }
        widths, num_units = VARIANTS[variant]
        self.stem = nn.Sequential(
            nn.Conv2d(3, STEM, 3, 2, 1, bias=False), ChannelLayerNorm(STEM), nn.GELU()
        )
        self.fusion = FusionModule(STEM, num_units)
        self.stages = nn.ModuleList()
        in_channels = STEM
        for width, repeat in zip(widths, stage_repeat, strict=True):
            units = [ShuffleUnit(in_channels, width, downsample=True)]
            units += [ShuffleUnit(width, width) for _ in range(repeat - 1)]
            self.stages.append(nn.Sequential(*units, CrissCrossAttention(width)))
            in_channels = width
        levels = (STEM, *widths)
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in levels)
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in levels)
        self.scale_heads = nn.ModuleList(nn.Sequential(*_pw(channels, channels)) for _ in levels)
        self.classifier = nn.Conv2d(channels, 1, 1)
        self.aux_head = nn.Sequential(
            nn.Conv2d(STEM, STEM, 3, padding=1, bias=False), *_bn(STEM), nn.Conv2d(STEM, 1, 1)
        )

    def _pyramid(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """FPN: lateral 1×1, nearest top-down sum, 3×3 outputs."""
        laterals = [conv(f) for conv, f in zip(self.lateral, features, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            up = F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest")
            laterals[i - 1] = laterals[i - 1] + up
        return [conv(f) for conv, f in zip(self.output, laterals, strict=True)]

    def forward(self, t1: torch.Tensor, t2: torch.Tensor) -> ChangeOutput:
        check_pair(t1, t2, multiple=16)
        if self.training and len(t1) < 2:
            raise DataError(
                "LightCDNet trains on batches of at least 2 pairs (its temporal attention "
                "batch-normalises pooled features); use --batch-size 2 or more"
            )
        fused = self.fusion(self.stem(torch.cat([t1, t2])))
        features = [fused]
        for stage in self.stages:
            features.append(stage(features[-1]))
        levels = self._pyramid(features)
        size = levels[0].shape[-2:]
        out = self.scale_heads[0](levels[0])
        for head, level in zip(self.scale_heads[1:], levels[1:], strict=True):
            out = out + F.interpolate(head(level), size=size, mode="bilinear", align_corners=False)
        result = ChangeOutput(change=self._full(self.classifier(out)))
        if self.training:
            result.aux = self._full(self.aux_head(fused))
        return result

    @staticmethod
    def _full(logit: torch.Tensor) -> torch.Tensor:
        return F.interpolate(logit, scale_factor=2.0, mode="bilinear", align_corners=False)
