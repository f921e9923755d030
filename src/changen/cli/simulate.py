"""``changen simulate``: run the change-event process over a single-temporal dataset.

For every item ``<name>`` of SOURCE it writes, under OUT::

    masks/<name>_t<k>.png                    class-id masks, k = 0..T (t0 is the source mask)
    change/<name>_t<i>_t<j>.png              binary change of consecutive steps, 0/255
    semantic_change/<name>_t<i>_t<j>.png     from-to map, 16-bit: from * N + to (0 = unchanged,
                                             65535 = ignore; N = semantic_change_base below)
    contours/<name>_t<k>.png                 unlabeled mode only: instance contours, 0/255
    preview/<name>.png                       masks over time with events outlined, change maps
    events.jsonl                             one event record per line, with its item name
    process.json                             the ChangeProcess (reusable with --config)
    manifest.json                            taxonomy, semantic_change_base, seed, source,
                                             counts of the run

Ignore pixels of the source (its taxonomy's ignore id) are never edited and are 0 in the change
maps; the masks keep the ignore id so consumers can exclude them. Item ``i`` of the dataset
draws from ``SeedSequence([seed, i])``, so any item is reproducible on its own. Every file is
written atomically.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import typer

from changen.data.atomic import write_text_atomic
from changen.data.imageio import write_image
from changen.errors import ConfigError, DataError, OutputExistsError
from changen.sample import Scene, Taxonomy

if TYPE_CHECKING:
    from changen.data.readers.base import Reader
    from changen.events import ChangeChain, ChangeProcess, TransitionKernel

UNLABELED_MODES = ("none", "instances", "slic", "felzenszwalb")
PREVIEW_CELL = 256
PROPOSAL_MAX_FRACTION = 16
"""Proposed regions larger than 1/16 of the image (fields, water) stay background: free space."""


def parse_range(text: str, option: str, kind: type[int] | type[float]) -> tuple[Any, Any]:
    """Parse ``LO:HI`` (or a single value ``V`` meaning ``V:V``) for option ``option``."""
    parts = text.split(":")
    try:
        if len(parts) == 1:
            lo = hi = kind(parts[0])
        elif len(parts) == 2:
            lo, hi = kind(parts[0]), kind(parts[1])
        else:
            raise ValueError(text)
    except ValueError:
        example = "1:5" if kind is int else "0.5:1.5"
        raise ConfigError(
            f"{option} {text!r}: expected LO:HI (or one value) of {kind.__name__}s, "
            f"e.g. {option} {example}"
        ) from None
    if lo > hi or lo < 0:
        raise ConfigError(f"{option} {text!r}: need 0 <= LO <= HI")
    return lo, hi


def semantic_change_base(taxonomy: Taxonomy) -> int:
    """N of the from-to codes ``from * N + to``: the largest non-ignore class id plus one."""
    return max(i for i in taxonomy.ids if i != taxonomy.ignore) + 1


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty output folder unless overwriting is allowed."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(
            f"{out}: the folder is not empty; choose an empty --out or pass --overwrite"
        )


def load_kernel(path: Path) -> TransitionKernel:
    """A transition kernel JSON: ``{"from": {"to": weight}}`` or ``TransitionKernel.to_dict``."""
    from changen.events import TransitionKernel

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if "rows" in data:
            return TransitionKernel.from_json_dict(data)
        table = {int(s): {int(t): float(w) for t, w in row.items()} for s, row in data.items()}
        return TransitionKernel.from_dict(table, name=path.stem)
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as e:
        raise ConfigError(
            f"{path}: not a transition kernel ({type(e).__name__}: {e}); write "
            f'JSON like {{"1": {{"2": 0.5, "3": 0.5}}}} (from class: to class: '
            f"weight)"
        ) from None


def kernel_fits(kernel: TransitionKernel, taxonomy: Taxonomy) -> bool:
    """True if every class id of the kernel is a class of the taxonomy."""
    return {c for edge in kernel.edges for c in edge} <= set(taxonomy.ids)


def build_process(
    config: Path | None,
    taxonomy: Taxonomy,
    *,
    steps: int | None,
    events: str | None,
    count: str | None,
    scale: str | None,
    rotate: str | None,
    flip: bool | None,
    fill: str | None,
    kernel: Path | None,
    unlabeled: bool,
) -> ChangeProcess:
    """The process from ``--config`` JSON or from the event flags (never both).

    Without ``--events`` the events are create and remove, plus reclass when a transition
    kernel fits the taxonomy (``--kernel``, or the built-in OpenEarthMap one).
    """
    from changen.events import OPENEARTHMAP_KERNEL, ChangeProcess

    flags = {
        "--steps": steps,
        "--events": events,
        "--count": count,
        "--scale": scale,
        "--rotate": rotate,
        "--flip": flip,
        "--fill": fill,
        "--kernel": kernel,
    }
    if config is not None:
        given = [name for name, value in flags.items() if value is not None]
        if given:
            raise ConfigError(
                f"--config {config} defines the process; drop {', '.join(given)} or drop --config"
            )
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
            return ChangeProcess.from_dict(data)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise ConfigError(
                f"{config}: not a change-process JSON ({type(e).__name__}: {e}); "
                f"pass the process.json of an earlier run"
            ) from None
    transition = load_kernel(kernel) if kernel is not None else OPENEARTHMAP_KERNEL
    fits = not unlabeled and kernel_fits(transition, taxonomy)
    kinds = events or ("create,remove,reclass" if fits else "create,remove")
    if "reclass" in [k.strip() for k in kinds.split(",")] and not fits:
        why = (
            "unlabeled mode has one class (object)"
            if unlabeled
            else f"kernel {transition.name!r} uses classes that taxonomy {taxonomy.name!r} "
            f"lacks; pass --kernel FILE"
        )
        raise ConfigError(f"--events reclass: {why}, or drop reclass from --events")
    return ChangeProcess.from_flags(
        events=kinds,
        steps=1 if steps is None else steps,
        count=parse_range(count or "1:5", "--count", int),
        scale=parse_range(scale or "0.5:1.5", "--scale", float),
        rotate=rotate or "any",  # type: ignore[arg-type]
        flip=bool(flip),
        fill=fill or "background",  # type: ignore[arg-type]
        kernel=transition,
    )


def proposal_min_area(process: ChangeProcess) -> int:
    """The smallest ``min_area`` of the process's events (regions below it are dropped)."""
    return min(int(getattr(e.config, "min_area", 0)) for e in process.events)


def scene_layers(
    scene: Scene, mode: str, taxonomy: Taxonomy, min_area: int
) -> tuple[np.ndarray, np.ndarray | None, Taxonomy]:
    """The mask, instance map and taxonomy the events run on, by ``--unlabeled`` mode."""
    from changen.events.unlabeled import (
        OBJECT_TAXONOMY,
        agnostic_mask,
        prepare_instances,
        propose_instances,
    )

    where = scene.source or scene.name
    if mode == "none":
        if scene.mask is None:
            raise DataError(
                f"{where}: has no mask; pass --unlabeled instances (to use its "
                f"instance map) or --unlabeled slic (to segment the image)"
            )
        return scene.mask, scene.instances, taxonomy
    if mode == "instances":
        if scene.instances is None:
            raise DataError(
                f"{where}: has no instance map; pass --unlabeled slic (or "
                f"felzenszwalb) to segment the image into regions"
            )
        instances = prepare_instances(scene.instances, min_area=min_area)
    else:
        h, w = scene.shape
        instances = propose_instances(
            scene.image,
            mode,  # type: ignore[arg-type]
            min_area=min_area,
            max_area=h * w // PROPOSAL_MAX_FRACTION,
        )
    return agnostic_mask(instances), instances, OBJECT_TAXONOMY


def event_regions(chain: ChangeChain, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bool maps of the pixels created, removed and reclassed between steps ``k-1`` and ``k``."""
    before, after = chain.instances[k - 1], chain.instances[k]
    ids: dict[str, list[int]] = {"create": [], "remove": [], "reclass": []}
    for record in chain.records(k - 1, k):
        ids[record.event].append(record.source_id if record.event == "remove" else record.new_id)
    return (
        np.isin(after, ids["create"]) & (after > 0),
        np.isin(before, ids["remove"]) & (before > 0),
        np.isin(after, ids["reclass"]) & (after > 0),
    )


def preview(
    scene: Scene, chain: ChangeChain, taxonomy: Taxonomy, contours: list[np.ndarray] | None
) -> np.ndarray:
    """Masks over time (events outlined, legend at t1), the image and the change maps."""
    import cv2

    from changen.viz import make_grid, overlay_events

    h, w = chain.masks.shape[1:]
    f = PREVIEW_CELL / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))

    def small(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)

    steps = chain.masks.shape[0]
    masks: list[np.ndarray | None] = [taxonomy.colorize(small(chain.masks[0]))]
    changes: list[np.ndarray | None] = [scene.image]
    for k in range(1, steps):
        created, removed, reclassed = (small(r) > 0 for r in event_regions(chain, k))
        masks.append(
            overlay_events(
                taxonomy.colorize(small(chain.masks[k])),
                created,
                removed,
                reclassed,
                thickness=2,
                legend=k == 1,
            )
        )
        changes.append(chain.change(k - 1, k) == 1)
    rows = [masks, changes]
    labels = ["masks", "image | change"]
    if contours is not None:
        rows.append([c.astype(bool) for c in contours])
        labels.append("contours")
    titles = [f"t{k}" for k in range(steps)]
    return make_grid(rows, titles=titles, row_labels=labels, cell=PREVIEW_CELL)


def simulate_item(
    scene: Scene,
    index: int,
    process: ChangeProcess,
    seed: int,
    mode: str,
    taxonomy: Taxonomy,
    out: Path,
    *,
    write_preview: bool,
) -> list[dict[str, Any]]:
    """Simulate one scene, write its masks, change maps and preview; return its event records."""
    from changen.events import simulate as simulate_chain
    from changen.events.unlabeled import contour_map
    from changen.viz import save_png

    mask, instances, tax = scene_layers(scene, mode, taxonomy, proposal_min_area(process))
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    chain = simulate_chain(mask, process, rng, instances=instances, taxonomy=tax)
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
        save_png(out / "preview" / f"{name}.png", preview(scene, chain, tax, contours))
    return [{"item": name, **r.to_dict()} for r in chain.log]


def run(
    reader: Reader[Any],
    process: ChangeProcess,
    out: Path,
    *,
    seed: int,
    mode: str,
    limit: int | None,
    write_preview: bool,
    source: Path,
) -> Counter[str]:
    """Simulate the first ``limit`` items of ``reader`` into ``out``; return event counts."""
    from rich.progress import Progress

    from changen.events.unlabeled import OBJECT_TAXONOMY

    n = len(reader) if limit is None else min(limit, len(reader))
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "process.json", json.dumps(process.to_dict(), indent=2) + "\n")
    lines: list[str] = []
    counts: Counter[str] = Counter()
    with Progress(transient=True) as progress:
        task = progress.add_task("simulating", total=n)
        for i in range(n):
            scene = reader[i]
            records = simulate_item(
                scene,
                i,
                process,
                seed,
                mode,
                scene.taxonomy or reader.taxonomy,
                out,
                write_preview=write_preview,
            )
            lines.extend(json.dumps(r) for r in records)
            counts.update(r["event"] for r in records)
            progress.advance(task)
    write_text_atomic(out / "events.jsonl", "".join(f"{line}\n" for line in lines))
    taxonomy = reader.taxonomy if mode == "none" else OBJECT_TAXONOMY
    manifest = {
        "kind": "simulated_masks",
        "source": str(source),
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


def simulate(
    source: Path = typer.Argument(..., help="Single-temporal dataset (format detected)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (empty, or --overwrite)."),
    steps: int | None = typer.Option(None, help="Time steps T of the chain. (default: 1)"),
    events: str | None = typer.Option(
        None,
        help="Comma-separated events: create, remove, reclass. (default: create,remove, "
        "plus reclass when the transition kernel fits the taxonomy)",
    ),
    count: str | None = typer.Option(
        None, help="Objects per event and step, LO:HI. (default: 1:5)"
    ),
    scale: str | None = typer.Option(
        None, help="Scale range of created objects, LO:HI. (default: 0.5:1.5)"
    ),
    rotate: str | None = typer.Option(
        None, help="Rotation of created objects: any, 90 or none. (default: any)"
    ),
    flip: bool | None = typer.Option(
        None,
        "--flip/--no-flip",
        help="Mirror created objects left-right with probability 1/2. (default: no-flip)",
    ),
    fill: str | None = typer.Option(
        None,
        help="What removed objects become: background or "
        "surrounding (the majority class around them). "
        "(default: background)",
    ),
    kernel: Path | None = typer.Option(
        None,
        help="Transition kernel JSON for reclass, "
        '{"from": {"to": weight}}. (default: OpenEarthMap)',
    ),
    seed: int = typer.Option(0, help="Random seed; item i draws from SeedSequence((seed, i))."),
    format: str | None = typer.Option(None, "--format", "-f", help="Force the source format."),
    taxonomy: str | None = typer.Option(None, help="Built-in taxonomy of the source masks."),
    limit: int | None = typer.Option(None, min=1, help="Simulate only the first N items."),
    overwrite: bool = typer.Option(
        False, help="Allow writing into a non-empty --out (files of the same name are replaced)."
    ),
    config: Path | None = typer.Option(
        None,
        help="ChangeProcess JSON (e.g. an earlier run's process.json) instead of the event flags.",
    ),
    unlabeled: str = typer.Option(
        "none",
        help="Class-agnostic mode: 'instances' (the dataset's instance maps, e.g. "
        "SAM), 'slic' or 'felzenszwalb' (regions proposed from the image; those over 1/16 "
        "of the image stay background); 'none' uses masks.",
    ),
    write_preview: bool = typer.Option(
        True, "--preview/--no-preview", help="Write preview/<name>.png grids."
    ),
) -> None:
    """Simulate change events over time: masks at t0..tT, change labels, event log, previews."""
    from changen.data.readers import open_dataset

    if unlabeled not in UNLABELED_MODES:
        raise ConfigError(f"--unlabeled {unlabeled!r}: choose one of {', '.join(UNLABELED_MODES)}")
    check_output(out, overwrite)
    reader = open_dataset(source, format=format, taxonomy=taxonomy)
    process = build_process(
        config,
        reader.taxonomy,
        steps=steps,
        events=events,
        count=count,
        scale=scale,
        rotate=rotate,
        flip=flip,
        fill=fill,
        kernel=kernel,
        unlabeled=unlabeled != "none",
    )
    counts = run(
        reader,
        process,
        out,
        seed=seed,
        mode=unlabeled,
        limit=limit,
        write_preview=write_preview,
        source=source,
    )
    n = len(reader) if limit is None else min(limit, len(reader))
    summary = ", ".join(f"{counts[k]} {k}" for k in ("create", "remove", "reclass"))
    typer.echo(f"simulated {n} items × {process.steps} steps ({summary}) into {out}")
