"""The latent space a diffusion model works in: pixel space, or a diffusers autoencoder.

Every latent space maps images in [−1, 1] (N, 3, H, W) to latents (N, C, H/f, W/f) and back,
scaled so that latents have roughly unit variance (the autoencoder's ``scaling_factor``, as
Stable Diffusion and DiT use it). Two kinds:

- :class:`PixelSpace` — the identity (f = 1, C = 3): tiny CPU models, and tests;
- :class:`DiffusersAutoencoder` — any local diffusers-format ``AutoencoderKL`` or ``VQModel``
  folder (``config.json`` + weights), e.g. a Stable Diffusion VAE a user already has, or one
  changen trained; loaded with ``local_files_only`` (never downloaded). A VQ model's latents
  are its pre-quantisation features; decoding quantises them, as the VQGAN of latent
  diffusion does.

:func:`open_latent_space` takes ``"pixel"`` or such a folder; :meth:`LatentSpace.describe`
is what checkpoints and dataset provenance record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from changen.errors import ConfigError


class LatentSpace(Protocol):
    """Images ↔ latents; ``factor`` the spatial reduction, ``channels`` the latent channels."""

    factor: int
    channels: int

    def encode(self, images: Tensor) -> Tensor: ...

    def decode(self, latents: Tensor) -> Tensor: ...

    def describe(self) -> dict[str, Any]: ...


class PixelSpace:
    """The identity latent space (f = 1, 3 channels)."""

    factor = 1
    channels = 3

    def encode(self, images: Tensor) -> Tensor:
        return images

    def decode(self, latents: Tensor) -> Tensor:
        return latents

    def describe(self) -> dict[str, Any]:
        return {"kind": "pixel"}

    def to(self, device: torch.device | str) -> PixelSpace:
        return self


AUTOENCODERS = ("AutoencoderKL", "VQModel")
"""The diffusers classes a latent-space folder may hold."""


class DiffusersAutoencoder:
    """A local diffusers ``AutoencoderKL`` or ``VQModel`` folder as a latent space (frozen,
    eval mode)."""

    def __init__(self, folder: str | os.PathLike[str], device: torch.device | str = "cpu") -> None:
        import diffusers

        self.folder = Path(folder)
        config_path = self.folder / "config.json"
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            name = config["_class_name"]
        except (OSError, ValueError, KeyError, TypeError):
            raise ConfigError(
                f"{self.folder}: not a diffusers autoencoder folder (config.json with "
                f"_class_name); give 'pixel' or a folder saved by save_pretrained"
            ) from None
        if name not in AUTOENCODERS:
            raise ConfigError(
                f"{config_path}: a {name}, not an autoencoder; give an AutoencoderKL or VQModel"
            )
        self.kind = name
        cls = getattr(diffusers, name)
        try:
            self.model = cls.from_pretrained(self.folder, local_files_only=True)
        except (OSError, ValueError, RuntimeError) as e:
            raise ConfigError(
                f"{self.folder}: cannot load the {name} ({type(e).__name__}); check its files"
            ) from None
        self.model.requires_grad_(False).eval().to(device)
        self.scale = float(self.model.config.scaling_factor)
        self.factor = 2 ** (len(self.model.config.block_out_channels) - 1)
        self.channels = int(
            getattr(self.model.config, "vq_embed_dim", None) or self.model.config.latent_channels
        )

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """Latents of images in [−1, 1]: the posterior mean of a KL model (deterministic),
        the pre-quantisation features of a VQ model, times the scaling factor."""
        if self.kind == "AutoencoderKL":
            latents = self.model.encode(images).latent_dist.mean
        else:
            latents = self.model.encode(images).latents
        return latents * self.scale

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        return self.model.decode(latents / self.scale).sample.clamp(-1, 1)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "folder": str(self.folder.resolve()), "factor": self.factor}

    def to(self, device: torch.device | str) -> DiffusersAutoencoder:
        self.model.to(device)
        return self


def open_latent_space(spec: str, device: torch.device | str = "cpu") -> LatentSpace:
    """``"pixel"`` or a local diffusers autoencoder folder."""
    if spec == "pixel":
        return PixelSpace()
    if not Path(spec).is_dir():
        raise ConfigError(
            f"latent space {spec!r}: give 'pixel' or the folder of a diffusers AutoencoderKL / "
            f"VQModel (save_pretrained)"
        )
    return DiffusersAutoencoder(spec, device)
