"""``changen train``: train models. ``changen train generator`` trains the Changen GAN,
``changen train diffusion`` a mask-conditioned diffusion model (RS-DiT).

Thin layers over :func:`changen.synthesis.gan.train.train_generator` and
:func:`changen.synthesis.diffusion.train.train_diffusion` (which document their run folders).
Options left out take the defaults of
:class:`~changen.synthesis.gan.train_config.GanTrainConfig` (and
:class:`~changen.synthesis.diffusion.train_config.DiffusionTrainConfig`); with ``--resume``
they take the run's recorded values, and only the runtime options (steps, devices, workers,
how often to log/sample/save/evaluate) may be given. The run folder is locked for the whole
command, and a new run that fails before its first checkpoint leaves no folder behind
(:mod:`changen.cli.runs`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from changen.cli import jsonout, options
from changen.cli.options import parse_range
from changen.cli.progress import rich_sink
from changen.cli.runs import run_folder
from changen.errors import ConfigError

if TYPE_CHECKING:
    from changen.data.readers.base import Reader

OPTION_NAMES = {"gan": "--gan-config", "events": "--events (and the other event options)"}

app = typer.Typer(help="Train generators and change detectors.", no_args_is_help=True)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{path}: cannot read the {what} JSON ({e}); fix or drop the file"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the {what} JSON must be an object")
    return data


def data_spec(
    data: list[str] | None,
    sources_file: Path | None,
    format: str | None,
    taxonomy: str | None,
    split: str | None,
    binary_threshold: int | None,
) -> tuple[str | list[dict[str, Any]] | None, Reader[Any] | None]:
    """The training config's ``data`` and its reader, opened now so that a wrong path fails
    before torch is imported: one plain DATA stays a path; several, ``--sources`` or
    ``--binary-threshold`` become source entries with absolute paths, pooled as ``generate``
    pools them. ``(None, None)`` when no data is named (``--resume``)."""
    from changen.cli.generate import source_entries
    from changen.data.readers.pooled import open_data_spec

    if not data and sources_file is None:
        return None, None
    spec: str | list[dict[str, Any]]
    if data and len(data) == 1 and sources_file is None and binary_threshold is None:
        spec = data[0]
        return spec, open_data_spec(spec, format, taxonomy, split)
    entries = source_entries(
        [Path(d) for d in data or []], sources_file, format, None, binary_threshold, split
    )
    spec = [dataclasses.asdict(e) | {"path": str(Path(e.path).resolve())} for e in entries]
    return spec, open_data_spec(spec, taxonomy=taxonomy)


def _events(reader: Reader[Any] | None, **flags: Any) -> dict[str, Any] | None:
    """The ``ChangeProcess`` dict of the event options, ``None`` when none was given (the
    trainer then takes the taxonomy's default process)."""
    if all(v is None for v in flags.values()):
        return None
    if reader is None:
        raise ConfigError("event options need DATA (their defaults depend on its taxonomy)")
    return options.change_process(flags.pop("events"), reader.taxonomy, **flags).to_dict()


def _refuse_fixed(given: dict[str, Any], run: dict[str, Any], runtime: tuple[str, ...]) -> None:
    """Refuse, when resuming, the options the run's config.json fixes."""
    fixed = [k for k in given if k not in runtime]
    fixed += [k for k in run if k == "precision"]
    if fixed:
        names = ", ".join(OPTION_NAMES.get(k, "--" + k.replace("_", "-")) for k in fixed)
        raise ConfigError(
            f"{names}: fixed by the run's config.json when resuming; drop them, or start a "
            f"new run in another folder"
        )


DATA = typer.Argument(
    None,
    help="Single-temporal dataset(s) to learn from, several pooled (required unless "
    "--resume or --sources).",
    show_default=False,
)
OUT = typer.Option(..., "--out", "-o", help="Run folder (new or empty, or --resume).")
FORMAT = typer.Option(None, "--format", "-f", help="Force the dataset format.")
TAXONOMY = typer.Option(None, help="Built-in taxonomy of the masks.")


@app.command()
def generator(
    data: list[str] | None = DATA,
    sources_file: Path | None = options.SOURCES_FILE,
    binary_threshold: int | None = options.SOURCE_THRESHOLD,
    out: Path = OUT,
    format: str | None = FORMAT,
    taxonomy: str | None = TAXONOMY,
    split: str | None = options.SPLIT,
    holdout: float | None = typer.Option(
        None, help="Fraction of items held out for samples and FID. (default: 0.1)"
    ),
    preset: str | None = typer.Option(
        None,
        help="changen, changen_no_destyle, changen_no_mask_destyle, oasis_gpcm, spade_gpcm "
        "or tiny. (default: changen)",
    ),
    width: float | None = typer.Option(
        None, help="Multiply every channel count of the preset. (default: 1.0)"
    ),
    gan_config: Path | None = typer.Option(
        None, help="GanConfig JSON overriding --preset/--width (class counts come from the data)."
    ),
    encoder_weights: str | None = typer.Option(
        None, help="Local ResNet-18 weights for the pre-event encoder (.safetensors or .pth)."
    ),
    size: int | None = typer.Option(
        None, min=32, help="Training crop side, a multiple of 32. (default: 256)"
    ),
    steps: int | None = typer.Option(
        None, min=1, help="Training iterations (a resumed run may extend them). (default: 100000)"
    ),
    batch_size: int | None = typer.Option(
        None, min=1, help="Global batch, split over all devices. (default: 32)"
    ),
    lr_g: float | None = typer.Option(None, help="Generator learning rate. (default: 1e-4)"),
    lr_d: float | None = typer.Option(None, help="Discriminator learning rate. (default: 4e-4)"),
    ema_decay: float | None = typer.Option(
        None, help="Decay of the generator's EMA. (default: 0.999)"
    ),
    precision: str | None = options.PRECISION,
    scale: str | None = typer.Option(None, help="Scale jitter range LO:HI. (default: 0.75:1.25)"),
    flip: bool | None = typer.Option(None, "--flip/--no-flip", help="Random flips. (default: on)"),
    rotate: bool | None = typer.Option(
        None, "--rotate/--no-rotate", help="Random 90° rotations. (default: on)"
    ),
    transpose: bool | None = typer.Option(
        None, "--transpose/--no-transpose", help="Random transposes. (default: on)"
    ),
    events: str | None = options.EVENTS,
    count: str | None = options.COUNT,
    fill: str | None = options.FILL,
    kernel: Path | None = options.KERNEL,
    placement: str | None = options.PLACEMENT,
    within: str | None = options.WITHIN,
    seed: int | None = typer.Option(None, min=0, help="Random seed. (default: 0)"),
    accelerator: str | None = options.ACCELERATOR,
    devices: str | None = options.DEVICES,
    num_nodes: int | None = options.NUM_NODES,
    workers: int | None = options.WORKERS,
    log_every: int | None = options.LOG_EVERY,
    sample_every: int | None = typer.Option(
        None, min=0, help="Steps between sample grids, 0 = only at the end. (default: 500)"
    ),
    save_every: int | None = options.SAVE_EVERY,
    keep: int | None = options.KEEP,
    fid_every: int | None = typer.Option(
        None, min=0, help="Steps between FID/KID on held-out crops, 0 = never. (default: 0)"
    ),
    fid_samples: int | None = typer.Option(
        None, min=1, help="Held-out crops used for FID/KID. (default: 256)"
    ),
    preview: int | None = typer.Option(
        None, min=0, help="Held-out items in each sample grid, 0 = no grids. (default: 4)"
    ),
    resume: bool = options.RESUME,
    progress: bool = options.PROGRESS,
    as_json: bool = jsonout.JSON,
) -> None:
    """Train the Changen GAN (bitemporal adversarial learning, events simulated on the fly).

    Run defaults: 2 workers, a checkpoint every 2000 steps, the newest 3 kept. The event
    options are those of ``simulate`` / ``generate`` but --steps, --scale, --rotate and --flip,
    which here mean training steps and augmentation (give created objects' scale or rotation
    in an --events JSON file)."""
    spec, reader = data_spec(data, sources_file, format, taxonomy, split, binary_threshold)
    pooled = isinstance(spec, list)  # the entries carry format and split
    from changen.engine.config import RunConfig
    from changen.synthesis.gan.train import train_generator
    from changen.synthesis.gan.train_config import (
        RUNTIME_FIELDS,
        GanTrainConfig,
        default_run,
        resume_config,
    )

    fields: dict[str, Any] = {
        "data": spec,
        "format": None if pooled else format,
        "taxonomy": taxonomy,
        "split": None if pooled else split,
        "holdout": holdout,
        "preset": preset,
        "width": width,
        "gan": None if gan_config is None else _read_json(gan_config, "GAN config"),
        "encoder_weights": encoder_weights,
        "size": size,
        "steps": steps,
        "batch_size": batch_size,
        "lr_g": lr_g,
        "lr_d": lr_d,
        "ema_decay": ema_decay,
        "scale": None if scale is None else parse_range(scale, "--scale", float),
        "flip": flip,
        "rotate": rotate,
        "transpose": transpose,
        "events": _events(
            reader,
            events=events,
            count=count,
            fill=fill,
            kernel=kernel,
            placement=placement,
            within=within,
        ),
        "seed": seed,
        "sample_every": sample_every,
        "fid_every": fid_every,
        "fid_samples": fid_samples,
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
        _refuse_fixed(given, run, RUNTIME_FIELDS)
        config = resume_config(out, **given, **({"run": run} if run else {}))
    else:
        if spec is None:
            raise ConfigError("DATA is required (the single-temporal dataset to train on)")
        defaults = default_run().to_dict() | {"workers": 2}
        config = GanTrainConfig(**given, run=RunConfig.from_dict(defaults | run))
    with run_folder(out, resume=resume) as run_dir, rich_sink(progress, unit="steps") as sink:
        result = train_generator(config, run_dir, resume=resume, progress=sink)
    if as_json:
        jsonout.emit({"run": result.run, "checkpoint": result.checkpoint, "step": result.step})
        return
    typer.echo(f"trained to step {result.step}; checkpoint {result.checkpoint}")


@app.command()
def diffusion(
    data: list[str] | None = DATA,
    sources_file: Path | None = options.SOURCES_FILE,
    binary_threshold: int | None = options.SOURCE_THRESHOLD,
    out: Path = OUT,
    format: str | None = FORMAT,
    taxonomy: str | None = TAXONOMY,
    holdout: float | None = typer.Option(
        None, help="Fraction of items held out for samples and FID. (default: 0.1)"
    ),
    unlabeled: str | None = typer.Option(
        None,
        help="Train on images without masks (Changen2's unlabeled mode): instances (the "
        "dataset's instance maps), slic or felzenszwalb (proposed regions); contour condition.",
    ),
    family: str | None = typer.Option(
        None, help="rsdit (Changen2) or ldm (ChangeAnywhere). (default: rsdit)"
    ),
    preset: str | None = typer.Option(
        None, help="Network size: tiny, small, S/2, B/2, L/2 or XL/2 for rsdit. (default: S/2)"
    ),
    labels: str | None = typer.Option(
        None,
        help="Label encoding: onehot, index, binary or contour. (default: onehot; binary for "
        "2 classes; contour with --unlabeled)",
    ),
    latent: str | None = typer.Option(
        None,
        help="pixel, a diffusers autoencoder folder or a `changen train autoencoder` run. "
        "(default: pixel)",
    ),
    size: int | None = typer.Option(None, min=8, help="Training crop side. (default: 256)"),
    steps: int | None = typer.Option(
        None, min=1, help="Training steps (a resumed run may extend them). (default: 400000)"
    ),
    batch_size: int | None = typer.Option(
        None, min=1, help="Global batch, split over all devices. (default: 32)"
    ),
    lr: float | None = typer.Option(None, help="AdamW learning rate. (default: 1e-4)"),
    ema_decay: float | None = typer.Option(
        None, help="Decay of the denoiser's EMA. (default: 0.9999; 0.999 for tiny and small)"
    ),
    scale: str | None = typer.Option(None, help="Scale jitter range LO:HI. (default: 1:1)"),
    flip: bool | None = typer.Option(None, "--flip/--no-flip", help="Random flips. (default: on)"),
    rotate: bool | None = typer.Option(
        None, "--rotate/--no-rotate", help="Random 90° rotations. (default: on)"
    ),
    transpose: bool | None = typer.Option(
        None, "--transpose/--no-transpose", help="Random transposes. (default: on)"
    ),
    cache_latents: bool | None = typer.Option(
        None,
        "--cache-latents/--no-cache-latents",
        help="Encode each item's crop once (fixes its augmentation). (default: off)",
    ),
    seed: int | None = typer.Option(None, min=0, help="Random seed. (default: 0)"),
    precision: str | None = options.PRECISION,
    accelerator: str | None = options.ACCELERATOR,
    devices: str | None = options.DEVICES,
    num_nodes: int | None = options.NUM_NODES,
    workers: int | None = options.WORKERS,
    log_every: int | None = options.LOG_EVERY,
    sample_every: int | None = typer.Option(
        None, min=0, help="Steps between sample grids, 0 = only at the end. (default: 1000)"
    ),
    sample_steps: int | None = typer.Option(
        None, min=1, help="DDIM steps of the sample grids and FID samples. (default: 25)"
    ),
    save_every: int | None = options.SAVE_EVERY,
    keep: int | None = options.KEEP,
    fid_every: int | None = typer.Option(
        None, min=0, help="Steps between FID/KID on held-out crops, 0 = never. (default: 0)"
    ),
    fid_samples: int | None = typer.Option(
        None, min=1, help="Held-out crops used for FID/KID. (default: 256)"
    ),
    preview: int | None = typer.Option(
        None, min=0, help="Held-out items in each sample grid, 0 = no grids. (default: 4)"
    ),
    resume: bool = options.RESUME,
    progress: bool = options.PROGRESS,
    as_json: bool = jsonout.JSON,
) -> None:
    """Train a mask-conditioned diffusion model (RS-DiT) on single-temporal scenes.

    No events are needed: the model learns P(image | mask); changes come in when it
    synthesises from simulated post-event masks. Run defaults: 2 workers, a checkpoint every
    5000 steps, the newest 3 kept."""
    spec, _ = data_spec(data, sources_file, format, taxonomy, None, binary_threshold)
    pooled = isinstance(spec, list)  # the entries carry the format
    from changen.engine.config import RunConfig
    from changen.synthesis.diffusion.train import train_diffusion
    from changen.synthesis.diffusion.train_config import (
        RUNTIME_FIELDS,
        DiffusionTrainConfig,
        default_run,
        resume_config,
    )

    fields: dict[str, Any] = {
        "data": spec,
        "format": None if pooled else format,
        "taxonomy": taxonomy,
        "holdout": holdout,
        "unlabeled": unlabeled,
        "family": family,
        "preset": preset,
        "labels": labels,
        "latent": latent,
        "size": size,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "ema_decay": ema_decay,
        "scale": None if scale is None else parse_range(scale, "--scale", float),
        "flip": flip,
        "rotate": rotate,
        "transpose": transpose,
        "cache_latents": cache_latents,
        "seed": seed,
        "sample_every": sample_every,
        "sample_steps": sample_steps,
        "fid_every": fid_every,
        "fid_samples": fid_samples,
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
        _refuse_fixed(given, run, RUNTIME_FIELDS)
        config = resume_config(out, **given, **({"run": run} if run else {}))
    else:
        if spec is None:
            raise ConfigError("DATA is required (the single-temporal dataset to train on)")
        defaults = default_run().to_dict() | {"workers": 2}
        config = DiffusionTrainConfig(**given, run=RunConfig.from_dict(defaults | run))
    with run_folder(out, resume=resume) as run_dir, rich_sink(progress, unit="steps") as sink:
        result = train_diffusion(config, run_dir, resume=resume, progress=sink)
    if as_json:
        jsonout.emit({"run": result.run, "checkpoint": result.checkpoint, "step": result.step})
        return
    typer.echo(f"trained to step {result.step}; checkpoint {result.checkpoint}")


from changen.cli.train_autoencoder import autoencoder  # noqa: E402

app.command()(autoencoder)
