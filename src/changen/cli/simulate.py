"""``changen simulate``: run the change-event process over a single-temporal dataset.

A thin layer over :func:`changen.generation.simulate.simulate_dataset` (which documents the output
layout): it turns the event flags (or a ``--config`` JSON) into a :class:`ChangeProcess`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from changen.data.output import check_output_dir
from changen.errors import ConfigError
from changen.sample import Taxonomy

if TYPE_CHECKING:
    from changen.events import ChangeProcess, TransitionKernel


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
    kernel fits the taxonomy (``--kernel``, or the built-in OpenEarthMap one). Without
    ``--fill`` removed objects take :func:`~changen.events.default_fill` of the taxonomy
    (``background`` in unlabeled mode, whose only other class is "object").
    """
    from changen.events import OPENEARTHMAP_KERNEL, ChangeProcess, default_fill

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
    default = "background" if unlabeled else default_fill(taxonomy)
    return ChangeProcess.from_flags(
        events=kinds,
        steps=1 if steps is None else steps,
        count=parse_range(count or "1:5", "--count", int),
        scale=parse_range(scale or "0.5:1.5", "--scale", float),
        rotate=rotate or "any",  # type: ignore[arg-type]
        flip=bool(flip),
        fill=fill or default,  # type: ignore[arg-type]
        kernel=transition,
    )


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
        "(default: surrounding for taxonomies of more than two classes, else background)",
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
    from changen.generation.simulate import UNLABELED_MODES, simulate_dataset

    if unlabeled not in UNLABELED_MODES:
        raise ConfigError(f"--unlabeled {unlabeled!r}: choose one of {', '.join(UNLABELED_MODES)}")
    check_output_dir(out, overwrite)
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
    counts = simulate_dataset(
        reader,
        process,
        out,
        seed=seed,
        mode=unlabeled,  # type: ignore[arg-type]
        limit=limit,
        write_preview=write_preview,
    )
    n = len(reader) if limit is None else min(limit, len(reader))
    summary = ", ".join(f"{counts[k]} {k}" for k in ("create", "remove", "reclass"))
    typer.echo(f"simulated {n} items × {process.steps} steps ({summary}) into {out}")
