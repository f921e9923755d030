"""What a diffusion checkpoint is: a conditional denoiser of one family, its noise schedule,
its label encoding and its latent space — one record for the trainer and the synthesizer.

Families (:data:`FAMILIES`, name → ``"module:function"`` building the network from its config
dict) share one call, ``network(x_t, t, labels)`` with labels at image resolution (see
:mod:`changen.synthesis.diffusion.labels`), so training, sampling and generation never ask
which family they hold; a new family is one module plus one line here.

A checkpoint folder (kind :data:`KIND`) holds ``config.json`` with the
:class:`DiffusionModelConfig` under ``"diffusion"``, ``denoiser.safetensors`` and
``denoiser_ema.safetensors`` (what sampling uses), and for a resumable run ``state.pt``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from changen.engine.checkpoint import load_config, load_weights
from changen.errors import ConfigError, DataError
from changen.synthesis.diffusion.labels import LabelSpec
from changen.synthesis.diffusion.latent import LatentSpace, open_latent_space
from changen.synthesis.diffusion.rsdit import RSDiT
from changen.synthesis.diffusion.schedule import ScheduleConfig

KIND = "changen_diffusion"
FAMILIES: dict[str, str] = {
    "rsdit": "changen.synthesis.diffusion.rsdit:build_rsdit",
    "ldm": "changen.synthesis.diffusion.unet:build_unet",
}
"""Family name → ``"module:function"``; ``function(network: dict) -> nn.Module``."""


@dataclass(frozen=True)
class DiffusionModelConfig:
    """``family`` (see :data:`FAMILIES`) and its ``network`` config dict; the training
    ``schedule``; ``labels`` (encoding and class count); ``latent`` (``"pixel"`` or a diffusers
    autoencoder folder, see :func:`~changen.synthesis.diffusion.latent.open_latent_space`);
    ``image_size`` the crop side it was trained at; ``class_ids`` the taxonomy id of each
    model class (:func:`changen.synthesis.classes.model_class_ids`) and ``taxonomy`` its dict."""

    family: str
    network: dict[str, Any]
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    labels: LabelSpec = field(default_factory=LabelSpec)
    latent: str = "pixel"
    image_size: int = 256
    class_ids: tuple[int, ...] = ()
    taxonomy: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(
                f"unknown diffusion family {self.family!r}; choose one of {', '.join(FAMILIES)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "network": dict(self.network),
            "schedule": self.schedule.to_dict(),
            "labels": self.labels.to_dict(),
            "latent": self.latent,
            "image_size": self.image_size,
            "class_ids": list(self.class_ids),
            "taxonomy": dict(self.taxonomy),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiffusionModelConfig:
        return cls(
            family=str(data["family"]),
            network=dict(data["network"]),
            schedule=ScheduleConfig.from_dict(data["schedule"]),
            labels=LabelSpec.from_dict(data["labels"]),
            latent=str(data["latent"]),
            image_size=int(data["image_size"]),
            class_ids=tuple(int(i) for i in data.get("class_ids", ())),
            taxonomy=dict(data.get("taxonomy", {})),
        )


def build_denoiser(config: DiffusionModelConfig) -> nn.Module:
    """The family's network, freshly initialised."""
    module, name = FAMILIES[config.family].split(":")
    builder: Callable[[dict[str, Any]], nn.Module] = getattr(importlib.import_module(module), name)
    return builder(config.network)


def checkpoint_config(config: DiffusionModelConfig, **extra: Any) -> dict[str, Any]:
    """The ``config.json`` of a diffusion checkpoint (``extra``: run records, e.g. the
    training config)."""
    return {"kind": KIND, "diffusion": config.to_dict(), **extra}


def read_model_config(path: str | os.PathLike[str]) -> DiffusionModelConfig:
    """The :class:`DiffusionModelConfig` of a diffusion checkpoint folder."""
    config = load_config(path)
    if config.get("kind") != KIND:
        raise ConfigError(
            f"{path}: checkpoint kind is {config.get('kind')!r}, not {KIND!r}; give the "
            f"folder of a `changen train diffusion` checkpoint"
        )
    try:
        return DiffusionModelConfig.from_dict(config["diffusion"])
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path}: malformed diffusion checkpoint config ({err!r})") from None


def load_denoiser(
    path: str | os.PathLike[str], ema: bool = True, device: torch.device | str = "cpu"
) -> tuple[nn.Module, DiffusionModelConfig, LatentSpace]:
    """The (EMA) denoiser of a checkpoint in eval mode, its config and its latent space."""
    config = read_model_config(path)
    network = build_denoiser(config)
    load_weights(path, {"denoiser_ema" if ema else "denoiser": network})
    latent = open_latent_space(config.latent, device)
    return network.requires_grad_(False).eval().to(device), config, latent


def conditioned(network: nn.Module, labels: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """``denoiser(x_t, t)`` for a fixed label map: what the sampler calls. RS-DiT embeds the
    labels once for all steps."""
    if not isinstance(network, RSDiT):
        return lambda x, t: network(x, t, labels)
    rsdit = network
    tokens: dict[tuple[int, int], Tensor] = {}

    def denoise(x: Tensor, t: Tensor) -> Tensor:
        grid = rsdit.token_grid(x)
        if grid not in tokens:
            tokens[grid] = rsdit.embed_labels(labels, grid)
        return rsdit(x, t, label_tokens=tokens[grid])

    return denoise
