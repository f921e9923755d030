"""RS-DiT, Changen2's resolution-scalable diffusion transformer.

A DiT (Peebles & Xie) on latent patches of 2×2 changed as Changen2 describes and as the
released network (torchange 0.0.4, ``torchange/models/changen2/rsdit.py``) builds it:

- **no positional embedding**: position comes from a 3×3 depthwise convolution inside each
  MLP (``fc1 → dwconv → GELU(tanh) → fc2``), so the model runs at any token grid;
- **per-token conditioning**: a dense label embedder (8 conv 3×3 layers with channel
  LayerNorm and SiLU, widths D/8 → D, three of stride 2) maps the label map to D channels,
  resized (nearest) to the token grid, and adds the timestep embedding; adaLN-Zero
  shift/scale/gate are computed per token from it;
- **window attention** of 8×8 tokens in every block but each 4th, whose attention is global;
- learned sigma (twice the input channels out, iDDPM as DiT); zero output at initialisation.

Where this implementation differs (the outputs do not, on every token grid that is a multiple
of the window — e.g. latents that are multiples of 16 with patch 2): a token grid that is not
a multiple of the window is padded and the padded keys are **masked out** of attention
(torchange attends to zero-valued padding tokens), a window never exceeds the grid, the token
maps stay in channels-last layout (no copies around the depthwise conv), the label embedding
can be computed once and reused over all sampling steps (:meth:`RSDiT.embed_labels`), and
activation checkpointing is a switch (torchange always checkpoints in training mode).

Presets (:data:`PRESETS`) carry the paper's sizes (S/2, B/2, L/2, XL/2; parameter counts equal
torchange's) and tiny ones for CPU.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from changen.errors import ConfigError


@dataclass(frozen=True)
class RSDiTConfig:
    """Sizes of an RS-DiT. ``in_channels``: latent channels; ``label_channels``: channels of
    the label map (1 for a class-agnostic mask or a contour map, K for a one-hot of K
    classes); ``window_size`` tokens per window side, every ``global_every``-th block global."""

    hidden_size: int = 384
    depth: int = 12
    num_heads: int = 6
    patch_size: int = 2
    in_channels: int = 4
    label_channels: int = 1
    mlp_ratio: float = 4.0
    window_size: int = 8
    global_every: int = 4
    learn_sigma: bool = True

    def __post_init__(self) -> None:
        if self.hidden_size % 8 or self.hidden_size % self.num_heads:
            raise ConfigError(
                f"hidden_size={self.hidden_size} must be a multiple of 8 and of num_heads="
                f"{self.num_heads}; choose another preset or size"
            )
        for name in ("depth", "patch_size", "in_channels", "label_channels", "window_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"RS-DiT {name}={getattr(self, name)} must be at least 1")

    @property
    def out_channels(self) -> int:
        return self.in_channels * 2 if self.learn_sigma else self.in_channels

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RSDiTConfig:
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown RS-DiT settings {unknown}; remove them")
        return cls(**data)


PRESETS: dict[str, dict[str, Any]] = {
    "S/2": {"hidden_size": 384, "depth": 12, "num_heads": 6},
    "B/2": {"hidden_size": 768, "depth": 12, "num_heads": 12},
    "L/2": {"hidden_size": 1024, "depth": 24, "num_heads": 16},
    "XL/2": {"hidden_size": 1152, "depth": 28, "num_heads": 16},
    "small": {"hidden_size": 128, "depth": 8, "num_heads": 4},
    "tiny": {"hidden_size": 32, "depth": 4, "num_heads": 2},
}
"""Preset name → :class:`RSDiTConfig` sizes (Changen2's four, and two for CPU)."""


def preset_config(preset: str, **overrides: Any) -> RSDiTConfig:
    """The config of a preset, with ``overrides`` (e.g. ``label_channels``, ``in_channels``)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown RS-DiT preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return RSDiTConfig(**{**PRESETS[preset], **overrides})


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN: ``x · (1 + scale) + shift``."""
    return torch.addcmul(shift, x, 1 + scale)


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of an (N, C, H, W) map."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def label_embedder(label_channels: int, hidden: int) -> nn.Sequential:
    """Changen2's dense label embedder: pairs of conv 3×3 (the first of each pair of the last
    three pairs with stride 2) with channel LayerNorm, SiLU between, widths D/8, D/4, D/2, D."""
    widths = (
        hidden // 8,
        hidden // 8,
        hidden // 4,
        hidden // 4,
        hidden // 2,
        hidden // 2,
        hidden,
        hidden,
    )
    layers: list[nn.Module] = []
    previous = label_channels
    for i, width in enumerate(widths):
        stride = 2 if i in (2, 4, 6) else 1
        layers += [nn.Conv2d(previous, width, 3, stride, 1), ChannelNorm(width)]
        if i < len(widths) - 1:
            layers.append(nn.SiLU())
        previous = width
    return nn.Sequential(*layers)


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of the timestep (cos then sin, 256 of them) → MLP → D."""

    def __init__(self, hidden: int, frequencies: int = 256) -> None:
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(
            nn.Linear(frequencies, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
        )

    def forward(self, t: Tensor) -> Tensor:
        half = self.frequencies // 2
        exponent = torch.arange(half, dtype=torch.float32, device=t.device) / half
        angles = t[:, None].float() * torch.exp(-math.log(10000.0) * exponent)[None]
        features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
        return self.mlp(features.to(next(self.mlp.parameters()).dtype))


class Attention(nn.Module):
    """Multi-head self-attention (fused ``scaled_dot_product_attention``) over token groups."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, hidden * 3)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """``x`` (G, L, D); ``key_mask`` (G, 1, 1, L) bool, True where a key is real."""
        g, length, dim = x.shape
        q, k, v = (
            self.qkv(x).view(g, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        )
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        return self.proj(out.transpose(1, 2).reshape(g, length, dim))


class ConvMlp(nn.Module):
    """``fc1 → depthwise conv 3×3 on the token grid → GELU(tanh) → fc2``."""

    def __init__(self, hidden: int, inner: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden, inner)
        self.dwconv = nn.Conv2d(inner, inner, 3, 1, 1, groups=inner, bias=False)
        self.fc2 = nn.Linear(inner, hidden)

    def forward(self, x: Tensor, grid: tuple[int, int]) -> Tensor:
        n, _, _ = x.shape
        h = self.fc1(x).view(n, *grid, -1).permute(0, 3, 1, 2)  # channels-last NCHW, no copy
        h = self.dwconv(h).permute(0, 2, 3, 1).reshape(n, grid[0] * grid[1], -1)
        return self.fc2(F.gelu(h, approximate="tanh"))


class Windows:
    """How a (h, w) token grid is cut into windows of at most ``size``×``size`` tokens: the
    grid is padded to whole windows only where it is not a multiple, and padded keys are
    masked."""

    def __init__(self, grid: tuple[int, int], size: int, device: torch.device) -> None:
        self.grid = grid
        self.window = (min(size, grid[0]), min(size, grid[1]))
        self.padded = tuple(-(-g // s) * s for g, s in zip(grid, self.window, strict=True))
        self.key_mask: Tensor | None = None
        if self.padded != grid:
            real = torch.zeros(self.padded, dtype=torch.bool, device=device)
            real[: grid[0], : grid[1]] = True
            self.key_mask = self._split(real[None, :, :, None]).reshape(-1, 1, 1, self.length)

    @property
    def length(self) -> int:
        return self.window[0] * self.window[1]

    def _split(self, x: Tensor) -> Tensor:
        n, hp, wp, d = x.shape
        (wh, ww) = self.window
        x = x.view(n, hp // wh, wh, wp // ww, ww, d).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(-1, wh * ww, d)

    def partition(self, x: Tensor) -> Tensor:
        """(N, h·w, D) tokens → (N·windows, window tokens, D)."""
        n, _, d = x.shape
        x = x.view(n, *self.grid, d)
        if self.padded != self.grid:
            x = F.pad(x, (0, 0, 0, self.padded[1] - self.grid[1], 0, self.padded[0] - self.grid[0]))
        return self._split(x)

    def merge(self, x: Tensor, n: int) -> Tensor:
        """Inverse of :meth:`partition`."""
        (wh, ww), (hp, wp), d = self.window, self.padded, x.shape[-1]
        x = x.view(n, hp // wh, wp // ww, wh, ww, d).permute(0, 1, 3, 2, 4, 5).reshape(n, hp, wp, d)
        return x[:, : self.grid[0], : self.grid[1]].reshape(n, -1, d)

    def key_masks(self, n: int) -> Tensor | None:
        """The key mask repeated for ``n`` samples."""
        return None if self.key_mask is None else self.key_mask.repeat(n, 1, 1, 1)


class Block(nn.Module):
    """A DiT block with per-token adaLN-Zero; window attention unless ``global_attention``."""

    def __init__(self, config: RSDiTConfig, global_attention: bool) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.global_attention = global_attention
        self.window_size = config.window_size
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden, config.num_heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.mlp = ConvMlp(hidden, int(hidden * config.mlp_ratio))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x: Tensor, cond: Tensor, grid: tuple[int, int], windows: Windows) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(cond).chunk(6, dim=-1)
        h = modulate(self.norm1(x), shift1, scale1)
        if self.global_attention:
            h = self.attn(h)
        else:
            n = x.shape[0]
            h = windows.merge(self.attn(windows.partition(h), windows.key_masks(n)), n)
        x = x + gate1 * h
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2), grid)


class FinalLayer(nn.Module):
    """Per-token adaLN, then a linear map to the patch's output values."""

    def __init__(self, config: RSDiTConfig) -> None:
        super().__init__()
        hidden, p = config.hidden_size, config.patch_size
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden, p * p * config.out_channels)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        shift, scale = self.modulation(cond).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class RSDiT(nn.Module):
    """``RSDiT(config)(x, t, labels)``: x (N, C, H, W) latents (H, W multiples of the patch),
    t (N,) timesteps, labels (N, label_channels, h, w) at any resolution (usually the image's)
    → (N, out_channels, H, W): ε and, with learned sigma, the variance interpolation values."""

    def __init__(self, config: RSDiTConfig, checkpointing: bool = False) -> None:
        super().__init__()
        self.config = config
        self.checkpointing = checkpointing
        hidden, p = config.hidden_size, config.patch_size
        self.patch = nn.Conv2d(config.in_channels, hidden, p, p)
        self.time = TimestepEmbedder(hidden)
        self.label = label_embedder(config.label_channels, hidden)
        self.blocks = nn.ModuleList(
            Block(config, global_attention=(i + 1) % config.global_every == 0)
            for i in range(config.depth)
        )
        self.final = FinalLayer(config)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DiT's initialisation: Xavier linears (and patch embedding), N(0, 0.02) timestep
        MLP, zero adaLN modulations and output layer — the model outputs 0 at init."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.patch.weight.view(self.patch.weight.shape[0], -1))
        if self.patch.bias is not None:
            nn.init.zeros_(self.patch.bias)
        for layer in self.time.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=0.02)
        zeroed = [m.modulation for m in self.modules() if isinstance(m, Block | FinalLayer)]
        for module in (*zeroed, self.final.linear):
            for param in module.parameters():
                nn.init.zeros_(param)

    def token_grid(self, x: Tensor) -> tuple[int, int]:
        p = self.config.patch_size
        if x.shape[-2] % p or x.shape[-1] % p:
            raise ConfigError(
                f"latent size {tuple(x.shape[-2:])} must be a multiple of the patch size {p}"
            )
        return x.shape[-2] // p, x.shape[-1] // p

    def embed_labels(self, labels: Tensor, grid: tuple[int, int]) -> Tensor:
        """(N, label_channels, h, w) → (N, tokens, D) label tokens on the ``grid``: constant
        over the sampling steps of one image, so samplers compute it once."""
        y = self.label(labels.to(self.patch.weight.dtype))
        y = F.interpolate(y.float(), size=grid, mode="nearest").to(y.dtype)
        return y.flatten(2).transpose(1, 2)

    def forward(
        self, x: Tensor, t: Tensor, labels: Tensor | None = None, label_tokens: Tensor | None = None
    ) -> Tensor:
        """``labels`` or their :meth:`embed_labels` tokens (for a loop over timesteps)."""
        grid = self.token_grid(x)
        if label_tokens is None:
            if labels is None:
                raise ConfigError("RS-DiT needs labels or label_tokens")
            label_tokens = self.embed_labels(labels, grid)
        n = x.shape[0]
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        cond = self.time(t).view(n, 1, -1) + label_tokens
        windows = Windows(grid, self.config.window_size, x.device)
        for block in self.blocks:
            if self.checkpointing and self.training:
                tokens = checkpoint(block, tokens, cond, grid, windows, use_reentrant=False)
            else:
                tokens = block(tokens, cond, grid, windows)
        out = self.final(tokens, cond)
        return self.unpatchify(out, grid)

    def unpatchify(self, x: Tensor, grid: tuple[int, int]) -> Tensor:
        """(N, tokens, p·p·C) → (N, C, h·p, w·p)."""
        p, c = self.config.patch_size, self.config.out_channels
        n, (h, w) = x.shape[0], grid
        x = x.view(n, h, w, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(n, c, h * p, w * p)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_rsdit(network: dict[str, Any]) -> RSDiT:
    """An RS-DiT from its config dict (the diffusion family builder, see
    :data:`changen.synthesis.diffusion.model.FAMILIES`)."""
    return RSDiT(RSDiTConfig.from_dict(network))
