"""``changen simulate``: run the change-event process over a single-temporal dataset.

A thin layer over :func:`changen.generation.simulate.simulate_dataset` (which documents the
output layout): the event flags (:mod:`changen.cli.options`, shared with ``generate``) or a
``ChangeProcess`` JSON given to ``--events`` become the process.
"""

from __future__ import annotations

from pathlib import Path

import typer

from changen.cli import jsonout, options
from changen.cli.progress import rich_sink
from changen.data.output import check_output_dir
from changen.errors import ConfigError


def simulate(
    sources: list[Path] = typer.Argument(
        None,
        help="Single-temporal dataset(s), format detected; several are pooled.",
        show_default=False,
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (empty, or --overwrite)."),
    steps: int | None = typer.Option(None, min=1, help="Time steps T of the chain. (default: 1)"),
    events: str | None = options.EVENTS,
    count: str | None = options.COUNT,
    scale: str | None = options.OBJECT_SCALE,
    rotate: str | None = options.OBJECT_ROTATE,
    flip: bool | None = options.OBJECT_FLIP,
    fill: str | None = options.FILL,
    kernel: Path | None = options.KERNEL,
    placement: str | None = options.PLACEMENT,
    within: str | None = options.WITHIN,
    seed: int = typer.Option(0, min=0, help="Random seed; see docs/architecture.md#seeding."),
    format: str | None = typer.Option(None, "--format", "-f", help="Force the source format."),
    taxonomy: str | None = typer.Option(None, help="Built-in taxonomy of the source masks."),
    limit: int | None = typer.Option(None, min=1, help="Simulate only the first N items."),
    split: str | None = options.SPLIT,
    sources_file: Path | None = options.SOURCES_FILE,
    gsd: float | None = options.GSD,
    source_gsd: float | None = options.SOURCE_GSD,
    binary_threshold: int | None = options.SOURCE_THRESHOLD,
    overwrite: bool = typer.Option(
        False, help="Replace what --out holds (kept until the new output is complete)."
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
    progress: bool = options.PROGRESS,
    as_json: bool = jsonout.JSON,
) -> None:
    """Simulate change events over time: masks at t0..tT, change labels, event log, previews."""
    from changen.cli.generate import source_entries
    from changen.data.readers.pooled import open_sources

    check_output_dir(out, overwrite)
    entries = source_entries(
        sources or [], sources_file, format, source_gsd, binary_threshold, split
    )
    reader = open_sources(entries, taxonomy, gsd)  # a wrong source fails here, before torch
    from changen.events.policy import unfired_warnings
    from changen.generation.simulate import UNLABELED_MODES, simulate_dataset

    if unlabeled not in UNLABELED_MODES:
        raise ConfigError(f"--unlabeled {unlabeled!r}: choose one of {', '.join(UNLABELED_MODES)}")
    if reader.kind != "scene":
        raise ConfigError(
            f"{reader.root}: simulate needs a single-temporal dataset (images + masks), got a "
            f"{reader.kind} dataset ({reader.format}); generate reads change datasets' t1 side"
        )
    process = options.change_process(
        events,
        reader.taxonomy,
        steps=steps,
        unlabeled=unlabeled != "none",
        count=count,
        scale=scale,
        rotate=rotate,
        flip=flip,
        fill=fill,
        kernel=kernel,
        placement=placement,
        within=within,
    )
    with rich_sink(progress, unit="items", transient=True) as sink:
        counts = simulate_dataset(
            reader,
            process,
            out,
            seed=seed,
            mode=unlabeled,  # type: ignore[arg-type]  # checked against UNLABELED_MODES above
            limit=limit,
            write_preview=write_preview,
            overwrite=overwrite,
            progress=sink,
        )
        for warning in unfired_warnings(process, counts):
            sink.note(warning)
    n = len(reader) if limit is None else min(limit, len(reader))
    if as_json:
        fired = {k: counts[k] for k in ("create", "remove", "reclass")}
        jsonout.emit({"out": out, "items": n, "steps": process.steps, "events": fired})
        return
    summary = ", ".join(f"{counts[k]} {k}" for k in ("create", "remove", "reclass"))
    typer.echo(f"simulated {n} items × {process.steps} steps ({summary}) into {out}")
