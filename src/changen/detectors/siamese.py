"""Baseline change detectors: the fully convolutional networks of Daudt et al. (ICIP 2018)
and an early-fusion U-Net.

FC-EF, FC-Siam-conc and FC-Siam-diff share one small U-Net: four encoder levels of 16-32-64-128
channels with 2, 2, 3, 3 (3×3 conv, BN, ReLU, Dropout2d 0.2) blocks and a 2×2 max-pool after
each; the decoder mirrors it with stride-2 transposed convolutions and skip connections, and a
final 3×3 conv gives one change logit. They differ in fusion:

- ``early``: the two images are concatenated into 6 channels (FC-EF);
- ``conc``: a shared (Siamese) encoder runs on each date; skips are concatenated (FC-Siam-conc);
- ``diff``: as ``conc`` but skips are the absolute difference |s_t1 − s_t2| (FC-Siam-diff).

The Siamese decoders start from the t2 bottleneck, as in the authors' code; both dates go
through the encoder in one batch. Parameter counts: FC-EF 1.35M, FC-Siam-conc 1.55M,
FC-Siam-diff 1.35M. ``UNetEF`` is segmentation-models-pytorch's U-Net on the 6-channel
concatenation (ResNet-18 encoder by default, random init).

All take two float (B, 3, H, W) tensors with H, W divisible by 32 (the FC nets alone need 16)
and return a :class:`ChangeOutput` with (B, 1, H, W) change logits.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from changen.detectors.changemixin import ChangeOutput, check_pair
from changen.errors import ConfigError

Fusion = Literal["early", "conc", "diff"]
_WIDTHS = (16, 32, 64, 128)
_DEPTHS = (2, 2, 3, 3)


def _conv_stack(in_channels: int, widths: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in widths:
        layers += [
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        ]
        in_channels = width
    return nn.Sequential(*layers)


class FCNet(nn.Module):
    """Daudt et al.'s fully convolutional change detector with the given ``fusion``."""

    def __init__(self, fusion: Fusion = "early", dropout: float = 0.2) -> None:
        super().__init__()
        if fusion not in ("early", "conc", "diff"):
            raise ConfigError(f"unknown fusion {fusion!r}; choose 'early', 'conc' or 'diff'")
        self.fusion = fusion
        self.config: dict[str, Any] = {"dropout": dropout}
        in_channels = 6 if fusion == "early" else 3
        skip_factor = 2 if fusion == "conc" else 1
        self.encoder = nn.ModuleList()
        for width, depth in zip(_WIDTHS, _DEPTHS, strict=True):
            self.encoder.append(_conv_stack(in_channels, [width] * depth, dropout))
            in_channels = width
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(w, w, 3, stride=2, padding=1, output_padding=1) for w in _WIDTHS
        )
        self.decoder = nn.ModuleList()
        for i, (width, depth) in enumerate(zip(_WIDTHS, _DEPTHS, strict=True)):
            widths = [width] * (depth - 1) + ([_WIDTHS[i - 1]] if i > 0 else [])
            self.decoder.append(_conv_stack(width * (1 + skip_factor), widths, dropout))
        self.classifier = nn.Conv2d(_WIDTHS[0], 1, 3, padding=1)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        return x, skips

    def forward(self, t1: torch.Tensor, t2: torch.Tensor) -> ChangeOutput:
        check_pair(t1, t2, multiple=16)
        if self.fusion == "early":
            x, skips = self._encode(torch.cat([t1, t2], dim=1))
        else:
            bottleneck, both = self._encode(torch.cat([t1, t2]))
            x = bottleneck.chunk(2)[1]
            pairs = [s.chunk(2) for s in both]
            if self.fusion == "conc":
                skips = [torch.cat(p, dim=1) for p in pairs]
            else:
                skips = [(a - b).abs() for a, b in pairs]
        for up, block, skip in zip(self.up[::-1], self.decoder[::-1], skips[::-1], strict=True):
            x = block(torch.cat([up(x), skip], dim=1))
        return ChangeOutput(change=self.classifier(x))


class UNetEF(nn.Module):
    """Early-fusion U-Net (segmentation-models-pytorch) on cat(t1, t2)."""

    def __init__(self, backbone: str = "resnet18") -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        self.config: dict[str, Any] = {"backbone": backbone}
        self.unet = smp.Unet(backbone, encoder_weights=None, in_channels=6, classes=1)

    def forward(self, t1: torch.Tensor, t2: torch.Tensor) -> ChangeOutput:
        check_pair(t1, t2)
        return ChangeOutput(change=self.unet(torch.cat([t1, t2], dim=1)))
