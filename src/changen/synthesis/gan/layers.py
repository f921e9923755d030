"""Building blocks shared by the Changen generator and discriminator.

Spectral norm (Miyato et al.) goes on the synthesis and discrimination convs; the small convs
that predict the spatially-adaptive scale and shift stay plain, as in SPADE and OASIS.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

LEAK = 0.2


def spectral_conv(
    in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True
) -> nn.Conv2d:
    """A same-padded conv whose weight is spectrally normalised."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
    spectral_norm(conv)  # in place: parametrizes ``conv`` and returns it
    return conv


def add_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalise every conv inside ``module`` (in place) and return it."""
    for conv in [m for m in module.modules() if isinstance(m, nn.Conv2d)]:
        spectral_norm(conv)
    return module


def group_count(channels: int, max_groups: int) -> int:
    """The number of GroupNorm groups: the largest divisor of ``channels`` up to ``max_groups``."""
    return math.gcd(channels, max_groups)


def param_free_norm(kind: str, channels: int, max_groups: int) -> nn.Module:
    """Normalisation without learned affine parameters ("group" or "batch")."""
    if kind == "group":
        return nn.GroupNorm(group_count(channels, max_groups), channels, affine=False)
    return nn.BatchNorm2d(channels, affine=False)


class SpatiallyAdaptiveNorm(nn.Module):
    """``norm(x) * (1 + gamma(c)) + beta(c)`` with gamma, beta predicted per pixel from ``c``.

    ``c`` (a one-hot mask, optionally with noise channels) is resized to ``x`` by nearest
    neighbour, so one full-resolution condition serves every scale.
    """

    def __init__(
        self, channels: int, cond_channels: int, hidden: int, norm: str, max_groups: int
    ) -> None:
        super().__init__()
        self.norm = param_free_norm(norm, channels, max_groups)
        self.shared = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        cond = F.interpolate(cond, size=x.shape[-2:], mode="nearest")
        h = self.shared(cond)
        return self.norm(x) * (1 + self.gamma(h)) + self.beta(h)


class SpadeResBlock(nn.Module):
    """Residual block of the conditional decoder (SPADE ResBlk with spectral-norm convs)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        cond_channels: int,
        hidden: int,
        norm: str,
        max_groups: int,
    ) -> None:
        super().__init__()
        middle = min(in_channels, out_channels)
        self.norm_0 = SpatiallyAdaptiveNorm(in_channels, cond_channels, hidden, norm, max_groups)
        self.conv_0 = spectral_conv(in_channels, middle, 3)
        self.norm_1 = SpatiallyAdaptiveNorm(middle, cond_channels, hidden, norm, max_groups)
        self.conv_1 = spectral_conv(middle, out_channels, 3)
        self.shortcut: nn.Module | None = None
        if in_channels != out_channels:
            self.shortcut_norm = SpatiallyAdaptiveNorm(
                in_channels, cond_channels, hidden, norm, max_groups
            )
            self.shortcut = spectral_conv(in_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        skip = x if self.shortcut is None else self.shortcut(self.shortcut_norm(x, cond))
        h = self.conv_0(F.leaky_relu(self.norm_0(x, cond), LEAK))
        h = self.conv_1(F.leaky_relu(self.norm_1(h, cond), LEAK))
        return skip + h


class DiscriminatorBlock(nn.Module):
    """Residual block of the U-Net discriminator, resampling by 2 ("down" or "up").

    "up" resizes to an explicit ``size`` (the skip it will meet), so odd sizes that ceil-mode
    pooling produced on the way down come back exactly.
    """

    def __init__(
        self, in_channels: int, out_channels: int, resample: str, *, preactivate: bool = True
    ) -> None:
        super().__init__()
        self.resample = resample
        self.preactivate = preactivate
        self.conv_0 = spectral_conv(in_channels, out_channels, 3)
        self.conv_1 = spectral_conv(out_channels, out_channels, 3)
        self.shortcut = (
            spectral_conv(in_channels, out_channels, 1, bias=False)
            if in_channels != out_channels
            else None
        )

    def _skip(self, x: Tensor, size: tuple[int, int] | None) -> Tensor:
        if self.resample == "up":
            x = F.interpolate(x, size=size, mode="nearest")
        if self.shortcut is not None:
            x = self.shortcut(x)
        if self.resample == "down":
            x = F.avg_pool2d(x, 2, ceil_mode=True)
        return x

    def forward(self, x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        h = F.leaky_relu(x, LEAK) if self.preactivate else x
        if self.resample == "up":
            h = F.interpolate(h, size=size, mode="nearest")
        h = self.conv_1(F.leaky_relu(self.conv_0(h), LEAK))
        if self.resample == "down":
            h = F.avg_pool2d(h, 2, ceil_mode=True)
        return self._skip(x, size) + h


def one_hot(mask: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """(B, H, W) class ids -> (B, N, H, W) one-hot floats."""
    return F.one_hot(mask, num_classes).permute(0, 3, 1, 2).to(dtype)
