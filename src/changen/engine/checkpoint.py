"""Checkpoints that say how they were made and resume exactly.

A checkpoint is a folder::

    config.json            what built the models: ``kind`` (which family loads it, see
                           :func:`checkpoint_kind`) and anything else needed to rebuild them
    <model>.safetensors    weights of each named module (unwrapped from DDP / torch.compile)
    state.pt               training state for exact resume: optimizers, schedulers, step, RNG
                           states, EMA… (plain tensors and Python types; loaded weights_only)

The folder is written under a temporary name and renamed into place, so a run killed while
saving leaves the previous checkpoint intact and never a half-written one.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from changen.errors import DataError

CONFIG_NAME = "config.json"
STATE_NAME = "state.pt"


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module under DDP (``.module``), torch.compile (``._orig_mod``) or Fabric."""
    for attr in ("_forward_module", "module", "_orig_mod"):
        while hasattr(module, attr) and isinstance(getattr(module, attr), nn.Module):
            module = getattr(module, attr)
    return module


def save_checkpoint(
    path: str | os.PathLike[str],
    models: dict[str, nn.Module],
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically (replacing an existing one at ``path``);
    ``config`` must name its ``kind``."""
    if not isinstance(config.get("kind"), str):
        raise ValueError("a checkpoint config needs a 'kind' naming the family that loads it")
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    try:
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        for name, module in models.items():
            tensors = {
                k: v.detach().contiguous().cpu() for k, v in unwrap(module).state_dict().items()
            }
            save_file(tensors, str(tmp / f"{name}.safetensors"))
        if state is not None:
            torch.save(state, tmp / STATE_NAME)
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of a checkpoint folder, with a clear error when it is not one."""
    file = Path(path) / CONFIG_NAME
    if not file.is_file():
        raise DataError(
            f"{path}: not a changen checkpoint (no {CONFIG_NAME}); point at a "
            f"checkpoint folder written by `changen train`"
        )
    try:
        return json.loads(file.read_text())
    except ValueError as e:
        raise DataError(f"{file}: unreadable checkpoint config ({e})") from None


def read_safetensors(file: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's ``.safetensors`` file; a truncated or foreign file is a
    one-line :class:`DataError`."""
    try:
        return load_file(str(file))
    except Exception as e:  # safetensors raises its own error types for damaged headers
        raise DataError(
            f"{file}: not a readable safetensors file ({type(e).__name__}: {e}); the checkpoint "
            f"is truncated or damaged — copy it again or retrain"
        ) from None


def load_weights(
    path: str | os.PathLike[str], models: dict[str, nn.Module], strict: bool = True
) -> None:
    """Load each named module's weights from ``<name>.safetensors`` in the checkpoint."""
    for name, module in models.items():
        file = Path(path) / f"{name}.safetensors"
        if not file.is_file():
            raise DataError(f"{path}: checkpoint has no weights for {name!r} ({file.name})")
        try:
            unwrap(module).load_state_dict(read_safetensors(file), strict=strict)
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise DataError(
                f"{file}: weights do not fit the model its config.json describes ({first}); "
                f"the checkpoint's files come from different runs"
            ) from None


def load_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The training state saved beside the weights (``weights_only`` loading)."""
    file = Path(path) / STATE_NAME
    if not file.is_file():
        raise DataError(f"{path}: checkpoint has no training state ({STATE_NAME}) to resume from")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(
            f"{file}: refused or unreadable training state ({first}); changen loads only "
            f"plain tensors and Python values — resume from a checkpoint changen wrote"
        ) from None


def checkpoint_kind(path: str | os.PathLike[str]) -> str:
    """The ``kind`` a checkpoint folder's config names (e.g. ``changen_gan``)."""
    kind = load_config(path).get("kind")
    if not isinstance(kind, str):
        raise DataError(
            f"{path}: checkpoint config.json names no 'kind'; it was not written by changen"
        )
    return kind
