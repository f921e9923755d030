"""Pre-event image encoder: a U-Net on a ResNet-18 (timm), spectral norm on every conv.

It returns the paper's multi-scale features ``f_t,i`` for i = 0..5: ``f_t,0`` is the last ResNet
stage (h/32), and each U-Net decoder step doubles the resolution up to ``f_t,5`` at full size.
Skips: layer3 (h/16), layer2 (h/8), layer1 (h/4) and the stem (h/2); the last step has none.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from timm.models.resnet import BasicBlock, ResNet
from torch import Tensor, nn

from changen.engine.weights import read_tensors
from changen.errors import ConfigError
from changen.synthesis.gan.layers import add_spectral_norm, spectral_conv


class _UpBlock(nn.Module):
    """×2 nearest upsampling, concatenation with the skip, two conv-BN-ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            spectral_conv(in_channels + skip_channels, out_channels, 3, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            spectral_conv(out_channels, out_channels, 3, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.body(x)


def load_resnet_weights(backbone: ResNet, path: str | Path) -> None:
    """Load a local ResNet-18 state dict (torchvision or timm keys; .safetensors or torch file).

    The classifier (``fc.*``) is dropped; anything else that does not fit is an error.
    """
    path = Path(path)
    fix = "give a local ResNet-18 state dict as .safetensors or a plain torch file of tensors"
    weights = read_tensors(path, "encoder weights", fix)
    state = {k: v for k, v in weights.items() if not k.startswith("fc.")}
    try:
        backbone.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(
            f"encoder weights {path} do not fit ResNet-18 at these widths ({first}); "
            "use paper widths or drop the weight file"
        ) from err


def _feature_channels(backbone: ResNet) -> list[int]:
    """The widths of the stem and the four stages, from timm's ``feature_info``."""
    widths = []
    for info in backbone.feature_info:
        width = info["num_chs"]
        if not isinstance(width, int):
            raise TypeError(f"timm feature_info num_chs is {width!r}, not an int")
        widths.append(width)
    return widths


class UNetEncoder(nn.Module):
    """ResNet-18 U-Net; ``forward`` returns ``[f_t,0, ..., f_t,5]`` (coarse to fine).

    ``resnet_channels`` are the widths of the four ResNet stages; timm keeps the 7×7 stem at 64
    channels whatever they are.
    """

    def __init__(
        self,
        resnet_channels: tuple[int, ...],
        feature_channels: tuple[int, ...],
        weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        c = tuple(resnet_channels)
        self.backbone = ResNet(
            # timm annotates ``block`` as an instance; it takes the class (its default too).
            BasicBlock,  # type: ignore[arg-type]
            (2, 2, 2, 2),
            num_classes=0,
            channels=c,
            zero_init_last=False,
        )
        if weights is not None:
            load_resnet_weights(self.backbone, weights)
        add_spectral_norm(self.backbone)
        f = feature_channels
        stem, layer1, layer2, layer3 = _feature_channels(self.backbone)[:4]
        skips = (layer3, layer2, layer1, stem, 0)
        self.up = nn.ModuleList(_UpBlock(f[i], skips[i], f[i + 1]) for i in range(5))

    def forward(self, image: Tensor) -> list[Tensor]:
        b = self.backbone
        stem = b.act1(b.bn1(b.conv1(image)))
        x1 = b.get_submodule("layer1")(b.maxpool(stem))
        x2 = b.get_submodule("layer2")(x1)
        x3 = b.get_submodule("layer3")(x2)
        features = [b.get_submodule("layer4")(x3)]
        for block, skip in zip(self.up, (x3, x2, x1, stem, None), strict=True):
            features.append(block(features[-1], skip))
        return features
