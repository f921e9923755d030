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

:func:`open_latent_space` takes ``"pixel"``, such a folder, or an autoencoder checkpoint
``changen train autoencoder`` wrote (a ``step-N``/``last`` folder, or its run folder for the
newest checkpoint): their diffusers model is the checkpoint's ``autoencoder/`` subfolder
(:mod:`changen.synthesis.diffusion.autoencoder`). :meth:`LatentSpace.describe` is what
checkpoints and dataset provenance record.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from changen.errors import ConfigError, DataError


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
            self.model = cls.from_pretrained(
                self.folder, local_files_only=True, low_cpu_mem_usage=False
            )
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


def diffusers_folder(spec: str | os.PathLike[str]) -> Path:
    """The diffusers folder ``spec`` stands for: itself, or the ``autoencoder/`` subfolder of
    the changen autoencoder checkpoint it is (or whose run folder it is)."""
    from changen.engine.checkpoint import checkpoint_kind
    from changen.engine.run import resolve_checkpoint
    from changen.synthesis.diffusion.autoencoder import DIFFUSERS_FOLDER, KIND

    folder = Path(spec)
    if not (folder / "checkpoints").is_dir() and not _names_a_kind(folder / "config.json"):
        return folder
    try:
        checkpoint = resolve_checkpoint(folder)
    except DataError:
        raise ConfigError(
            f"{folder}: holds no checkpoint yet; give a run of `changen train autoencoder` "
            f"that saved one, a diffusers autoencoder folder, or 'pixel'"
        ) from None
    kind = checkpoint_kind(checkpoint)
    if kind != KIND:
        raise ConfigError(
            f"{checkpoint}: a {kind} checkpoint, not a latent autoencoder; give one that "
            f"`changen train autoencoder` wrote, a diffusers autoencoder folder, or 'pixel'"
        )
    inner = checkpoint / DIFFUSERS_FOLDER
    if not (inner / "config.json").is_file():
        raise ConfigError(
            f"{checkpoint}: autoencoder checkpoint without its {DIFFUSERS_FOLDER}/ folder (a "
            f"save cut short); use another checkpoints/step-<N>, or resume the run"
        )
    return inner


def _names_a_kind(config: Path) -> bool:
    """Whether ``config`` is a changen checkpoint config (it names a ``kind``)."""
    try:
        return "kind" in json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def open_latent_space(spec: str, device: torch.device | str = "cpu") -> LatentSpace:
    """``"pixel"``, a local diffusers autoencoder folder, or a changen autoencoder checkpoint
    or run folder (see the module docstring)."""
    if spec == "pixel":
        return PixelSpace()
    if not Path(spec).is_dir():
        raise ConfigError(
            f"latent space {spec!r}: give 'pixel', the folder of a diffusers AutoencoderKL / "
            f"VQModel (save_pretrained) or a `changen train autoencoder` run"
        )
    return DiffusersAutoencoder(diffusers_folder(spec), device)
