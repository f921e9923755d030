"""Image backbones for the change detectors: four feature maps at strides 4, 8, 16 and 32.

ResNet-18 comes from timm, MiT-B1 (SegFormer's encoder) from segmentation-models-pytorch; both
are built with random initialisation (nothing is ever downloaded). ImageNet or other weights
are loaded from a local file with ``weights=``; the classifier keys of a full classification
checkpoint (``fc.*`` / ``head.*``) are dropped.

Parameter names inside ``body`` are those of torchvision/timm ResNets and of the SegFormer
MiT release, which is what the official ChangeStar checkpoints use (see ``official.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from changen.engine.weights import read_tensors
from changen.errors import ConfigError

_CLASSIFIER_PREFIXES = ("fc.", "head.")


class Backbone(nn.Module):
    """A feature extractor returning ``len(out_channels)`` maps at ``strides``, finest first."""

    out_channels: tuple[int, ...]
    strides: tuple[int, ...] = (4, 8, 16, 32)

    def __init__(self, body: nn.Module, out_channels: tuple[int, ...]) -> None:
        super().__init__()
        self.body = body
        self.out_channels = out_channels


class ResNetBackbone(Backbone):
    """A timm ResNet without its stem-level (stride 2) output and classifier."""

    def __init__(self, name: str = "resnet18") -> None:
        import timm
        from timm.models import FeatureInfo

        body = timm.create_model(
            name, pretrained=False, features_only=True, out_indices=(1, 2, 3, 4)
        )
        info = body.feature_info  # typed as a plain Module attribute: narrow it
        assert isinstance(info, FeatureInfo), "features_only models carry a FeatureInfo"
        super().__init__(body, tuple(info.channels()))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)


class MiTBackbone(Backbone):
    """A Mix Transformer (SegFormer) encoder from segmentation-models-pytorch."""

    def __init__(self, name: str = "mit_b1") -> None:
        from segmentation_models_pytorch.encoders import get_encoder

        body = get_encoder(name, in_channels=3, depth=5, weights=None)
        super().__init__(body, tuple(body.out_channels[2:]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # smp returns [input, empty stride-2 map, stride 4, 8, 16, 32]
        return self.body(x)[2:]


BACKBONES: dict[str, Callable[[], Backbone]] = {
    "resnet18": lambda: ResNetBackbone("resnet18"),
    "mit_b1": lambda: MiTBackbone("mit_b1"),
}


def build_backbone(name: str, weights: str | os.PathLike[str] | None = None) -> Backbone:
    """Build backbone ``name`` (a key of ``BACKBONES``), loading ``weights`` from a local file."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    backbone = BACKBONES[name]()
    if weights is not None:
        load_backbone_weights(backbone, weights)
    return backbone


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a backbone state dict from a ``.safetensors`` or PyTorch file (tensors only, no
    pickled code; ``{"state_dict": …}`` / ``{"model": …}`` unwrapped)."""
    return read_tensors(path, "backbone weights", "give a local .safetensors or PyTorch state dict")


def load_backbone_weights(backbone: Backbone, weights: str | os.PathLike[str]) -> None:
    """Load a local classification or backbone checkpoint into ``backbone.body`` (strict)."""
    state = {
        k.removeprefix("module."): v
        for k, v in read_state_dict(weights).items()
        if not k.removeprefix("module.").startswith(_CLASSIFIER_PREFIXES)
    }
    try:
        result = nn.Module.load_state_dict(backbone.body, state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ConfigError(f"weights {weights} do not fit this backbone: {err}") from err
    if result.missing_keys or result.unexpected_keys:
        raise ConfigError(
            f"weights {weights} do not fit this backbone: missing {result.missing_keys[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}; check the backbone name"
        )
