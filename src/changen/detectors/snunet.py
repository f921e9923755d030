"""SNUNet-CD (Fang et al., IEEE GRSL 2022): a Siamese nested U-Net (UNet++) with ECAM.

Layout as in the authors' code and Open-CD's ``SNUNet_ECAM`` (the implementation ChangeAnywhere
trained): five encoder levels of ``base, 2·base, …, 16·base`` channels, each a residual
double conv (3×3 conv with bias, BN, ReLU, 3×3 conv, BN, + the first conv's output, ReLU)
shared by both dates, 2×2 max-pooling between levels; nested decoder nodes X(i, j) take
both dates' X(i, 0), the earlier nodes of row i and the 2×2 transposed-conv upsampling of
X(i+1, j−1). The ensemble channel attention module (ECAM) weights the four full-resolution
outputs X(0, 1..4), and a 1×1 conv (after dropout 0.1, Open-CD's FCN head without convs)
gives one change logit.

Parameters: 12,034,849 at ``base_channels=32`` (one logit); the paper reports 12.03 M for
SNUNet-CD/32 (the authors' two-logit head has 129 more). Inputs: float (B, 3, H, W) with H, W
divisible by 16.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from changen.detectors.changemixin import ChangeOutput, check_pair

_LEVELS = 5


class NestedBlock(nn.Module):
    """Residual double convolution: conv-BN-ReLU-conv-BN, plus the first conv, ReLU."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.conv2 = nn.Conv2d(mid_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.conv1(x)
        x = self.bn2(self.conv2(torch.relu(self.bn1(identity))))
        return torch.relu(x + identity)


class ChannelAttention(nn.Module):
    """CBAM-style channel attention: sigmoid(MLP(avg-pool) + MLP(max-pool))."""

    def __init__(self, channels: int, ratio: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // ratio, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // ratio, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        peak = self.fc2(torch.relu(self.fc1(x.amax((2, 3), keepdim=True))))
        return torch.sigmoid(avg + peak)


class SNUNet(nn.Module):
    """SNUNet-CD with ECAM; ``base_channels`` 32 is the paper's main model (16 is Open-CD's)."""

    def __init__(self, base_channels: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        self.config: dict[str, Any] = {"base_channels": base_channels, "dropout": dropout}
        f = [base_channels * 2**i for i in range(_LEVELS)]
        self.encoder = nn.ModuleList(
            NestedBlock(3 if i == 0 else f[i - 1], f[i], f[i]) for i in range(_LEVELS)
        )
        self.nodes = nn.ModuleDict()
        self.up = nn.ModuleDict()
        for i in range(_LEVELS):
            for j in range(_LEVELS - i):
                if i > 0:  # X(i, j) is upsampled into X(i−1, j+1)
                    self.up[f"{i}_{j}"] = nn.ConvTranspose2d(f[i], f[i], 2, stride=2)
                if j > 0:
                    in_channels = f[i] * (j + 1) + f[i + 1]
                    self.nodes[f"{i}_{j}"] = NestedBlock(in_channels, f[i], f[i])
        self.ca = ChannelAttention(f[0] * 4, ratio=16)
        self.ca1 = ChannelAttention(f[0], ratio=4)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(f[0] * 4, 1, 1)

    def forward(self, t1: torch.Tensor, t2: torch.Tensor) -> ChangeOutput:
        check_pair(t1, t2, multiple=16)
        x = torch.cat([t1, t2])
        pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        for i, block in enumerate(self.encoder):
            if i == _LEVELS - 1:  # the deepest level is only used for t2, as in the original
                x = x.chunk(2)[1]
            x = block(x if i == 0 else nn.functional.max_pool2d(x, 2))
            pairs.append(x.chunk(2) if i < _LEVELS - 1 else (x, x))
        rows: list[list[torch.Tensor]] = [[pair[1]] for pair in pairs]  # X(i, 0) of t2 ...
        for k in range(1, _LEVELS):  # nodes by anti-diagonal i + j = k
            for j in range(1, k + 1):
                i = k - j
                parts = [pairs[i][0], pairs[i][1], *rows[i][1:j]]
                parts.append(self.up[f"{i + 1}_{j - 1}"](rows[i + 1][j - 1]))
                rows[i].append(self.nodes[f"{i}_{j}"](torch.cat(parts, dim=1)))
        outs = rows[0][1:]
        stacked = torch.cat(outs, dim=1)
        intra = self.ca1(torch.stack(outs).sum(dim=0))
        fused = self.ca(stacked) * (stacked + intra.repeat(1, 4, 1, 1))
        return ChangeOutput(change=self.classifier(self.dropout(fused)))
