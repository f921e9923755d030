"""OASIS-style segmentation discriminator: a U-Net of spectral-norm residual blocks.

It sees the image only and labels every pixel with one of N + 1 classes: channel 0 is "fake",
channel ``1 + c`` is semantic class ``c``. The masks enter through the loss targets
(``losses.py``). Downsampling uses ceil-mode pooling and each upsampling resizes to the skip it
meets, so any input size works (the generator itself needs multiples of 32).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from changen.synthesis.gan.config import DiscriminatorConfig
from changen.synthesis.gan.layers import DiscriminatorBlock, spectral_conv

FAKE = 0
"""Index of the "fake" channel in the discriminator's logits."""


class SegDiscriminator(nn.Module):
    """Image (B, 3, H, W) -> per-pixel logits (B, num_classes + 1, H, W)."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        levels = len(ch)
        self.down = nn.ModuleList(
            DiscriminatorBlock(3 if i == 0 else ch[i - 1], ch[i], "down", preactivate=i > 0)
            for i in range(levels)
        )
        outs = [ch[levels - 2 - j] for j in range(levels - 1)] + [config.head_channels]
        ins = [ch[-1]] + [outs[j - 1] + ch[levels - 1 - j] for j in range(1, levels)]
        self.up = nn.ModuleList(DiscriminatorBlock(ins[j], outs[j], "up") for j in range(levels))
        self.classifier = spectral_conv(config.head_channels, config.num_classes + 1, 1)

    def forward(self, image: Tensor) -> Tensor:
        skips = []
        h = image
        for block in self.down:
            h = block(h)
            skips.append(h)
        sizes = [tuple(s.shape[-2:]) for s in skips[-2::-1]] + [tuple(image.shape[-2:])]
        for j, block in enumerate(self.up):
            if j > 0:
                h = torch.cat([h, skips[-1 - j]], dim=1)
            h = block(h, sizes[j])
        return self.classifier(h)
