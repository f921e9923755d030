"""``changen export``: a change dataset as Parquet, the Hugging Face Hub layout or WebDataset.

A thin layer over :func:`changen.generation.export.export_dataset` (formats and fields described
there and in docs/formats.md); prints what was written, or one JSON object with ``--json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from changen.cli import options
from changen.cli.progress import rich_sink


def export(
    dataset: Path = typer.Argument(..., help="Change dataset folder (format detected)."),
    to: str = typer.Option(..., "--to", help="Target: hf, parquet or webdataset."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (empty, or --overwrite)."),
    format: str | None = typer.Option(None, "--format", "-f", help="Force the dataset format."),
    taxonomy: str | None = typer.Option(
        None, help="Taxonomy to read masks with: a built-in name or a taxonomy JSON file."
    ),
    split: str | None = options.SPLIT,
    shard_size: int = typer.Option(
        1000, "--shard-size", min=1, help="Pairs per WebDataset tar shard."
    ),
    overwrite: bool = typer.Option(False, help="Replace what --out holds."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    progress: bool = options.PROGRESS,
) -> None:
    """Export a change dataset with torchange's fields (t1_image, t2_image, t1_mask, t2_mask,
    change_mask as PNG bytes, image_name, split, provenance): Parquet per split, the Hub's
    data/ layout with a card, or WebDataset tar shards."""
    options.check_dataset(dataset, format)  # before torch is imported
    from changen.generation.export import export_dataset

    with rich_sink(progress and not as_json, unit="pairs", transient=True) as sink:
        result = export_dataset(
            dataset,
            out,
            to,
            format=format,
            taxonomy=taxonomy,
            split=split,
            shard_size=shard_size,
            overwrite=overwrite,
            progress=sink,
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    counts = ", ".join(f"{name} {n}" for name, n in sorted(result.splits.items()))
    Console().print(
        f"exported {sum(result.splits.values())} pairs ({counts}) as {to} to {result.out} "
        f"({len(result.files)} files)",
        highlight=False,
        soft_wrap=True,
    )
