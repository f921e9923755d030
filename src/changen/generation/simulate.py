"""``changen simulate``'s writer: a change process over every scene of a dataset, written as
masks, labels, logs and previews.

For every item ``<name>`` it writes, under the output folder::

    masks/<name>_t<k>.png                    class-id masks, k = 0..T (t0 is the source mask)
    change/<name>_t<i>_t<j>.png              binary change of consecutive steps, 0/255
                                             (255 = changed; ignore pixels are 0)
    semantic_change/<name>_t<i>_t<j>.png     from-to map, 16-bit: from * N + to (0 = unchanged,
                                             65535 = ignore; N = semantic_change_base)
    contours/<name>_t<k>.png                 unlabeled mode only: instance contours, 0/255
    preview/<name>.png                       masks over time with events outlined, change maps
    events.jsonl                             one event record per line, with its item name
    process.json                             the ChangeProcess (reusable as a config)
    manifest.json                            taxonomy, semantic_change_base, seed, counts

Ignore pixels of the source are never edited. The ``change/`` PNGs follow LEVIR-CD (255 =
changed), so they have no ignore value and ignore pixels are 0 there; the masks keep the ignore
id and ``semantic_change/`` marks them 65535, whatever the taxonomy's ignore id. Item ``i``
draws its events from :func:`changen.seeding.events_rng` — the generator ``changen generate``
uses for sample ``i`` — so any item is reproducible on its own and a ``generate`` run with the
same seed simulates the same masks and events. The output is built under a staging name and
renamed into place once complete (:func:`changen.data.staging.staged_output`), so a bad item or
a full disk leaves the output folder as it was.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np

from changen.data.atomic import write_text_atomic
from changen.data.imageio import write_image
from changen.data.readers.base import Reader
from changen.data.staging import staged_output
from changen.engine.progress import SILENT, ProgressSink, track
from changen.errors import DataError
from changen.events.process import ChangeProcess, simulate
from changen.events.unlabeled import (
    OBJECT_TAXONOMY,
    agnostic_mask,
    contour_map,
    prepare_instances,
    propose_instances,
)
from changen.sample import Scene, Taxonomy
from changen.seeding import events_rng
from changen.viz import save_png
from changen.viz.events import chain_preview

UnlabeledMode = Literal["none", "instances", "slic", "felzenszwalb"]
ProposalMode = Literal["instances", "slic", "felzenszwalb"]
UNLABELED_MODES: tuple[str, ...] = ("none", "instances", "slic", "felzenszwalb")
PROPOSAL_MAX_FRACTION = 16
"""Proposed regions larger than 1/16 of the image (fields, water) stay background: free space."""


def semantic_change_base(taxonomy: Taxonomy) -> int:
    """N of the from-to codes ``from * N + to``: the largest non-ignore class id plus one."""
    return max(i for i in taxonomy.ids if i != taxonomy.ignore) + 1


def proposal_min_area(process: ChangeProcess) -> int:
    """The smallest ``min_area`` of the process's events (regions below it are dropped)."""
    return min(int(getattr(e.config, "min_area", 0)) for e in process.events)


def scene_layers(
    scene: Scene, mode: UnlabeledMode, taxonomy: Taxonomy, min_area: int
) -> tuple[np.ndarray, np.ndarray | None, Taxonomy]:
    """The mask, instance map and taxonomy the events run on, by unlabeled ``mode``:
    ``none`` uses the scene's mask (and instances), ``instances`` its class-agnostic instance
    map, ``slic``/``felzenszwalb`` regions proposed from the image."""
    where = scene.source or scene.name
    if mode == "none":
        if scene.mask is None:
            raise DataError(
                f"{where}: has no mask; pass --unlabeled instances (to use its "
                f"instance map) or --unlabeled slic (to segment the image)"
            )
        return scene.mask, scene.instances, taxonomy
    mask, instances = unlabeled_layers(scene.image, scene.instances, mode, min_area, where)
    return mask, instances, OBJECT_TAXONOMY


def unlabeled_layers(
    image: np.ndarray, instances: np.ndarray | None, mode: ProposalMode, min_area: int, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """The class-agnostic mask and instance map (:data:`OBJECT_TAXONOMY`) of an image by a
    proposal ``mode`` other than ``none``: ``instances`` prepares the given instance map,
    ``slic``/``felzenszwalb`` propose regions from the image (those over 1/16 of it stay
    background)."""
    if mode == "instances":
        if instances is None:
            raise DataError(
                f"{where}: has no instance map; pass --unlabeled slic (or "
                f"felzenszwalb) to segment the image into regions"
            )
        prepared = prepare_instances(instances, min_area=min_area)
    else:
        h, w = image.shape[:2]
        prepared = propose_instances(
            image, mode, min_area=min_area, max_area=h * w // PROPOSAL_MAX_FRACTION
        )
    return agnostic_mask(prepared), prepared


def simulate_scene(
    scene: Scene,
    index: int,
    process: ChangeProcess,
    seed: int,
    mode: UnlabeledMode,
    taxonomy: Taxonomy,
    out: Path,
    *,
    write_preview: bool,
) -> list[dict[str, Any]]:
    """Simulate one scene, write its masks, change maps and preview; return its event records."""
    mask, instances, tax = scene_layers(scene, mode, taxonomy, proposal_min_area(process))
    rng = events_rng(seed, index)
    chain = simulate(mask, process, rng, instances=instances, taxonomy=tax)
    name = scene.name or f"{index:06d}"
    steps = chain.masks.shape[0]
    for k in range(steps):
        write_image(out / "masks" / f"{name}_t{k}.png", chain.masks[k])
    for k in range(1, steps):
        pair = f"{name}_t{k - 1}_t{k}.png"
        change = (chain.change(k - 1, k) == 1).astype(np.uint8) * np.uint8(255)
        write_image(out / "change" / pair, change)
        write_image(
            out / "semantic_change" / pair, chain.semantic_change(k - 1, k).astype(np.uint16)
        )
    contours = None
    if mode != "none":
        contours = [contour_map(chain.instances[k]) for k in range(steps)]
        for k, c in enumerate(contours):
            write_image(out / "contours" / f"{name}_t{k}.png", c * np.uint8(255))
    if write_preview:
        save_png(out / "preview" / f"{name}.png", chain_preview(scene.image, chain, tax, contours))
    return [{"item": name, **r.to_dict()} for r in chain.log]


def simulate_dataset(
    reader: Reader[Any],
    process: ChangeProcess,
    out: Path,
    *,
    seed: int,
    mode: UnlabeledMode = "none",
    limit: int | None = None,
    write_preview: bool = True,
    overwrite: bool = False,
    progress: ProgressSink = SILENT,
) -> Counter[str]:
    """Simulate the first ``limit`` items of ``reader`` into ``out`` (absent or empty, unless
    ``overwrite`` replaces it); return event counts. One run at a time may write ``out``."""
    with staged_output(out, overwrite=overwrite) as stage:
        return _simulate(reader, process, stage, seed, mode, limit, write_preview, progress)


def _simulate(
    reader: Reader[Any],
    process: ChangeProcess,
    out: Path,
    seed: int,
    mode: UnlabeledMode,
    limit: int | None,
    write_preview: bool,
    progress: ProgressSink,
) -> Counter[str]:
    n = len(reader) if limit is None else min(limit, len(reader))
    write_text_atomic(out / "process.json", json.dumps(process.to_dict(), indent=2) + "\n")
    lines: list[str] = []
    counts: Counter[str] = Counter()
    for i in track(range(n), progress, "simulating"):
        scene = reader[i]
        tax = scene.taxonomy or reader.taxonomy
        records = simulate_scene(
            scene, i, process, seed, mode, tax, out, write_preview=write_preview
        )
        lines.extend(json.dumps(r) for r in records)
        counts.update(r["event"] for r in records)
    write_text_atomic(out / "events.jsonl", "".join(f"{line}\n" for line in lines))
    taxonomy = reader.taxonomy if mode == "none" else OBJECT_TAXONOMY
    manifest = {
        "kind": "simulated_masks",
        "source": str(reader.root),
        "seed": seed,
        "items": n,
        "steps": process.steps,
        "unlabeled": mode,
        "taxonomy": taxonomy.to_dict(),
        "semantic_change_base": semantic_change_base(taxonomy),
        "events": dict(counts),
    }
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return counts
