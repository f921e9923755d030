"""Latent autoencoders changen trains itself: presets, the diffusers models, their losses.

Two kinds, both diffusers models so that any diffusion family opens them as a latent space
(:mod:`changen.synthesis.diffusion.latent`):

- ``kl`` — :class:`diffusers.AutoencoderKL`, f = 8 and 4 latent channels in the ``full``
  preset (Stable Diffusion's VAE widths);
- ``vq`` — :class:`diffusers.VQModel`, f = 4, 3 latent channels and 8192 codes in the
  ``full`` preset (latent diffusion's VQ-f4, the VQGAN of ChangeAnywhere).

Each kind also has a ``tiny`` preset (widths 8–16) for CPU runs and tests.

Losses need no downloaded weights (no LPIPS): L1 plus an optional L1 on image gradients
(:func:`reconstruction_loss`; it stands in, cheaply, for the perceptual term's pull towards
sharp edges), the KL term of the posterior (``kl``) or diffusers' codebook + commitment loss
(``vq``, the legacy taming weighting: commitment 1, codebook β = 0.25), and an optional
patch-GAN term: a small :class:`PatchDiscriminator` with hinge losses (:func:`hinge_d_loss`),
switched on after ``disc_start`` steps and weighted, as in latent diffusion, by
``disc_weight`` × the adaptive weight ‖∇ rec‖ / ‖∇ gan‖ at the decoder's last layer
(:func:`adaptive_weight`). :class:`AutoencoderObjective` computes all of it in one module
forward (what Fabric wraps).

A checkpoint of a trained autoencoder (``kind`` :data:`KIND`) carries a diffusers folder
``autoencoder/`` beside the engine's files; :func:`write_diffusers_folder` writes it, with
the ``scaling_factor`` measured on held-out crops (:func:`latent_scale`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from changen.errors import ConfigError

KIND = "changen_autoencoder"
"""The checkpoint ``kind`` of an autoencoder changen trained."""

DIFFUSERS_FOLDER = "autoencoder"
"""The diffusers-format subfolder of such a checkpoint."""

WEIGHTS_NAME = "autoencoder.safetensors"
"""The engine's weights file of the autoencoder (the diffusers folder links to it)."""

Kind = Literal["kl", "vq"]
KINDS: tuple[Kind, ...] = ("kl", "vq")


@dataclass(frozen=True)
class AutoencoderConfig:
    """The architecture of a latent autoencoder and its patch discriminator.

    ``block_out_channels`` sets the widths (one down/up block each; factor
    ``2 ** (len - 1)``), ``layers_per_block`` the ResNet layers per block,
    ``latent_channels`` the latent depth, ``norm_num_groups`` the GroupNorm groups (must
    divide every width), ``mid_attention`` the self-attention of the mid block,
    ``codebook`` the VQ codebook size (``vq`` only), ``disc_channels`` / ``disc_layers``
    the patch discriminator's base width and stride-2 layers.
    """

    kind: Kind
    block_out_channels: tuple[int, ...]
    layers_per_block: int
    latent_channels: int
    norm_num_groups: int
    mid_attention: bool = True
    codebook: int = 0
    disc_channels: int = 64
    disc_layers: int = 3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"autoencoder kind {self.kind!r}: choose kl or vq")
        bad = [w for w in self.block_out_channels if w % self.norm_num_groups]
        if bad or not self.block_out_channels:
            raise ConfigError(
                f"autoencoder widths {list(self.block_out_channels)}: each must be a multiple "
                f"of norm_num_groups={self.norm_num_groups}"
            )
        if self.kind == "vq" and self.codebook < 2:
            raise ConfigError(
                f"a vq autoencoder needs a codebook of >= 2 codes, not {self.codebook}"
            )

    @property
    def factor(self) -> int:
        """Spatial reduction of the latents."""
        return 2 ** (len(self.block_out_channels) - 1)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["block_out_channels"] = list(self.block_out_channels)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AutoencoderConfig:
        values = dict(data)
        values["block_out_channels"] = tuple(values["block_out_channels"])
        return cls(**values)


PRESETS: dict[str, dict[str, AutoencoderConfig]] = {
    "kl": {
        "full": AutoencoderConfig("kl", (128, 256, 512, 512), 2, 4, 32),
        "tiny": AutoencoderConfig(
            "kl", (8, 16, 16, 16), 1, 4, 4, mid_attention=False, disc_channels=8, disc_layers=2
        ),
    },
    "vq": {
        "full": AutoencoderConfig("vq", (128, 256, 512), 2, 3, 32, codebook=8192),
        "tiny": AutoencoderConfig(
            "vq",
            (8, 16, 16),
            1,
            3,
            4,
            mid_attention=False,
            codebook=128,
            disc_channels=8,
            disc_layers=2,
        ),
    },
}
"""Presets by kind and name: ``full`` (SD VAE f8 / LDM VQ-f4) and ``tiny`` (CPU)."""


def preset(kind: str, name: str) -> AutoencoderConfig:
    """The preset ``name`` of ``kind``, with a one-line error naming the choices."""
    if kind not in PRESETS:
        raise ConfigError(f"--kind {kind!r}: choose one of {', '.join(KINDS)}")
    if name not in PRESETS[kind]:
        raise ConfigError(f"--preset {name!r}: choose one of {', '.join(PRESETS[kind])}")
    return PRESETS[kind][name]


def build_autoencoder(config: AutoencoderConfig) -> nn.Module:
    """The diffusers ``AutoencoderKL`` or ``VQModel`` of ``config`` (random weights)."""
    import diffusers

    n = len(config.block_out_channels)
    common: dict[str, Any] = {
        "down_block_types": ("DownEncoderBlock2D",) * n,
        "up_block_types": ("UpDecoderBlock2D",) * n,
        "block_out_channels": config.block_out_channels,
        "layers_per_block": config.layers_per_block,
        "latent_channels": config.latent_channels,
        "norm_num_groups": config.norm_num_groups,
        "mid_block_add_attention": config.mid_attention,
        "scaling_factor": 1.0,
    }
    model: Any
    if config.kind == "kl":
        model = diffusers.AutoencoderKL(**common)
    else:
        model = diffusers.VQModel(**common, num_vq_embeddings=config.codebook)
    return cast(nn.Module, model)  # a ModelMixin, which mypy cannot see is a Module


class Reconstruct(nn.Module):
    """One training pass of an autoencoder as a module (so that Fabric/DDP wrap a forward):
    ``forward(images, generator)`` → reconstruction, regulariser (KL, or codebook +
    commitment) and the VQ code indices (None for KL)."""

    def __init__(self, model: nn.Module, kind: Kind) -> None:
        super().__init__()
        self.model = model
        self.kind = kind

    def forward(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        model: Any = self.model  # diffusers models type their outputs loosely
        if self.kind == "kl":
            posterior = model.encode(images).latent_dist
            decoded = model.decode(posterior.sample(generator=generator)).sample
            return decoded, posterior.kl().mean(), None
        quant, loss, (_, _, indices) = model.quantize(model.encode(images).latents)
        decoded = model.decode(quant, force_not_quantize=True).sample
        return decoded, loss, indices.flatten()

    def last_layer(self) -> Tensor:
        """The decoder's output convolution weight (for :func:`adaptive_weight`)."""
        return self.model.decoder.conv_out.weight  # type: ignore[union-attr, return-value]


def reconstruction_loss(recon: Tensor, target: Tensor, grad_weight: float = 0.0) -> Tensor:
    """Mean L1, plus ``grad_weight`` × the mean L1 between horizontal and vertical image
    differences (edges)."""
    loss = (recon - target).abs().mean()
    if grad_weight > 0:
        for dim in (-1, -2):
            loss = loss + grad_weight * (recon.diff(dim=dim) - target.diff(dim=dim)).abs().mean()
    return loss


class PatchDiscriminator(nn.Module):
    """A PatchGAN discriminator (pix2pix / latent diffusion layout): 4×4 convolutions,
    ``layers`` of stride 2 doubling the width up to 8×, one of stride 1, then a 1-channel map
    of patch logits. GroupNorm (one group) instead of BatchNorm, so that a patch's logit does
    not depend on the rest of the batch."""

    def __init__(self, channels: int = 64, layers: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [
            nn.Conv2d(in_channels, channels, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        width = channels
        for i in range(1, layers + 1):
            out = channels * min(2**i, 8)
            stride = 2 if i < layers else 1
            blocks += [
                nn.Conv2d(width, out, 4, stride, 1, bias=False),
                nn.GroupNorm(1, out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width = out
        blocks.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)


def hinge_d_loss(real: Tensor, fake: Tensor) -> Tensor:
    """The discriminator's hinge loss on real and fake patch logits."""
    return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())


def hinge_g_loss(fake: Tensor) -> Tensor:
    """The autoencoder's adversarial loss: raise the fake patch logits."""
    return -fake.mean()


def adaptive_weight(rec_loss: Tensor, gan_loss: Tensor, last_layer: Tensor) -> Tensor:
    """Latent diffusion's balance of the GAN term: ‖∇ rec_loss‖ / ‖∇ gan_loss‖ at the
    decoder's last layer, clamped to [0, 10⁴] and detached."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_gan.norm() + 1e-4)).clamp(0.0, 1e4).detach()


@dataclass(frozen=True)
class LossWeights:
    """Weights of the autoencoder's loss terms (see the module docstring)."""

    grad: float = 0.1
    reg: float = 1e-6
    disc: float = 0.5
    adaptive: bool = True


class AutoencoderObjective(nn.Module):
    """The autoencoder's whole training loss as one module forward, so that Fabric / DDP
    wrap it and the adaptive weight's gradients are taken inside it (Fabric refuses any
    backward pass through a wrapped module's outputs but its own).

    ``forward(images, generator, disc)`` → the loss, its detached figures, the detached
    reconstruction and the VQ codes; ``disc`` (frozen by the caller) adds the GAN term.
    """

    def __init__(self, model: nn.Module, kind: Kind, weights: LossWeights) -> None:
        super().__init__()
        self.net = Reconstruct(model, kind)
        self.weights = weights

    def forward(
        self,
        images: Tensor,
        generator: torch.Generator | None = None,
        disc: nn.Module | None = None,
    ) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor | None]:
        w = self.weights
        recon, reg, codes = self.net(images, generator)
        rec_loss = reconstruction_loss(recon.float(), images.float(), w.grad)
        loss = rec_loss + w.reg * reg.float()
        figures = {"loss_rec": rec_loss.detach(), "loss_reg": reg.detach()}
        if disc is not None:
            g_loss = hinge_g_loss(disc(recon))
            weight = torch.tensor(w.disc, device=images.device)
            if w.adaptive:
                weight = weight * adaptive_weight(rec_loss, g_loss, self.net.last_layer())
            loss = loss + weight * g_loss
            figures |= {"loss_g": g_loss.detach(), "gan_weight": weight}
        figures["loss"] = loss.detach()
        return loss, figures, recon.detach(), None if codes is None else codes.detach()


def code_usage(indices: Tensor, codebook: int) -> dict[str, float]:
    """Codebook use of a batch of VQ indices: the share of codes used and the perplexity
    ``exp(entropy)`` of their frequencies (= the number of codes used, were they equally
    frequent)."""
    counts = torch.bincount(indices.flatten(), minlength=codebook).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"code_usage": float((counts > 0).sum()) / codebook, "perplexity": float(entropy.exp())}


@torch.no_grad()
def raw_latents(model: nn.Module, images: Tensor) -> Tensor:
    """Unscaled latents: the KL posterior mean, or the VQ pre-quantisation features (what
    :class:`~changen.synthesis.diffusion.latent.DiffusersAutoencoder` encodes)."""
    out: Any = model.encode(images)  # type: ignore[operator]  # a diffusers autoencoder
    return out.latent_dist.mean if hasattr(out, "latent_dist") else out.latents


def latent_scale(model: nn.Module, images: Tensor) -> float:
    """``1 / std`` of the latents of ``images`` (Stable Diffusion's scaling factor rule)."""
    std = float(raw_latents(model, images).float().std())
    return 1.0 / max(std, 1e-8)


def write_diffusers_folder(model: nn.Module, checkpoint: Path, scaling_factor: float) -> Path:
    """Write ``checkpoint/autoencoder/``: the diffusers config of ``model`` with its
    ``scaling_factor``, and its weights as a hard link to ``checkpoint``'s
    :data:`WEIGHTS_NAME` (a copy where links are not allowed); swapped in by rename."""
    final = checkpoint / DIFFUSERS_FOLDER
    tmp = checkpoint / f".{DIFFUSERS_FOLDER}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    diffusers_model: Any = model
    diffusers_model.register_to_config(scaling_factor=scaling_factor)
    diffusers_model.save_config(tmp)
    weights, target = checkpoint / WEIGHTS_NAME, tmp / "diffusion_pytorch_model.safetensors"
    try:
        os.link(weights, target)
    except OSError:
        shutil.copy2(weights, target)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final
