"""``changen data``: inspect, convert and generate datasets."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from changen.cli import jsonout, options
from changen.cli.progress import rich_sink

app = typer.Typer(help="Inspect, convert and generate datasets.", no_args_is_help=True)


@app.command()
def inspect(
    path: Path = typer.Argument(..., help="Dataset folder (format detected) or file."),
    format: str | None = typer.Option(None, "--format", "-f", help="Force a format."),
    taxonomy: str | None = typer.Option(
        None, help="Taxonomy to read masks with: a built-in name or a taxonomy JSON file."
    ),
    limit: int | None = typer.Option(None, min=1, help="Inspect only the first N items."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    label_values: str | None = options.LABEL_VALUES,
    binary_threshold: int | None = options.BINARY_THRESHOLD,
    split: str | None = options.SPLIT,
) -> None:
    """Detect a dataset's format and print counts, sizes, bands, classes and objects, and a
    warning line per kind of label the reader skipped."""
    from changen.data.inspect import inspect_dataset

    labels = options.label_options(path, format, label_values, binary_threshold)
    with rich_sink(not as_json, unit="items", transient=True) as sink:
        summary = inspect_dataset(
            path,
            format=format,
            taxonomy=taxonomy,
            limit=limit,
            progress=sink,
            split=split,
            **labels,
        )
    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = Table(title=f"{summary['root']}  ({summary['format']}, {summary['kind']})")
    table.add_column("field")
    table.add_column("value")
    for key in ("n_items", "taxonomy", "sizes", "bands", "dtype", "n_objects"):
        table.add_row(key, str(summary[key]))
    names = summary["classes"]
    for cid, count in summary["class_pixels"].items():
        table.add_row(f"class {cid} ({names.get(cid, '?')})", f"{count:,} px")
    for value, count in summary.get("change_pixels", {}).items():
        table.add_row(f"change={value}", f"{count:,} px")
    if "n_changed_items" in summary:
        table.add_row("items with change", str(summary["n_changed_items"]))
    console = Console()
    console.print(table)
    for row in summary["skipped_labels"]:
        count = f"{row['count']} label{'s' if row['count'] > 1 else ''}"
        files = f"{row['files']} file{'s' if row['files'] > 1 else ''}"
        line = f"{count} skipped ({row['kind']}) in {files}, e.g. {row['example']}"
        console.print(
            f"[yellow]warning:[/] {escape(line)}: {escape(row['fix'])}",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def convert(
    src: Path = typer.Argument(..., help="Source dataset (change or single-temporal)."),
    dst: Path = typer.Argument(..., help="Output folder."),
    layout: str = typer.Option(
        ...,
        help="Output layout: levircd, second, second_rgb or geotiff for change datasets; "
        "folder (images/ masks/ [instances/]) for single-temporal ones.",
    ),
    format: str | None = typer.Option(None, "--format", "-f", help="Force the source format."),
    taxonomy: str | None = typer.Option(None, help="Built-in taxonomy of the source masks."),
    split: str | None = typer.Option(None, help="Convert only this split (e.g. train)."),
    label_values: str | None = options.LABEL_VALUES,
    binary_threshold: int | None = options.BINARY_THRESHOLD,
    overwrite: bool = typer.Option(False, help="Replace what the folder holds (once complete)."),
    as_json: bool = jsonout.JSON,
) -> None:
    """Convert a dataset between layouts: change datasets to levircd, second(_rgb) or geotiff,
    single-temporal ones to a plain folder."""
    from changen.data.convert import convert as convert_dataset

    labels = options.label_options(src, format, label_values, binary_threshold)
    manifest = convert_dataset(
        src,
        dst,
        layout,
        format=format,
        taxonomy=taxonomy,
        overwrite=overwrite,
        split=split,
        **labels,
    )
    if as_json:
        counts = manifest["counts"]
        jsonout.emit({"out": dst, "layout": layout, "samples": counts["samples"], "counts": counts})
        return
    typer.echo(f"wrote {manifest['counts']['samples']} samples to {dst} ({layout})")


@app.command("sample-world")
def sample_world(
    out: Path = typer.Option(..., help="Output folder."),
    n: int = typer.Option(16, min=1, help="Number of scenes."),
    size: int = typer.Option(256, min=32, help="Scene size in pixels."),
    seed: int = typer.Option(0, min=0, help="Random seed."),
    pairs: bool = typer.Option(False, help="Write true change pairs (LEVIR-CD layout)."),
    overwrite: bool = typer.Option(False, help="Replace what the folder holds (once complete)."),
    as_json: bool = jsonout.JSON,
) -> None:
    """Render the procedural sample world: aerial-looking scenes with OpenEarthMap classes."""
    from changen.data.world import write_sample_world

    root = write_sample_world(out, n, seed, size=size, pairs=pairs, overwrite=overwrite)
    if as_json:
        jsonout.emit({"out": root, "items": n, "kind": "change" if pairs else "scene"})
        return
    typer.echo(f"wrote {n} {'change pairs' if pairs else 'scenes'} to {root}")
