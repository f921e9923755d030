"""Reading a weights file a user hands over, safely: tensors only, never code.

``.safetensors`` files are read as they are; anything else with ``torch.load(...,
weights_only=True)``, which refuses pickles holding objects or code. Common wrappers
(``{"state_dict": …}``, ``{"model": …}``) are removed. Every failure is one
:class:`~changen.errors.ConfigError` line naming the file and the fix.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file

from changen.errors import ConfigError


def read_tensors(
    path: str | os.PathLike[str],
    what: str,
    fix: str,
    wrappers: tuple[str, ...] = ("state_dict", "model"),
    safe_globals: tuple[type, ...] = (),
) -> dict[str, torch.Tensor]:
    """The state dict in ``path``; ``what`` names the file in errors (e.g. "encoder
    weights"), ``fix`` says what to give instead. ``wrappers``: keys of a wrapping dict to
    unwrap, in order of preference; ``safe_globals``: plain classes the file may also hold
    (e.g. ``argparse.Namespace`` in DiT-style checkpoints), allowed for this read only."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} not found; {fix}")
    state: object  # whatever the file holds, checked below
    try:
        if path.suffix.lower() == ".safetensors":
            state = load_file(path)
        else:
            with torch.serialization.safe_globals(list(safe_globals)), warnings.catch_warnings():
                # torch warns before refusing a TorchScript zip or an unusual pickle protocol;
                # the refusal below is the one line the user gets
                warnings.filterwarnings("ignore", message=".*(TorchScript|pickle protocol)")
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or hostile bytes raise many types in the unpickler
        raise ConfigError(
            f"{what} {path}: not a readable weights file, or refused as it holds more than "
            f"tensors ({type(e).__name__}); {fix}"
        ) from None
    while isinstance(state, Mapping):
        key = next((k for k in wrappers if isinstance(state.get(k), Mapping)), None)
        if key is None:
            break
        state = state[key]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ConfigError(f"{what} {path}: holds no plain state dict of tensors; {fix}")
    return dict(state)
