"""The checkpoints of a Changen GAN run folder, and what resuming one needs.

``RUN/checkpoints/step-<N>/`` folders are named by :func:`step_dir`, listed by
:func:`step_checkpoints` and thinned to the newest few by :func:`prune_checkpoints`;
``RUN/checkpoints/last/`` is swapped in by :func:`publish_last`. Resuming reads the newest one
(:func:`latest_checkpoint`), its training config (:func:`resume_config`, :func:`check_resume`)
and the global RNG states saved with it (:func:`capture_rng`, :func:`restore_rng`). The folder
layout and checkpoint contents are documented in :mod:`changen.training.gan`.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from changen.errors import ConfigError, DataError
from changen.training.checkpoint import load_config
from changen.training.gan_config import RUNTIME_FIELDS, GanTrainConfig

# -- RNG state ------------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """Global RNG states (torch CPU, numpy legacy MT19937, python) as weights-only types."""
    np_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": random.getstate(),
    }


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


# -- run folder -----------------------------------------------------------------------------


def step_dir(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step-{step}"


def step_checkpoints(run: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of the run's ``step-<N>`` checkpoints, oldest first."""
    root = run / "checkpoints"
    found = []
    for p in root.glob("step-*") if root.is_dir() else ():
        suffix = p.name.removeprefix("step-")
        if p.is_dir() and suffix.isdigit():
            found.append((int(suffix), p))
    return sorted(found)


def latest_checkpoint(run: Path) -> Path:
    """``checkpoints/last``, else the newest ``step-<N>`` (a crash may fall between them)."""
    last = run / "checkpoints" / "last"
    if (last / "config.json").is_file():
        return last
    steps = step_checkpoints(run)
    if not steps:
        raise DataError(
            f"{run}: no checkpoint to resume from (no checkpoints/last); run without --resume "
            f"into an empty folder"
        )
    return steps[-1][1]


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def publish_last(checkpoint: Path) -> Path:
    """Make ``checkpoints/last`` a copy of ``checkpoint`` (hard links where the file system
    allows), swapped in by rename so that it is never half-written."""
    last = checkpoint.parent / "last"
    tmp = checkpoint.parent / ".last.part"
    old = checkpoint.parent / ".last.old"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    shutil.copytree(checkpoint, tmp, copy_function=_link_or_copy)
    if last.exists():
        os.replace(last, old)
    os.replace(tmp, last)
    shutil.rmtree(old, ignore_errors=True)
    return last


def prune_checkpoints(run: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` ``step-<N>`` folders."""
    for _, path in step_checkpoints(run)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def resume_config(run: Path, **overrides: Any) -> GanTrainConfig:
    """The training config of ``run`` with the runtime fields in ``overrides`` replaced."""
    fixed = sorted(k for k in overrides if k not in RUNTIME_FIELDS)
    if fixed:
        raise ConfigError(
            f"{', '.join(fixed)} cannot change when resuming (the run's config.json fixes "
            f"them); drop them, or start a new run"
        )
    saved = GanTrainConfig.from_dict(load_config(latest_checkpoint(run))["train"])
    return dataclasses.replace(saved, **overrides)


def check_resume(config: GanTrainConfig, saved: GanTrainConfig, where: Path) -> None:
    """A resumed run may only change runtime fields (and ``events`` None means the saved one)."""
    mine = config.to_dict()
    theirs = saved.to_dict()
    if mine["events"] is None:
        mine["events"] = theirs["events"]
    diff = sorted(k for k in mine if k not in RUNTIME_FIELDS and mine[k] != theirs[k])
    if diff:
        raise ConfigError(
            f"{where}: resuming with a different {', '.join(diff)} than the run was started "
            f"with; use resume_config() (or the CLI's --resume) to keep them"
        )
