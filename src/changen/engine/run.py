"""The run folder every trainer writes, and what resuming one needs.

::

    RUN/config.json              what the run trains (the checkpoint config without its step)
    RUN/checkpoints/step-<N>/    a checkpoint every ``save_every`` steps; the newest ``keep``
    RUN/checkpoints/last/        the newest checkpoint (hard-linked copy of a step-<N>)
    RUN/metrics.csv, RUN/*.png   the metrics log and its plot (:mod:`changen.engine.metrics`)

``step-<N>`` folders are named by :func:`step_dir`, listed by :func:`step_checkpoints`,
written by :func:`save_step` (which also publishes ``last/`` and prunes). Resuming reads the
newest one (:func:`latest_checkpoint`), checks that only runtime settings changed
(:func:`check_resume`) and restores the global RNG states saved with it (:func:`capture_rng`,
:func:`restore_rng`). :func:`resolve_checkpoint` accepts a checkpoint or a run folder
wherever a checkpoint is asked for.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from changen.engine.checkpoint import CONFIG_NAME, save_checkpoint
from changen.engine.config import fixed_differences
from changen.errors import ConfigError, DataError

# -- RNG state ------------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    """Global RNG states (torch CPU and CUDA, numpy legacy MT19937, python) as weights-only
    types."""
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
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
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
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- run folder -----------------------------------------------------------------------------


def step_dir(run: Path, step: int) -> Path:
    """``RUN/checkpoints/step-<step>``."""
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
    if (last / CONFIG_NAME).is_file():
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


def save_step(
    run: Path,
    step: int,
    models: dict[str, nn.Module],
    config: dict[str, Any],
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write ``step-<step>``, make it ``last/`` and keep only the newest ``keep`` steps."""
    saved = save_checkpoint(step_dir(run, step), models, config, state)
    publish_last(saved)
    prune_checkpoints(run, keep)
    return saved


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint folder from itself or from a run folder (its ``checkpoints/last``, else its
    newest ``step-<N>``)."""
    folder = Path(path)
    if (folder / CONFIG_NAME).is_file() and any(folder.glob("*.safetensors")):
        return folder
    if (folder / "checkpoints").is_dir():
        return latest_checkpoint(folder)
    raise DataError(
        f"{folder}: neither a checkpoint (config.json + *.safetensors) nor a run folder with "
        f"checkpoints/; give RUN, RUN/checkpoints/last or RUN/checkpoints/step-<N>"
    )


def check_resume(
    now: Mapping[str, Any], saved: Mapping[str, Any], runtime: tuple[str, ...], where: Path
) -> None:
    """Refuse to resume when a training setting outside ``runtime`` (and the run's fixed
    :data:`~changen.engine.config.FIXED_FIELDS`) differs from the one the run started with."""
    diff = sorted(k for k in now if k not in (*runtime, "run") and now[k] != saved.get(k))
    diff += [f"run.{k}" for k in fixed_differences(now.get("run", {}), saved.get("run", {}))]
    if diff:
        raise ConfigError(
            f"{where}: resuming with a different {', '.join(diff)} than the run was started "
            f"with; resume with the run's own settings (see {where / 'config.json'})"
        )
