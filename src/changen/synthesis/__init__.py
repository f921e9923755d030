"""Semantic change synthesis: post-event images from the pre-event image and both masks.

:data:`SYNTHESIZERS` maps a name to ``(module, class)``; modules are imported on first use.
:func:`load_synthesizer` takes a name or the path of a trained checkpoint folder.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from changen.errors import ConfigError
from changen.synthesis.base import SynthesisBatch, Synthesizer

SYNTHESIZERS: dict[str, tuple[str, str]] = {
    "copy_paste": ("changen.synthesis.copy_paste", "CopyPaste"),
    "inpaint": ("changen.synthesis.inpaint", "Inpaint"),
}


def load_synthesizer(spec: str | Path, **options: Any) -> Synthesizer:
    """A synthesizer by name (see :data:`SYNTHESIZERS`) or from a checkpoint folder."""
    path = Path(spec)
    if path.is_dir():
        from changen.synthesis.gan.synthesizer import GanSynthesizer

        return GanSynthesizer.from_checkpoint(path, **options)
    try:
        module, name = SYNTHESIZERS[str(spec)]
    except KeyError:
        raise ConfigError(
            f"unknown synthesizer {str(spec)!r}; choose one of {', '.join(SYNTHESIZERS)} "
            f"or give the folder of a trained checkpoint"
        ) from None
    cls = getattr(importlib.import_module(module), name)
    try:
        return cls(**options)
    except TypeError as e:
        raise ConfigError(f"synthesizer {str(spec)!r}: {e}; see help({cls.__name__})") from None


__all__ = ["SYNTHESIZERS", "SynthesisBatch", "Synthesizer", "load_synthesizer"]
