"""``changen gallery``: a static HTML page browsing a change dataset (see
:mod:`changen.viz.gallery`)."""

from __future__ import annotations

from pathlib import Path

import typer


def gallery(
    dataset: Path = typer.Argument(..., help="Change dataset folder (generated, LEVIR-CD, …)."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="HTML file to write. (default: DATASET/gallery/index.html)"
    ),
    limit: int = typer.Option(200, min=1, help="Show the first N samples."),
    thumb: int = typer.Option(160, min=16, help="Thumbnail size in pixels."),
    format: str | None = typer.Option(None, "--format", "-f", help="Force the dataset format."),
    taxonomy: str | None = typer.Option(None, help="Built-in taxonomy of the masks."),
) -> None:
    """Write a static HTML gallery: t1/t2 thumbnails, coloured masks, change overlay, events,
    filters by event type."""
    from changen.viz.gallery import render_gallery

    page = render_gallery(dataset, out, limit=limit, format=format, taxonomy=taxonomy, thumb=thumb)
    typer.echo(f"gallery: {page.resolve().as_uri()}")
