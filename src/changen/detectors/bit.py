"""BiT, the bitemporal image transformer (Chen et al., IEEE TGRS 2021), as Open-CD builds it.

ChangeAnywhere trained its detectors with Open-CD, so this follows Open-CD's ``bit_r18``
(``BITHead`` on a ResNet-18-V1c cut after layer3, stride 8):

- both dates go through the shared backbone; each map is upsampled ×2 (bilinear) and
  projected to ``channels`` (32) by a 3×3 conv + ReLU (stride 4);
- a tokenizer (1×1 conv + ReLU, spatial softmax) pools each map into ``token_len`` (4)
  semantic tokens; the 2·L tokens of the pair, plus a learned position embedding, pass a
  pre-norm transformer **encoder** of ``enc_depth`` (1) blocks;
- a pre-norm transformer **decoder** of ``dec_depth`` (8) blocks lets every pixel of a date
  attend to that date's tokens (cross-attention);
- the change logits come from |x_t1 − x_t2|, bilinear ×4, dropout 0.1 and a 1×1 conv.

Attention has ``num_heads`` (8) heads over ``embed_dims`` (64) and is scaled by
``channels ** -0.5`` (as in BiT); feed-forward layers are channels → embed_dims → channels
with ReLU. Two deliberate differences from Open-CD: layer3 keeps stride 8 by dilation 2 (the
authors' BiT, timm's ``output_stride=8``) where Open-CD drops the stride without dilating, and
one change logit instead of two.

Parameters: 2,989,605 with the default ResNet-18-V1c; with ``backbone="resnet18"`` (the
7×7 stem, so torchvision / timm ImageNet weights load directly) 2,970,373. The authors'
``base_transformer_pos_s4_dd8`` (decoder heads of 64 dims, a two-conv classifier) has
about 3.5 M by the same count (the BiT paper lists 3.55 M). Inputs: (B, 3, H, W), H, W divisible
by 32.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from changen.detectors.backbones import build_backbone
from changen.detectors.changemixin import ChangeOutput, check_pair


class Attention(nn.Module):
    """Multi-head (cross-)attention of ``x`` over ``ref``, scaled by ``dim ** -0.5``."""

    def __init__(self, dim: int, embed_dims: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = dim**-0.5
        self.to_q = nn.Linear(dim, embed_dims, bias=False)
        self.to_k = nn.Linear(dim, embed_dims, bias=False)
        self.to_v = nn.Linear(dim, embed_dims, bias=False)
        self.out = nn.Linear(embed_dims, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        q, k, v = (
            self._heads(f(t)) for f, t in ((self.to_q, x), (self.to_k, ref), (self.to_v, ref))
        )
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.out(out.transpose(1, 2).flatten(2))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(LN(x), LN'(ref)), then + FFN(LN(x)). Self-attention when
    ``cross`` is False (``ref`` is ``x`` through the same norm)."""

    def __init__(self, dim: int, embed_dims: int, num_heads: int, cross: bool) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm_ref = nn.LayerNorm(dim) if cross else None
        self.attn = Attention(dim, embed_dims, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, embed_dims), nn.ReLU(inplace=True), nn.Linear(embed_dims, dim)
        )

    def forward(self, x: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        query = self.norm1(x)
        key = query if self.norm_ref is None or ref is None else self.norm_ref(ref)
        x = x + self.attn(query, key)
        return x + self.ff(self.norm2(x))


class BiT(nn.Module):
    """BiT with a ResNet backbone cut after layer3 (see the module docstring)."""

    def __init__(
        self,
        backbone: str = "resnet18_v1c",
        *,
        weights: str | os.PathLike[str] | None = None,
        channels: int = 32,
        embed_dims: int = 64,
        token_len: int = 4,
        enc_depth: int = 1,
        dec_depth: int = 8,
        num_heads: int = 8,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "backbone": backbone,
            "channels": channels,
            "embed_dims": embed_dims,
            "token_len": token_len,
            "enc_depth": enc_depth,
            "dec_depth": dec_depth,
            "num_heads": num_heads,
            "dropout": dropout,
        }
        self.backbone = build_backbone(backbone, weights, out_indices=(3,), output_stride=8)
        self.project = nn.Conv2d(self.backbone.out_channels[-1], channels, 3, padding=1)
        self.tokenizer = nn.Conv2d(channels, token_len, 1)
        self.pos_embedding = nn.Parameter(torch.randn(1, 2 * token_len, channels))
        self.encoder = nn.ModuleList(
            TransformerBlock(channels, embed_dims, num_heads, cross=False) for _ in range(enc_depth)
        )
        self.decoder = nn.ModuleList(
            TransformerBlock(channels, embed_dims, num_heads, cross=True) for _ in range(dec_depth)
        )
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, 1, 1)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, C) semantic tokens: spatial-softmax-weighted sums of the (B, C, h, w) map."""
        attention = torch.softmax(torch.relu(self.tokenizer(x)).flatten(2), dim=-1)
        return torch.einsum("bln,bcn->blc", attention, x.flatten(2))

    def forward(self, t1: torch.Tensor, t2: torch.Tensor) -> ChangeOutput:
        check_pair(t1, t2)
        x = self.backbone(torch.cat([t1, t2]))[-1]
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = torch.relu(self.project(x))
        b2, c, h, w = x.shape
        tok1, tok2 = self._tokens(x).chunk(2)
        tokens = torch.cat([tok1, tok2], dim=1) + self.pos_embedding
        for block in self.encoder:
            tokens = block(tokens)
        tok1, tok2 = tokens.chunk(2, dim=1)
        pixels = x.flatten(2).transpose(1, 2)
        memory = torch.cat([tok1, tok2])
        for block in self.decoder:
            pixels = block(pixels, memory)
        f1, f2 = pixels.transpose(1, 2).reshape(b2, c, h, w).chunk(2)
        diff = F.interpolate((f1 - f2).abs(), scale_factor=4.0, mode="bilinear")
        return ChangeOutput(change=self.classifier(self.dropout(diff)))
