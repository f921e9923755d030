"""Image backbones for the change detectors: feature maps at strides 4, 8, 16 and 32.

ResNets (ResNet-18/-50, ResNeXt-101 32x4d, and ResNet-18-V1c with the three-conv "deep" stem
that Open-CD's Changer and BiT use) come from timm, MiT-B1 (SegFormer's encoder) from
segmentation-models-pytorch; all are built with random initialisation (nothing is ever
downloaded). A ResNet can be truncated (``out_indices``) and dilated (``output_stride``), as
BiT needs.

Pretrained weights come from a local file (:func:`load_backbone_weights`): a timm,
torchvision, smp or mmcv/mmseg state dict, as ``.safetensors`` or a PyTorch file read with
``weights_only=True``. Keys are matched leniently: the prefixes ``module.``, ``encoder.``,
``backbone.`` and ``body.`` are stripped, classifier keys (``fc.*`` / ``head.*``) and layers
the backbone does not have (``layer4`` of a truncated ResNet) are skipped, mmcv's V1c stem
names (``stem.N``) are mapped to timm's, and missing BatchNorm ``num_batches_tracked``
counters are allowed. Every tensor the backbone has must be in the file with its shape.

Parameter names inside ``body`` are those of torchvision/timm ResNets and of the SegFormer
MiT release, which is what the official ChangeStar checkpoints use (see ``official.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from changen.engine.weights import read_tensors
from changen.errors import ConfigError

_CLASSIFIER_PREFIXES = ("fc.", "head.")
_WRAPPER_PREFIXES = ("module.", "encoder.", "backbone.", "body.")
#: mmcv ResNetV1c stem names → timm deep-stem names.
_V1C_STEM = {"stem.0.": "conv1.0.", "stem.1.": "conv1.1.", "stem.3.": "conv1.3.",
             "stem.4.": "conv1.4.", "stem.6.": "conv1.6.", "stem.7.": "bn1."}  # fmt: skip


class Backbone(nn.Module):
    """A feature extractor returning ``len(out_channels)`` maps at ``strides``, finest first."""

    out_channels: tuple[int, ...]
    strides: tuple[int, ...]

    def __init__(
        self, body: nn.Module, out_channels: tuple[int, ...], strides: tuple[int, ...]
    ) -> None:
        super().__init__()
        self.body = body
        self.out_channels = out_channels
        self.strides = strides


class ResNetBackbone(Backbone):
    """A timm ResNet without its classifier: the maps of stages ``out_indices`` (1 = layer1).

    ``output_stride`` 8 or 16 dilates the later stages instead of striding them;
    ``deep_stem`` uses three 3×3 convolutions (32, 32, 64 wide) in place of the 7×7 (V1c).
    """

    def __init__(
        self,
        name: str = "resnet18",
        *,
        out_indices: tuple[int, ...] = (1, 2, 3, 4),
        output_stride: int = 32,
        deep_stem: bool = False,
    ) -> None:
        import timm
        from timm.models import FeatureInfo

        stem: dict[str, Any] = {"stem_type": "deep", "stem_width": 32} if deep_stem else {}
        body = timm.create_model(
            name,
            pretrained=False,
            features_only=True,
            out_indices=out_indices,
            output_stride=output_stride,
            **stem,
        )
        info = body.feature_info  # typed as a plain Module attribute: narrow it
        assert isinstance(info, FeatureInfo), "features_only models carry a FeatureInfo"
        super().__init__(body, tuple(info.channels()), tuple(info.reduction()))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)


class MiTBackbone(Backbone):
    """A Mix Transformer (SegFormer) encoder from segmentation-models-pytorch."""

    def __init__(self, name: str = "mit_b1") -> None:
        from segmentation_models_pytorch.encoders import get_encoder

        body = get_encoder(name, in_channels=3, depth=5, weights=None)
        super().__init__(body, tuple(body.out_channels[2:]), (4, 8, 16, 32))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # smp returns [input, empty stride-2 map, stride 4, 8, 16, 32]
        return self.body(x)[2:]


def _resnet(name: str, deep_stem: bool = False) -> Callable[..., Backbone]:
    def build(**kw: Any) -> Backbone:
        return ResNetBackbone(name, deep_stem=deep_stem, **kw)

    return build


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "resnet18": _resnet("resnet18"),
    "resnet18_v1c": _resnet("resnet18", deep_stem=True),
    "resnet50": _resnet("resnet50"),
    "resnext101_32x4d": _resnet("resnext101_32x4d"),
    "mit_b1": lambda: MiTBackbone("mit_b1"),
}


def build_backbone(name: str, weights: str | os.PathLike[str] | None = None, **kw: Any) -> Backbone:
    """Build backbone ``name`` (a key of ``BACKBONES``; ``kw`` such as ``out_indices`` go to
    ResNets), loading ``weights`` from a local file."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    try:
        backbone = BACKBONES[name](**kw)
    except TypeError as err:
        raise ConfigError(f"backbone {name!r} does not take {sorted(kw)}: {err}") from err
    if weights is not None:
        load_backbone_weights(backbone, weights)
    return backbone


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a backbone state dict from a ``.safetensors`` or PyTorch file (tensors only, no
    pickled code; ``{"state_dict": …}`` / ``{"model": …}`` unwrapped)."""
    return read_tensors(path, "backbone weights", "give a local .safetensors or PyTorch state dict")


def _plain_key(key: str) -> str:
    """``key`` without wrapper prefixes, with mmcv V1c stem names in timm's spelling."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key.removeprefix(prefix), True
    for mmcv, timm_name in _V1C_STEM.items():
        if key.startswith(mmcv):
            return timm_name + key.removeprefix(mmcv)
    return key


def load_backbone_weights(backbone: Backbone, weights: str | os.PathLike[str]) -> int:
    """Load a local classification or backbone state dict into ``backbone.body`` (see the
    module docstring for the key rules); returns how many tensors were loaded."""
    state = {
        _plain_key(k): v
        for k, v in read_state_dict(weights).items()
        if not _plain_key(k).startswith(_CLASSIFIER_PREFIXES)
    }
    own = backbone.body.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise ConfigError(
            f"weights {weights} do not fit this backbone: {len(missing)} of its {len(own)} "
            f"tensors are missing (e.g. {missing[0]}); give a state dict of the same backbone"
        )
    for key, value in own.items():
        if key in state and state[key].shape != value.shape:
            raise ConfigError(
                f"weights {weights} do not fit this backbone: {key} has shape "
                f"{tuple(state[key].shape)}, the backbone needs {tuple(value.shape)}; give a "
                f"state dict of the same backbone"
            )
    usable = {k: state[k] for k in own if k in state}
    # nn.Module's own loader: smp encoders override load_state_dict without ``strict``
    nn.Module.load_state_dict(backbone.body, usable, strict=False)
    return len(usable)


def load_pretrained(model: nn.Module, weights: str | os.PathLike[str]) -> int:
    """Load ``weights`` into every :class:`Backbone` of ``model``; the tensors loaded."""
    backbones = [m for m in model.modules() if isinstance(m, Backbone)]
    if not backbones:
        raise ConfigError(
            f"backbone weights {weights}: this detector has its own encoder, not a pretrained "
            f"backbone; drop --backbone-weights or choose a backbone-based detector"
        )
    return sum(load_backbone_weights(b, weights) for b in backbones)
