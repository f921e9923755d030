"""``changen train autoencoder``: train a latent autoencoder (KL or VQ) for latent diffusion.

A thin layer over :func:`changen.synthesis.diffusion.autoencoder_train.train_autoencoder`
(which documents the run folder, losses and defaults). Options left out take the defaults of
:class:`~changen.synthesis.diffusion.autoencoder_train.AutoencoderTrainConfig` (several depend
on ``--kind`` and ``--preset``); with ``--resume`` they take the run's recorded values and only
the runtime options may be given. The run folder is locked for the whole command, and a new run
that fails before its first checkpoint leaves no folder behind (:mod:`changen.cli.runs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from changen.cli import jsonout, options
from changen.cli.progress import rich_sink
from changen.cli.runs import run_folder
from changen.errors import ConfigError


def autoencoder(
    data: str | None = typer.Argument(
        None, help="Single-temporal dataset whose images to learn (required unless --resume)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (new or empty, or --resume)."),
    kind: str | None = typer.Option(
        None, help="kl (AutoencoderKL, f=8) or vq (VQModel / VQGAN, f=4). (default: kl)"
    ),
    preset: str | None = typer.Option(
        None, help="full (SD VAE / LDM VQ-f4 widths) or tiny (CPU). (default: full)"
    ),
    format: str | None = typer.Option(None, "--format", "-f", help="Force the dataset format."),
    taxonomy: str | None = typer.Option(None, help="Built-in taxonomy of the masks."),
    holdout: float | None = typer.Option(
        None, help="Fraction of items held out for grids, PSNR and the scale. (default: 0.1)"
    ),
    size: int | None = typer.Option(
        None, min=8, help="Training crop side, a multiple of the factor. (default: 256)"
    ),
    augment: bool | None = typer.Option(
        None, "--augment/--no-augment", help="Random flips, 90° rotations. (default: on)"
    ),
    steps: int | None = typer.Option(
        None, min=1, help="Training steps (a resumed run may extend them). (default: 100000)"
    ),
    batch_size: int | None = typer.Option(
        None, min=1, help="Global batch, split over all devices. (default: 8)"
    ),
    lr: float | None = typer.Option(
        None, help="Learning rate. (default: 4.5e-6 × batch for full presets, 1e-3 for tiny)"
    ),
    grad_weight: float | None = typer.Option(
        None, help="Weight of the L1 on image gradients (edges). (default: 0.1)"
    ),
    reg_weight: float | None = typer.Option(
        None, help="Weight of the KL / codebook term. (default: 1e-6 kl, 1.0 vq)"
    ),
    disc_start: int | None = typer.Option(
        None, min=0, help="Step the patch-GAN term starts at. (default: 50001 kl, 0 vq)"
    ),
    disc_weight: float | None = typer.Option(
        None, help="Weight of the patch-GAN term, 0 = off. (default: 0.5 kl, 0.75 vq)"
    ),
    adaptive: bool | None = typer.Option(
        None,
        "--adaptive/--no-adaptive",
        help="LDM's adaptive GAN weight (gradient-norm ratio). (default: on)",
    ),
    seed: int | None = typer.Option(None, min=0, help="Random seed. (default: 0)"),
    precision: str | None = options.PRECISION,
    accelerator: str | None = options.ACCELERATOR,
    devices: str | None = options.DEVICES,
    num_nodes: int | None = options.NUM_NODES,
    workers: int | None = options.WORKERS,
    log_every: int | None = options.LOG_EVERY,
    sample_every: int | None = typer.Option(
        None, min=0, help="Steps between reconstruction grids, 0 = only at the end. (default: 500)"
    ),
    eval_every: int | None = typer.Option(
        None, min=0, help="Steps between held-out PSNR, 0 = only at the end. (default: 500)"
    ),
    eval_samples: int | None = typer.Option(
        None, min=1, help="Held-out crops for PSNR and the scaling factor. (default: 16)"
    ),
    preview: int | None = typer.Option(
        None, min=0, help="Held-out crops in each grid, 0 = no grids. (default: 4)"
    ),
    save_every: int | None = options.SAVE_EVERY,
    keep: int | None = options.KEEP,
    resume: bool = options.RESUME,
    progress: bool = options.PROGRESS,
    as_json: bool = jsonout.JSON,
) -> None:
    """Train a latent autoencoder (KL or VQ) on image crops; its checkpoints (and the run
    folder) open as a latent space for diffusion training.

    Losses need no downloaded weights: L1 (+ edge L1), KL or codebook, optional patch GAN.
    Run defaults: 2 workers, a checkpoint every 2000 steps, the newest 3 kept."""
    if data is not None:
        options.check_dataset(data, format)  # before torch is imported
    from changen.engine.config import RunConfig
    from changen.synthesis.diffusion.autoencoder_train import (
        RUNTIME_FIELDS,
        AutoencoderTrainConfig,
        default_run,
        resume_config,
        train_autoencoder,
    )

    fields: dict[str, Any] = {
        "data": data,
        "format": format,
        "taxonomy": taxonomy,
        "holdout": holdout,
        "kind": kind,
        "preset": preset,
        "size": size,
        "augment": augment,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "grad_weight": grad_weight,
        "reg_weight": reg_weight,
        "disc_start": disc_start,
        "disc_weight": disc_weight,
        "adaptive": adaptive,
        "seed": seed,
        "sample_every": sample_every,
        "eval_every": eval_every,
        "eval_samples": eval_samples,
        "preview": preview,
    }
    given = {k: v for k, v in fields.items() if v is not None}
    run = options.run_settings(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        precision=precision,
        workers=workers,
        log_every=log_every,
        save_every=save_every,
        keep=keep,
    )
    if resume:
        fixed = [k for k in given if k not in RUNTIME_FIELDS]
        fixed += [k for k in run if k == "precision"]
        if fixed:
            names = ", ".join("--" + k.replace("_", "-") for k in fixed)
            raise ConfigError(
                f"{names}: fixed by the run's config.json when resuming; drop them, or start a "
                f"new run in another folder"
            )
        config = resume_config(out, **given, **({"run": run} if run else {}))
    else:
        if data is None:
            raise ConfigError("DATA is required (the single-temporal dataset to train on)")
        defaults = default_run().to_dict() | {"workers": 2}
        config = AutoencoderTrainConfig(**given, run=RunConfig.from_dict(defaults | run))
    with run_folder(out, resume=resume) as run_dir, rich_sink(progress, unit="steps") as sink:
        result = train_autoencoder(config, run_dir, resume=resume, progress=sink)
    if as_json:
        jsonout.emit({"run": result.run, "checkpoint": result.checkpoint, "step": result.step})
        return
    typer.echo(f"trained to step {result.step}; checkpoint {result.checkpoint}")
