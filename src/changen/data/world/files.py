"""Writing a sample-world dataset to disk, in the folder or the LEVIR-CD layout (built under a
staging name and renamed into place when complete: :func:`changen.data.staging.staged_output`)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from changen.data.staging import staged_output
from changen.data.world.change import render_change_pair
from changen.data.world.config import ChangeConfig, WorldConfig
from changen.data.world.scene import render_scene
from changen.data.writers import WRITERS, SceneFolderWriter
from changen.errors import ConfigError
from changen.taxonomies import OPENEARTHMAP


def item_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of item ``index`` of a run with ``seed`` (independent of worker count)."""
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def write_sample_world(
    out: str | os.PathLike[str],
    n: int,
    seed: int,
    size: int = 256,
    pairs: bool = False,
    overwrite: bool = False,
    *,
    config: WorldConfig | None = None,
    change: ChangeConfig | None = None,
) -> Path:
    """Write ``n`` sample-world items named ``world_00000``… to ``out`` and return it.

    Scenes go to the folder layout (``images/ masks/ instances/`` + ``manifest.json``); with
    ``pairs=True`` change pairs go to the LEVIR-CD layout (``A/ B/ label/ A_mask/ B_mask/``).
    Item ``i`` draws from ``SeedSequence([seed, i])``. The configs and seed are recorded in the
    manifest's provenance. ``size`` overrides ``config.size``. ``out`` must be absent or empty
    unless ``overwrite``; it is replaced only once the new dataset is complete.
    """
    if n < 1:
        raise ConfigError(f"n={n}: write at least one sample-world item")
    config = replace(config or WorldConfig(), size=size)
    change = change or ChangeConfig()
    provenance: dict[str, object] = {
        "generator": "changen.data.world",
        "seed": seed,
        "n": n,
        "pairs": pairs,
        "world_config": config.to_dict(),
    }
    if pairs:
        provenance["change_config"] = change.to_dict()
    with staged_output(out, overwrite=overwrite) as stage:
        if pairs:
            with WRITERS["levircd"](stage, OPENEARTHMAP, provenance=provenance) as writer:
                for i in range(n):
                    name = f"world_{i:05d}"
                    writer.write(render_change_pair(item_rng(seed, i), config, change, name=name))
        else:
            with SceneFolderWriter(stage, OPENEARTHMAP, provenance=provenance) as scenes:
                for i in range(n):
                    scenes.write(render_scene(item_rng(seed, i), config, name=f"world_{i:05d}"))
    return Path(out)
