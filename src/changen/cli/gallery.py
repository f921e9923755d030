"""``changen gallery``: a static HTML page browsing a change dataset (see
:mod:`changen.viz.gallery`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from changen.cli import jsonout
from changen.cli.options import check_dataset
from changen.errors import DataError
from changen.sample import Taxonomy


def source_taxonomy(dataset: Path) -> Taxonomy | None:
    """The taxonomy a generated dataset's events refer to (its ``generation.json``), if any."""
    from changen.generation.shards import RUN_CONFIG, read_run_config

    config = read_run_config(dataset)
    if config is None:
        return None
    try:
        return Taxonomy.from_dict(config["taxonomy"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(
            f"{dataset / RUN_CONFIG}: no readable taxonomy ({type(e).__name__}: {e}); "
            f"regenerate the dataset with --overwrite"
        ) from None


def write_gallery(dataset: Path, out: Path | None = None, **options: Any) -> Path:
    """The gallery of ``dataset`` with the events of its manifest (a generated dataset's
    provenance; none for other datasets); ``options`` go to :func:`render_gallery`."""
    from changen.generation.shards import read_rows
    from changen.viz.gallery import render_gallery

    rows = read_rows(dataset)
    return render_gallery(
        dataset,
        out,
        rows=rows or None,
        source_taxonomy=source_taxonomy(dataset),
        **options,
    )


def gallery(
    dataset: Path = typer.Argument(..., help="Change dataset folder (generated, LEVIR-CD, …)."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="HTML file to write. (default: DATASET/gallery/index.html)"
    ),
    limit: int = typer.Option(200, min=1, help="Show the first N samples."),
    thumb: int = typer.Option(160, min=16, help="Thumbnail size in pixels."),
    format: str | None = typer.Option(None, "--format", "-f", help="Force the dataset format."),
    taxonomy: str | None = typer.Option(None, help="Built-in taxonomy of the masks."),
    as_json: bool = jsonout.JSON,
) -> None:
    """Write a static HTML gallery: t1/t2 thumbnails, coloured masks, change overlay, events,
    filters by event type."""
    check_dataset(dataset, format)  # before torch is imported
    page = write_gallery(dataset, out, limit=limit, format=format, taxonomy=taxonomy, thumb=thumb)
    if as_json:
        jsonout.emit({"page": page.resolve(), "url": page.resolve().as_uri()})
        return
    typer.echo(f"gallery: {page.resolve().as_uri()}")
