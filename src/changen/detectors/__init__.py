"""Change detectors: ChangeStar (FarSeg + ChangeMixin), the Daudt et al. baselines and the
comparison detectors of ChangeAnywhere's table (SNUNet-CD, BiT, ChangerEx, ChangeFormer,
LightCDNet).

Every detector maps two float (B, 3, H, W) tensors (H, W divisible by 32) to a
:class:`ChangeOutput` of logits. ``MODELS`` is a plain dict of builders; ``build_detector``
looks one up by name and passes the keyword arguments on. A model's ``config`` holds the
arguments that rebuild it: ``build_detector(name, **model.config)``. ``KINDS`` maps a
checkpoint ``kind`` to the ``"module:function"`` that loads it; :func:`load_detector` takes a
checkpoint or run folder and dispatches on its kind.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from torch import nn

from changen.detectors.backbones import BACKBONES, build_backbone, load_pretrained
from changen.detectors.bit import BiT
from changen.detectors.changeformer import ChangeFormer
from changen.detectors.changemixin import ChangeMixin, ChangeOutput
from changen.detectors.changer import Changer
from changen.detectors.changestar import ChangeStar
from changen.detectors.lightcdnet import LightCDNet
from changen.detectors.official import load_official_changestar
from changen.detectors.siamese import FCNet, UNetEF
from changen.detectors.snunet import SNUNet
from changen.engine.checkpoint import checkpoint_kind
from changen.engine.run import resolve_checkpoint
from changen.errors import ConfigError, DataError


def _changestar_1x96(backbone: str = "resnet18", **kw: Any) -> ChangeStar:
    return ChangeStar(backbone, **{"mixin_layers": 1, "mixin_channels": 96, **kw})


def _changestar_4x16(backbone: str = "resnet18", **kw: Any) -> ChangeStar:
    return ChangeStar(backbone, **{"mixin_layers": 4, "mixin_channels": 16, **kw})


def _fc(fusion: str) -> Callable[..., FCNet]:
    def build(backbone: str | None = None, **kw: Any) -> FCNet:
        if backbone is not None:
            raise ConfigError(f"FC-{fusion} has its own encoder; do not pass backbone={backbone!r}")
        return FCNet(fusion, **kw)  # type: ignore[arg-type]

    return build


def _own_encoder(name: str, cls: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """A builder of a detector with its own (non-pretrained) encoder: no ``backbone``."""

    def build(backbone: str | None = None, **kw: Any) -> nn.Module:
        if backbone is not None:
            raise ConfigError(f"{name} has its own encoder; do not pass backbone={backbone!r}")
        return cls(**kw)

    return build


MODELS: dict[str, Callable[..., nn.Module]] = {
    "changestar_1x96": _changestar_1x96,
    "changestar_4x16": _changestar_4x16,
    "fc_ef": _fc("early"),
    "fc_siam_conc": _fc("conc"),
    "fc_siam_diff": _fc("diff"),
    "unet_ef": lambda backbone="resnet18", **kw: UNetEF(backbone, **kw),
    "snunet": _own_encoder("SNUNet-CD", SNUNet),
    "bit": lambda backbone="resnet18_v1c", **kw: BiT(backbone, **kw),
    "changer": lambda backbone="resnet18_v1c", **kw: Changer(backbone, **kw),
    "changeformer": lambda backbone="mit_b1", **kw: ChangeFormer(backbone, **kw),
    "lightcdnet": _own_encoder("LightCDNet", LightCDNet),
}


KINDS: dict[str, str] = {
    "changen_detector": "changen.detectors.train:load_trained",
}


def load_detector(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """The detector of a checkpoint (or run folder) in eval mode, and its checkpoint config."""
    folder = resolve_checkpoint(path)
    kind = checkpoint_kind(folder)
    if kind not in KINDS:
        raise DataError(
            f"{folder}: a {kind!r} checkpoint, not a change detector (kinds: {', '.join(KINDS)})"
        )
    module, name = KINDS[kind].split(":")
    loader = getattr(importlib.import_module(module), name)
    return loader(folder)


def build_detector(name: str, backbone: str | None = None, **kw: Any) -> nn.Module:
    """Build detector ``name`` (a key of ``MODELS``); ``backbone=None`` keeps its default."""
    if name not in MODELS:
        raise ConfigError(f"unknown detector {name!r}; choose one of {sorted(MODELS)}")
    if backbone is not None:
        kw["backbone"] = backbone
    try:
        return MODELS[name](**kw)
    except TypeError as err:
        raise ConfigError(f"bad arguments for detector {name!r}: {err}") from err


__all__ = [
    "BACKBONES",
    "KINDS",
    "MODELS",
    "BiT",
    "ChangeFormer",
    "ChangeMixin",
    "ChangeOutput",
    "ChangeStar",
    "Changer",
    "FCNet",
    "LightCDNet",
    "SNUNet",
    "UNetEF",
    "build_backbone",
    "build_detector",
    "load_detector",
    "load_official_changestar",
    "load_pretrained",
]
