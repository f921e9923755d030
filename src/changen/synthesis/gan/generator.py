"""The Changen generator ``G(S_t+1, I_t, S_t, z)`` (and, without encoder, the GPCM baselines).

Decoder: the one-hot ``S_t+1`` concatenated with a 3D Gaussian noise map is the condition
``c``; ``f_t+1,0`` is a 3×3 conv of ``c`` resized to h/32; six spatially-adaptive residual
blocks ``G_0..G_5`` follow, each fed ``f_t+1,i + Δf_i`` (``Δf_i`` from the masked transition
layer, see ``transition.py``) and followed by ×2 upsampling except the last, which works at full
resolution; a LeakyReLU, a 3×3 conv to RGB and tanh give the image. All decoder and encoder convs
are spectrally normalised.

Inputs: images are float (B, 3, H, W) in [-1, 1]; masks are integer (B, H, W) class ids in
``0..num_classes-1``, and ``ignore_index`` pixels are conditioned on as background (class 0),
both for the one-hot ``S_t+1`` and for the masked positions (``GeneratorConfig.masking``:
object classes of S_t, and with ``"objects+changed"`` also the pixels whose class changes).
H and W must be multiples of 32.
The noise is (B, z_dim) - one vector per image broadcast over the map, as OASIS samples it - or a
full (B, z_dim, H, W) map; when not given it is drawn from ``generator`` (a ``torch.Generator``),
never from the global RNG.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from changen.errors import ConfigError, DataError
from changen.synthesis.gan.config import GeneratorConfig
from changen.synthesis.gan.encoder import UNetEncoder
from changen.synthesis.gan.layers import LEAK, SpadeResBlock, one_hot, spectral_conv
from changen.synthesis.gan.transition import MaskedTransition

STRIDE = 32


def class_ids(mask: Tensor, num_classes: int, ignore_index: int, name: str) -> Tensor:
    """Validate a (B, H, W) integer mask and map ``ignore_index`` to background (0)."""
    if mask.ndim != 3 or mask.dtype.is_floating_point or mask.dtype == torch.bool:
        raise DataError(
            f"{name} must be an integer (B, H, W) class-id tensor, got {mask.dtype} "
            f"{tuple(mask.shape)}; pass long class ids"
        )
    mask = torch.where(mask == ignore_index, torch.zeros_like(mask), mask).long()
    low, high = int(mask.min()), int(mask.max())
    if low < 0 or high >= num_classes:
        raise DataError(
            f"{name} holds class ids {low}..{high} outside 0..{num_classes - 1} "
            f"(ignore id {ignore_index}); remap the mask or raise num_classes"
        )
    return mask


def sample_noise(batch: int, z_dim: int, generator: torch.Generator | None = None) -> Tensor:
    """(B, z_dim) standard normal noise drawn from ``generator`` (a fresh unseeded one if None)."""
    if generator is None:
        generator = torch.Generator()
        generator.seed()
    return torch.randn((batch, z_dim), generator=generator, device=generator.device)


class ChangenGenerator(nn.Module):
    """Changen generator; ``encoder_weights`` optionally initialises the ResNet-18 from a file."""

    object_table: Tensor
    """(num_classes,) bool buffer: which model classes are objects."""

    def __init__(self, config: GeneratorConfig, encoder_weights: str | Path | None = None) -> None:
        super().__init__()
        self.config = config
        c = config
        f = c.feature_channels
        cond = c.num_classes + c.z_dim
        self.encoder: UNetEncoder | None = None
        self.transitions = nn.ModuleList()
        if c.use_encoder:
            self.encoder = UNetEncoder(c.resnet_channels, f, encoder_weights)
            self.transitions.extend(
                MaskedTransition(
                    ch,
                    c.num_classes,
                    c.norm_hidden,
                    c.norm,
                    c.norm_groups,
                    masking=c.masking != "none",
                    destyling=c.destyling,
                )
                for ch in f
            )
        elif encoder_weights is not None:
            raise ConfigError("encoder_weights given but this configuration has no encoder")
        self.head = spectral_conv(cond, f[0], 3)
        outs = (*f[1:], f[-1])
        self.blocks = nn.ModuleList(
            SpadeResBlock(f[i], outs[i], cond, c.norm_hidden, c.norm, c.norm_groups)
            for i in range(6)
        )
        self.to_rgb = spectral_conv(f[-1], 3, 3)
        table = torch.zeros(c.num_classes, dtype=torch.bool)
        table[list(c.object_classes)] = True
        self.register_buffer("object_table", table, persistent=False)

    def masked_positions(self, t1_mask: Tensor, t2_mask: Tensor) -> Tensor:
        """(B, 1, H, W) bool: where pre-event features are masked, by ``config.masking``.

        Both masks are model class ids with ignore already mapped to 0 (:func:`class_ids`).
        """
        masked = self.object_table[t1_mask]
        if self.config.masking == "objects+changed":
            masked = masked | (t1_mask != t2_mask)
        elif self.config.masking == "none":
            masked = torch.zeros_like(masked)
        return masked.unsqueeze(1)

    def _condition(
        self, t2_mask: Tensor, noise: Tensor | None, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        """One-hot ``S_t+1`` and the decoder condition ``cat(S_t+1, z)`` at full resolution."""
        c = self.config
        post = one_hot(t2_mask, c.num_classes)
        if c.z_dim == 0:
            if noise is not None:
                raise ConfigError("noise given but this configuration has z_dim=0")
            return post, post
        b, _, h, w = post.shape
        if noise is None:
            noise = sample_noise(b, c.z_dim, generator)
        noise = noise.to(post.device, post.dtype)
        if noise.shape == (b, c.z_dim):
            noise = noise[:, :, None, None].expand(-1, -1, h, w)
        elif noise.shape != (b, c.z_dim, h, w):
            raise DataError(
                f"noise has shape {tuple(noise.shape)}; expected ({b}, {c.z_dim}) or "
                f"({b}, {c.z_dim}, {h}, {w})"
            )
        return post, torch.cat([post, noise], dim=1)

    def _pre_event(
        self,
        encoder: UNetEncoder,
        t1_image: Tensor | None,
        t1_mask: Tensor | None,
        t2_mask: Tensor,
    ) -> tuple[list[Tensor], Tensor]:
        """Encoder features ``f_t,0..5`` and the (B, 1, H, W) masked positions; I_t is blanked
        there first when ``config.mask_input``."""
        c = self.config
        b, h, w = t2_mask.shape
        if t1_image is None or t1_mask is None:
            raise DataError("this generator needs the pre-event t1_image and t1_mask")
        if t1_image.shape != (b, 3, h, w):
            raise DataError(
                f"t1_image has shape {tuple(t1_image.shape)}; expected ({b}, 3, {h}, {w})"
            )
        if t1_mask.shape != t2_mask.shape:
            raise DataError(
                f"t1_mask shape {tuple(t1_mask.shape)} differs from t2_mask {(b, h, w)}"
            )
        t1_mask = class_ids(t1_mask, c.num_classes, c.ignore_index, "t1_mask")
        masked = self.masked_positions(t1_mask, t2_mask)
        if c.mask_input and c.masking != "none":
            t1_image = t1_image.masked_fill(masked, 0.0)
        return encoder(t1_image), masked

    def forward(
        self,
        t1_image: Tensor | None,
        t1_mask: Tensor | None,
        t2_mask: Tensor,
        noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Post-event image (B, 3, H, W) in [-1, 1]; ``t1_*`` may be None without encoder."""
        c = self.config
        t2_mask = class_ids(t2_mask, c.num_classes, c.ignore_index, "t2_mask")
        _, h, w = t2_mask.shape
        if h % STRIDE or w % STRIDE:
            raise DataError(f"mask size {h}x{w} is not a multiple of {STRIDE}; crop or pad to one")
        post, cond = self._condition(t2_mask, noise, generator)
        x = self.head(F.interpolate(cond, size=(h // STRIDE, w // STRIDE), mode="nearest"))
        pre = (
            None
            if self.encoder is None
            else self._pre_event(self.encoder, t1_image, t1_mask, t2_mask)
        )
        for i, block in enumerate(self.blocks):
            if pre is not None:
                x = x + self.transitions[i](pre[0][i], x, pre[1], post)
            x = block(x, cond)
            if i < len(self.blocks) - 1:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.tanh(self.to_rgb(F.leaky_relu(x, LEAK)))
