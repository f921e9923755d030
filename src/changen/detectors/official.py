"""Load the official ChangeStar (1×96) checkpoints into :class:`ChangeStar`.

The official release (repository Z-Zheng/Changen: ``changestar_1x96.py``, configs
``cstar_{r18,mitb1}_farseg_d96``; four fine-tuned checkpoints on LEVIR-CD / S2Looking) builds
an ``ever`` ``EncoderDecoder``: ``encoder`` = ``SiameseFarSegEncoder`` (ResNet, key prefix
``encoder.resnet.``) or ``SiameseMiTFarSegEncoder`` (SegFormer MiT, ``encoder.features.``),
then ``encoder.fpn`` / ``encoder.fsr`` / ``encoder.dec``; ``decoder`` = ``ChangeMixinBiSupN1``
(one ``ConvBlock``: conv 3×3 no bias, BN, ReLU, no temporal symmetry); ``head`` =
``ConvUpsampleHead`` (1×1 conv with bias, ×4 bilinear). Its checkpoints store the weights
under ``"model"``, possibly with a ``module.`` prefix. Our modules keep the official nesting,
so the conversion is the key-rename table ``RENAMES`` below; build the target model as
``ChangeStar(backbone, symmetric=False)`` to reproduce the official outputs.
"""

from __future__ import annotations

import os
import re

import torch

from changen.detectors.changestar import ChangeStar
from changen.engine.weights import read_tensors
from changen.errors import FormatError

_HINT = (
    "give the official .pth checkpoint as released (tensors only) or its state dict as .safetensors"
)

#: (official key pattern, our key template), applied in order; the first match wins.
RENAMES: tuple[tuple[str, str], ...] = (
    (r"^encoder\.(?:resnet|features)\.", "encoder.backbone.body."),
    (r"^encoder\.fpn\.fpn_inner(\d)\.0\.", "encoder.fpn.lateral.{0}."),
    (r"^encoder\.fpn\.fpn_layer(\d)\.0\.", "encoder.fpn.output.{0}."),
    (r"^encoder\.fsr\.scene_encoder\.", "encoder.relation.scene."),
    (r"^encoder\.fsr\.content_encoders\.", "encoder.relation.content."),
    (r"^encoder\.fsr\.feature_reencoders\.", "encoder.relation.reencode."),
    (r"^encoder\.dec\.blocks\.", "encoder.decoder.levels."),
    (r"^decoder\.conv\.", "mixin.layers.0."),
    (r"^head\.change_conv\.0\.", "mixin.classifier."),
)


def convert_key(key: str) -> str:
    """Our parameter name for official key ``key`` (FPN levels are 1-based there, 0-based here)."""
    for pattern, template in RENAMES:
        match = re.match(pattern, key)
        if match:
            prefix = template.format(*(int(g) - 1 for g in match.groups()))
            return prefix + key[match.end() :]
    raise FormatError(
        f"official ChangeStar key {key!r} is not in the known layout; "
        "is this a ChangeStar 1x96 checkpoint from Z-Zheng/Changen?"
    )


def convert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official state dict (``module.`` prefixes removed) to our key layout."""
    return {convert_key(k.removeprefix("module.")): v for k, v in state.items()}


def read_official(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict of an official checkpoint file: ``.safetensors``, or a torch file read with
    ``weights_only=True`` (its ``"model"`` / ``"state_dict"`` wrapper removed).

    A pickle holding anything but tensors and plain values is refused, never run; that and
    any unreadable file is a one-line :class:`ConfigError` naming the file.
    """
    return read_tensors(path, "official weights", _HINT)


def load_official_changestar(
    state_dict_or_path: dict[str, torch.Tensor] | str | os.PathLike[str], model: ChangeStar
) -> ChangeStar:
    """Load an official ChangeStar 1×96 checkpoint (file or state dict) into ``model``, strictly.

    ``model`` must have the checkpoint's backbone, one mixin layer of 96 channels and no
    semantic head; every parameter and buffer of ``model`` is set or a ``FormatError`` names
    what is missing, extra or of the wrong shape.
    """
    if isinstance(state_dict_or_path, dict):
        state = state_dict_or_path
        nested = state.get("model")
        if isinstance(nested, dict):
            state = nested
    else:
        state = read_official(state_dict_or_path)
    converted = convert_state_dict(state)
    own = model.state_dict()
    missing = sorted(set(own) - set(converted))
    unexpected = sorted(set(converted) - set(own))
    if missing or unexpected:
        raise FormatError(
            f"official checkpoint does not fit this ChangeStar ({model.config['backbone']}): "
            f"missing {missing[:3]} ({len(missing)}), unexpected {unexpected[:3]} "
            f"({len(unexpected)}); build the model with the checkpoint's backbone, "
            "mixin_layers=1, mixin_channels=96 and no semantic head"
        )
    for key, value in converted.items():
        if own[key].shape != value.shape:
            raise FormatError(
                f"official weight {key!r} has shape {tuple(value.shape)}, the model expects "
                f"{tuple(own[key].shape)}; check the backbone and channel widths"
            )
    model.load_state_dict(converted, strict=True)
    return model
