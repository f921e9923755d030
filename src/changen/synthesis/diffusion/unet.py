"""ChangeAnywhere's semantic latent diffusion network: a UNet conditioned on the mask by
concatenation.

The paper conditions a latent diffusion model (Rombach et al.) on the semantic mask, "through
operations like concatenation or attention", trained with the plain ε-loss (its Eq. 4). Here
the label map (see :mod:`changen.synthesis.diffusion.labels`; at image resolution, like every
family's) is resampled to the latent grid and **concatenated** to x_t, and a diffusers
``UNet2DModel`` predicts ε (as many channels out as the latent has; no learned variance, so
the schedule has ``learn_sigma=False``). How the map reaches the latent grid
(``label_resample``):

- ``nearest`` — the pixel at the centre of each latent cell (one-hot and index maps: a cell
  keeps one class, the map stays a valid encoding);
- ``max`` — max-pooling (binary masks and contour maps: a cell is on when any pixel it covers
  is, so thin outlines survive the reduction);
- ``area`` — average-pooling (the class fractions of each cell, close to the bilinear
  downsampling of latent diffusion's ``SpatialRescaler``).

:func:`preset_config` picks ``nearest`` or ``max`` from the label encoding.

A network config dict (the family's ``network`` in a checkpoint) holds ``in_channels`` (the
latent's channels; the UNet itself sees ``in_channels + label_channels``), ``label_channels``,
``label_resample``, optionally ``learn_sigma`` (false: ε only) and any other ``UNet2DModel``
argument; block types default to plain (attention-free) down and up blocks, one per entry of
``block_out_channels``.

Presets (:data:`PRESETS`): ``tiny`` and ``small`` for CPU work, and ``paper``, latent
diffusion's semantic-synthesis LDM-VQ-f4 UNet (CompVis ``models/ldm/semantic_synthesis256/
config.yaml``: ``model_channels`` 128, ``channel_mult`` (1, 4, 8), ``num_res_blocks`` 2,
``num_heads`` 8, attention only in the middle block — its ``attention_resolutions`` 32, 16, 8
are downsampling rates its three levels (1, 2, 4) never reach; lr 1e-6, the rate ChangeAnywhere
reports). That config feeds the one-hot map through a learned 1×1 conv to 3 channels; here the
resampled map is concatenated as it is. Its noise schedule is :data:`PAPER_SCHEDULE`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.unets.unet_2d import UNet2DModel
from torch import Tensor, nn

from changen.errors import ConfigError
from changen.synthesis.diffusion.labels import LabelSpec
from changen.synthesis.diffusion.schedule import ScheduleConfig

LABEL_RESAMPLES = ("nearest", "max", "area")
RESAMPLE_OF_ENCODING = {"onehot": "nearest", "index": "nearest", "binary": "max", "contour": "max"}
"""The ``label_resample`` :func:`preset_config` gives each label encoding."""

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "block_out_channels": (16, 32),
        "layers_per_block": 1,
        "add_attention": False,
        "norm_num_groups": 8,
    },
    "small": {
        "block_out_channels": (64, 128, 256),
        "layers_per_block": 2,
        "attention_head_dim": 32,
    },
    "paper": {
        "block_out_channels": (128, 512, 1024),
        "layers_per_block": 2,
        "attention_head_dim": 128,
    },
}
"""Preset name → ``UNet2DModel`` sizes (see the module for ``paper``'s source)."""

PAPER_SCHEDULE = ScheduleConfig(
    beta_start=0.0015, beta_end=0.0205, beta_schedule="scaled_linear", learn_sigma=False
)
"""Latent diffusion's semantic-synthesis schedule: its ``linear`` β from 0.0015 to 0.0205 is
linear in √β, diffusers' ``scaled_linear``; 1000 steps, ε-prediction."""

_UNET_ARGS = frozenset(inspect.signature(UNet2DModel.__init__).parameters) - {"self"}
_OWN_ARGS = frozenset({"in_channels", "label_channels", "label_resample", "learn_sigma"})


def preset_config(preset: str, labels: LabelSpec | None = None, **overrides: Any) -> dict[str, Any]:
    """The network config dict of a preset, its label channels and resampling taken from
    ``labels`` when given, then ``overrides`` (e.g. ``in_channels``, the latent's channels)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown UNet preset {preset!r}; choose one of {', '.join(PRESETS)}")
    network: dict[str, Any] = {"in_channels": 3, "label_channels": 1, **PRESETS[preset]}
    if labels is not None:
        network["label_channels"] = labels.channels
        network["label_resample"] = RESAMPLE_OF_ENCODING[labels.encoding]
    return {**network, **overrides}


def resample_labels(labels: Tensor, size: tuple[int, int], how: str) -> Tensor:
    """A label map (N, C, H, W) on a ``size`` grid, by ``how`` (see the module)."""
    if labels.shape[-2:] == size:
        return labels
    if how == "max":
        return F.adaptive_max_pool2d(labels, size)
    if how == "area":
        return F.adaptive_avg_pool2d(labels, size)
    (big_h, big_w), (h, w) = labels.shape[-2:], size
    if big_h % h == 0 and big_w % w == 0:  # whole factors: the centre pixels, as a view
        fy, fx = big_h // h, big_w // w
        return labels[..., fy // 2 :: fy, fx // 2 :: fx]
    return F.interpolate(labels, size=size, mode="nearest-exact")


class SemanticUNet(nn.Module):
    """``network(x_t, t, labels)`` → ε̂: the label map resampled to x_t's grid, concatenated
    to it, through a ``UNet2DModel`` (see the module)."""

    def __init__(self, network: dict[str, Any]) -> None:
        super().__init__()
        unknown = sorted(set(network) - _UNET_ARGS - _OWN_ARGS)
        if unknown or "out_channels" in network:
            extra = unknown or ["out_channels"]
            raise ConfigError(
                f"UNet settings {extra} are not UNet2DModel arguments this family takes "
                f"(out_channels is the latent's); remove them"
            )
        args = dict(network)
        if args.pop("learn_sigma", False):
            raise ConfigError(
                "the ldm family predicts ε only (ChangeAnywhere's Eq. 4); set learn_sigma false"
            )
        self.latent_channels = int(args.pop("in_channels", 3))
        self.label_channels = int(args.pop("label_channels", 1))
        self.label_resample = str(args.pop("label_resample", "nearest"))
        if self.label_resample not in LABEL_RESAMPLES:
            raise ConfigError(
                f"label_resample {self.label_resample!r}: choose one of "
                f"{', '.join(LABEL_RESAMPLES)}"
            )
        if min(self.latent_channels, self.label_channels) < 1:
            raise ConfigError("UNet in_channels and label_channels must be at least 1")
        levels = len(args.get("block_out_channels", ()))
        args.setdefault("down_block_types", ("DownBlock2D",) * levels)
        args.setdefault("up_block_types", ("UpBlock2D",) * levels)
        args = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
        try:
            self.unet = UNet2DModel(
                in_channels=self.latent_channels + self.label_channels,
                out_channels=self.latent_channels,
                **args,
            )
        except (ValueError, TypeError) as e:
            raise ConfigError(f"UNet settings do not build a UNet2DModel: {e}") from None

    def condition(self, x: Tensor, labels: Tensor) -> Tensor:
        """x_t with the label map on its grid concatenated (what the UNet sees)."""
        if labels.shape[1] != self.label_channels:
            raise ConfigError(
                f"label map has {labels.shape[1]} channels, the UNet takes "
                f"{self.label_channels}; encode masks with the checkpoint's label spec"
            )
        cond = resample_labels(labels.to(x.dtype), (x.shape[-2], x.shape[-1]), self.label_resample)
        layout = torch.channels_last if _channels_last(x) else torch.contiguous_format
        return torch.cat([x, cond], dim=1).contiguous(memory_format=layout)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        return self.unet(self.condition(x, labels), t).sample


def _channels_last(x: Tensor) -> bool:
    """Whether ``x`` is laid out channels-last (and not also plainly contiguous)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def build_unet(network: dict[str, Any]) -> SemanticUNet:
    """A semantic UNet from its config dict (the diffusion family builder, see
    :data:`changen.synthesis.diffusion.model.FAMILIES`)."""
    return SemanticUNet(network)
