"""Semantic change synthesis: post-event images from the pre-event image and both masks.

Two plain dicts name every synthesizer; modules are imported on first use, so a new family is
one folder plus one line:

- :data:`SYNTHESIZERS`: name → ``"module:Class"`` of the learning-free synthesizers, built
  from options;
- :data:`KINDS`: checkpoint ``kind`` → ``"module:Class"`` whose ``from_checkpoint(path, …)``
  loads a trained one.

:func:`load_synthesizer` takes a name, a checkpoint folder or a run folder (its newest
checkpoint).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from changen.engine.checkpoint import checkpoint_kind
from changen.engine.run import resolve_checkpoint
from changen.errors import ConfigError
from changen.synthesis.base import SynthesisBatch, Synthesizer

SYNTHESIZERS: dict[str, str] = {
    "copy_paste": "changen.synthesis.copy_paste:CopyPaste",
    "inpaint": "changen.synthesis.inpaint:Inpaint",
}
KINDS: dict[str, str] = {
    "changen_gan": "changen.synthesis.gan.synthesizer:GanSynthesizer",
    "changen_diffusion": "changen.synthesis.diffusion.synthesizer:DiffusionSynthesizer",
}
RUN_OPTIONS = ("device",)
"""Options about where a synthesizer runs: passed on only to synthesizers that take them."""
SAMPLING_OPTIONS = {
    "steps": "--sampling-steps",
    "sampler": "--sampler",
    "switch": "--switch",
    "n_max": "--n-max",
    "n_min": "--n-min",
}
"""Options of synthesizers that sample in steps (diffusion), with the flag that sets each: a
synthesizer without them refuses them, naming the flag."""


def _resolve(target: str) -> Any:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _accepted(fn: Any, options: dict[str, Any], what: str) -> dict[str, Any]:
    """``options`` without the :data:`RUN_OPTIONS` that ``fn`` has no parameter for; a
    :data:`SAMPLING_OPTIONS` one it has none for is a :class:`ConfigError` about ``what``."""
    params = inspect.signature(fn).parameters
    for key in options:
        if key in SAMPLING_OPTIONS and key not in params:
            raise ConfigError(
                f"{SAMPLING_OPTIONS[key]} applies to synthesizers that sample in steps "
                f"(diffusion checkpoints); {what} takes none, so drop it"
            )
    return {k: v for k, v in options.items() if k not in RUN_OPTIONS or k in params}


def is_synthesizer_name(spec: str | Path) -> bool:
    """Whether ``spec`` names a registered synthesizer (a bare name, not a path)."""
    return isinstance(spec, str) and spec in SYNTHESIZERS


def load_synthesizer(spec: str | Path, **options: Any) -> Synthesizer:
    """A synthesizer by name (see :data:`SYNTHESIZERS`) or from a checkpoint or run folder
    (dispatched on the checkpoint's ``kind`` through :data:`KINDS`). A registered name is
    never read as a folder of the working directory (give ``./copy_paste`` for that)."""
    if not is_synthesizer_name(spec) and Path(spec).is_dir():
        folder = resolve_checkpoint(spec)
        kind = checkpoint_kind(folder)
        if kind not in KINDS:
            raise ConfigError(
                f"{folder}: a {kind!r} checkpoint is not a synthesizer; give one of kind "
                f"{', '.join(KINDS)}"
            )
        loader = _resolve(KINDS[kind]).from_checkpoint
        try:
            return loader(folder, **_accepted(loader, options, f"{folder} ({kind})"))
        except TypeError as e:
            raise ConfigError(f"{folder}: {e}; see help({loader.__qualname__})") from None
    if str(spec) not in SYNTHESIZERS:
        raise ConfigError(
            f"unknown synthesizer {str(spec)!r}; choose one of {', '.join(SYNTHESIZERS)} "
            f"or give the folder of a trained checkpoint"
        )
    cls = _resolve(SYNTHESIZERS[str(spec)])
    try:
        return cls(**_accepted(cls, options, f"synthesizer {str(spec)!r}"))
    except TypeError as e:
        raise ConfigError(f"synthesizer {str(spec)!r}: {e}; see help({cls.__name__})") from None


__all__ = [
    "KINDS",
    "SAMPLING_OPTIONS",
    "SYNTHESIZERS",
    "SynthesisBatch",
    "Synthesizer",
    "is_synthesizer_name",
    "load_synthesizer",
]
