"""Load the official Changen2 RS-DiT weights (torchange layout) into :class:`RSDiT`.

torchange 0.0.4's ``RSDiT`` names its parts ``x_embedder.proj`` (patch embedding),
``t_embedder.mlp``, ``y_embedder.convs`` (the dense label embedder, same layer order as ours),
``blocks.<i>.{attn.qkv, attn.proj, mlp.fc1, mlp.dwconv, mlp.fc2, adaLN_modulation.1}`` and
``final_layer.{linear, adaLN_modulation.1}``; :data:`RENAMES` maps them onto ours. DiT-style
training checkpoints hold ``{"model", "ema", "opt", "args"}``: the EMA weights are taken when
present, ``args`` (an ``argparse.Namespace``) is allowed, nothing else that is not a tensor is
unpickled. The sizes are read from the weights; the head count is not in them, so it comes
from the matching preset (S/2, B/2, L/2, XL/2) or ``num_heads``.
"""

from __future__ import annotations

import argparse
import os
import re

import torch

from changen.engine.weights import read_tensors
from changen.errors import FormatError
from changen.synthesis.diffusion.rsdit import PRESETS, RSDiT, RSDiTConfig

_HINT = "give an RS-DiT checkpoint of torchange's layout (.pt/.pth of tensors, or .safetensors)"

#: (official key pattern, our key prefix), the first match wins.
RENAMES: tuple[tuple[str, str], ...] = (
    (r"^x_embedder\.proj\.", "patch."),
    (r"^t_embedder\.", "time."),
    (r"^y_embedder\.convs\.", "label."),
    (r"^(blocks\.\d+)\.adaLN_modulation\.", r"\1.modulation."),
    (r"^final_layer\.adaLN_modulation\.", "final.modulation."),
    (r"^final_layer\.", "final."),
    (r"^(blocks\.\d+\.(?:attn|mlp)\.)", r"\1"),
)


def convert_key(key: str) -> str:
    """Our parameter name for the official ``key``."""
    key = key.removeprefix("module.")
    for pattern, replacement in RENAMES:
        converted, count = re.subn(pattern, replacement, key, count=1)
        if count:
            return converted
    raise FormatError(f"unexpected RS-DiT weight {key!r}; {_HINT}")


def convert_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official state dict renamed to our parameter names."""
    return {convert_key(k): v for k, v in state.items()}


def infer_config(state: dict[str, torch.Tensor], num_heads: int | None = None) -> RSDiTConfig:
    """The :class:`RSDiTConfig` of converted weights (``num_heads`` from the preset of the
    same width and depth unless given)."""
    try:
        patch = state["patch.weight"]
        hidden, in_channels, p = patch.shape[0], patch.shape[1], patch.shape[2]
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        label_channels = state["label.0.weight"].shape[1]
        out_channels = state["final.linear.weight"].shape[0] // (p * p)
        inner = state["blocks.0.mlp.fc1.weight"].shape[0]
    except (KeyError, ValueError) as e:
        raise FormatError(f"not RS-DiT weights (missing {e}); {_HINT}") from None
    if num_heads is None:
        match = [s for s in PRESETS.values() if (s["hidden_size"], s["depth"]) == (hidden, depth)]
        if not match:
            raise FormatError(
                f"RS-DiT of width {hidden} and depth {depth} matches no preset; give num_heads"
            )
        num_heads = int(match[0]["num_heads"])
    return RSDiTConfig(
        hidden_size=hidden,
        depth=depth,
        num_heads=num_heads,
        patch_size=p,
        in_channels=in_channels,
        label_channels=label_channels,
        mlp_ratio=inner / hidden,
        learn_sigma=out_channels == 2 * in_channels,
    )


def load_official_rsdit(
    path: str | os.PathLike[str], num_heads: int | None = None, ema: bool = True
) -> RSDiT:
    """An :class:`RSDiT` holding the official weights in ``path`` (the EMA ones if ``ema``
    and the file has them), in eval mode."""
    wrappers = ("ema", "model", "state_dict") if ema else ("model", "state_dict")
    raw = read_tensors(
        path, "RS-DiT weights", _HINT, wrappers=wrappers, safe_globals=(argparse.Namespace,)
    )
    state = convert_state_dict(raw)
    model = RSDiT(infer_config(state, num_heads))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise FormatError(
            f"{path}: RS-DiT weights do not fit (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}); {_HINT}"
        )
    return model.eval()
