"""``changen detect``: train, fine-tune, evaluate and run change detectors; model facts.

A thin layer over :mod:`changen.detectors.train` (training, checkpoints, evaluation) and
:mod:`changen.detectors.inference` (sliding-window prediction). Model and backbone names are
forgiving: case, ``-`` / ``_`` and ``×`` / ``x`` do not matter (``ChangeStar-1x96``,
``resnet-18``, ``MiT-B1``, ``SNUNet-CD``), and ``r18`` means ``resnet18``.

``--recipe NAME`` fills the optimiser, learning rate, weight decay, loss, batch, crop and
epochs a paper used (:data:`changen.detectors.train.RECIPES`); flags given explicitly win.
``--backbone-weights FILE`` starts the backbone from a local state dict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from changen.cli import jsonout, options
from changen.cli.progress import rich_sink
from changen.cli.runs import run_folder
from changen.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

    from changen.detectors.evaluate import EvalResult
    from changen.detectors.train import DetectorTrainConfig

app = typer.Typer(
    help="Change detectors: train, fine-tune, evaluate, predict, model facts.",
    no_args_is_help=True,
)

_ALIASES = {
    "r18": "resnet18",
    "res18": "resnet18",
    "mitb1": "mit_b1",
    "changestar": "changestar_1x96",
    "snunetcd": "snunet",
    "changerex": "changer",
    "r50": "resnet50",
    "rx101": "resnext101_32x4d",
    "resnext101": "resnext101_32x4d",
}
#: Built-in values of the settings a recipe may set, when neither a flag nor a recipe does.
TRAIN_DEFAULTS: dict[str, Any] = {"optimizer": "sgd", "batch_size": 16, "crop": 256}

# Options shared by train and finetune (typer reads them as defaults of both signatures).
DATA = typer.Argument(..., help="Training data: a change dataset, or scenes for STAR.")
FORMAT = typer.Option(None, "--format", "-f", help="Force the data format (else detected).")
TAXONOMY = typer.Option(None, help="Built-in taxonomy of the masks (else the dataset's).")
OUT = typer.Option(..., "--out", "-o", help="Run folder (empty, or --resume / --overwrite).")
MODE = typer.Option(
    "supervised",
    help="supervised (change pairs), star or gstar (single-temporal scenes), or segmentation "
    "(single-temporal scenes, semantic head only: segmentation pre-training).",
)
STEPS = typer.Option(None, min=1, help="Train this many steps (instead of --epochs).")
BATCH = typer.Option(None, "--batch-size", min=1, help="Batch size per device. (default: 16)")
CROP = typer.Option(None, min=32, help="Training crop size (a multiple of 32). (default: 256)")
LR = typer.Option(None, help="Base learning rate. (default: 0.03 for sgd, 1e-4 for adamw)")
OPTIMIZER = typer.Option(
    None, help="sgd (momentum 0.9) or adamw; poly(0.9) schedule. (default: sgd)"
)
RECIPE = typer.Option(
    None,
    help="Named training recipe: changeanywhere (AdamW 1e-3, wd 0.05, CE, batch 8, 256²), "
    "changeanywhere_finetune (lr 1e-4, 50 epochs), changen, changen_finetune. Flags win.",
)
WEIGHT_DECAY = typer.Option(None, help="Weight decay. (default: 1e-4 for sgd, 0.01 for adamw)")
PRECISION = typer.Option("fp32", help="fp32 or bf16 (autocast).")
SEED = typer.Option(0, min=0, help="Seed of initialisation, subset, pairing and augmentation.")
FRACTION = typer.Option(1.0, help="Train on this deterministic fraction of the data (0.05).")
VAL = typer.Option(None, help="Change dataset evaluated after every epoch and at the end.")
VAL_FORMAT = typer.Option(None, help="Force the --val format.")
SEMANTIC = typer.Option(
    True, "--semantic/--no-semantic", help="Train a semantic head when the data have masks."
)
OBJECTS = typer.Option(
    None, help="Class ids that make binary object masks, e.g. 8 or 2,3 (default: all classes)."
)
VALIDATE_EVERY = typer.Option(
    0, min=0, help="Validate every N steps (0: each epoch) and at the end."
)
OVERWRITE = typer.Option(
    False, help="Replace the run in --out (kept if the new run fails before its first checkpoint)."
)


def canonical(name: str) -> str:
    """A model or backbone name as ``MODELS`` / ``BACKBONES`` spell it."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_").replace("×", "x")
    key = _ALIASES.get(key.replace("_", ""), key)
    from changen.detectors import BACKBONES, MODELS

    for known in (*MODELS, *BACKBONES):
        if key.replace("_", "") == known.replace("_", ""):
            return known
    return key


def _train_config(
    model: str,
    backbone: str | None,
    run: dict[str, Any],
    recipe: str | None,
    default_epochs: int,
    **settings: Any,
) -> DetectorTrainConfig:
    """The training config of the flags; ``run`` holds the run options that were given.
    Settings left ``None`` come from ``recipe``, then :data:`TRAIN_DEFAULTS` (and
    ``default_epochs``)."""
    from changen.detectors.augment import PairAugmentConfig
    from changen.detectors.train import DetectorTrainConfig, default_run, recipe_settings
    from changen.engine.config import RunConfig

    settings = recipe_settings(recipe, settings | {"dice": None})
    for key, value in (TRAIN_DEFAULTS | {"epochs": default_epochs}).items():
        if settings.get(key) is None:
            settings[key] = value
    return DetectorTrainConfig(
        model=canonical(model),
        backbone=None if backbone is None else canonical(backbone),
        aug=PairAugmentConfig(crop=settings.pop("crop")),
        object_classes=options.class_ids(settings.pop("objects"), "--objects"),
        run=RunConfig.from_dict(default_run().to_dict() | options.run_settings(**run)),
        recipe=recipe,
        **settings,
    )


def _run(
    config: DetectorTrainConfig,
    data: Path,
    format: str | None,
    taxonomy: str | None,
    out: Path,
    val: Path | None,
    val_format: str | None,
    init: Path | None,
    resume: bool,
    overwrite: bool,
    progress: bool,
    labels: dict[str, Any],
    as_json: bool = False,
) -> None:
    """Train into run folder ``out`` once the data open (:mod:`changen.cli.runs`: locked,
    and a failed new run leaves what was there before)."""
    from changen.detectors.train import train_detector

    replaced = overwrite and not resume
    if init is not None and replaced and init.resolve().is_relative_to(out.resolve()):
        raise ConfigError(
            f"--init {init} is inside --out {out}, which --overwrite replaces; write the "
            f"fine-tuned run to another --out"
        )
    reader = options.open_data(data, format, taxonomy, **labels)
    val_reader = None
    if val is not None:
        val_reader = options.open_data(val, val_format, taxonomy, **{**labels, "split": None})
    sources = {"data": str(data), "format": format, "val": None if val is None else str(val)}
    with (
        run_folder(out, resume=resume, overwrite=overwrite) as run,
        rich_sink(progress, unit="steps") as sink,
    ):
        result = train_detector(
            config,
            reader,
            run,
            val=val_reader,
            init=init,
            resume=resume,
            overwrite=overwrite,
            progress=sink,
            sources=sources,
        )
    if as_json:
        jsonout.emit(
            {
                "out": out,
                "step": result.step,
                "checkpoint": result.checkpoint,
                "backbone_tensors": result.backbone_tensors,
                "val": None if result.val is None else result.val.summary(),
            }
        )
        return
    line = f"trained {result.step} steps; checkpoint {result.checkpoint}"
    if result.backbone_tensors is not None:
        loaded = f"loaded {result.backbone_tensors} backbone tensors"
        line = f"{loaded} from {config.backbone_weights}; {line}"
    if result.val is not None:
        s = result.val.scores
        line += f"; val F1 {s.f1:.4f} IoU {s.iou:.4f} P {s.precision:.4f} R {s.recall:.4f}"
    typer.echo(line)


@app.command()
def train(
    data: Path = DATA,
    out: Path = OUT,
    format: str | None = FORMAT,
    taxonomy: str | None = TAXONOMY,
    model: str = typer.Option(
        "changestar_1x96",
        help="Detector: changestar_1x96, changestar_4x16, fc_ef, fc_siam_conc, fc_siam_diff, "
        "unet_ef, snunet, bit, changer, changeformer, lightcdnet.",
    ),
    backbone: str | None = typer.Option(
        None,
        help="Backbone: resnet18, resnet18_v1c, resnet50, resnext101_32x4d or mit_b1. "
        "(default: the model's)",
    ),
    backbone_weights: Path | None = typer.Option(
        None,
        help="Local ImageNet (timm / torchvision / smp) state dict for the backbone, "
        ".safetensors or .pth; never downloaded.",
    ),
    recipe: str | None = RECIPE,
    mode: str = MODE,
    epochs: int | None = typer.Option(
        None, min=1, help="Training epochs. (default: 20, Changen pre-training)"
    ),
    steps: int | None = STEPS,
    batch_size: int = BATCH,
    crop: int = CROP,
    lr: float | None = LR,
    optimizer: str = OPTIMIZER,
    weight_decay: float | None = WEIGHT_DECAY,
    precision: str | None = options.PRECISION,
    accelerator: str | None = options.ACCELERATOR,
    devices: str | None = options.DEVICES,
    strategy: str | None = options.STRATEGY,
    workers: int | None = options.WORKERS,
    seed: int = SEED,
    train_fraction: float = FRACTION,
    val: Path | None = VAL,
    val_format: str | None = VAL_FORMAT,
    semantic: bool = SEMANTIC,
    objects: str | None = OBJECTS,
    save_every: int | None = options.SAVE_EVERY,
    keep: int | None = options.KEEP,
    validate_every: int = VALIDATE_EVERY,
    log_every: int | None = options.LOG_EVERY,
    resume: bool = options.RESUME,
    overwrite: bool = OVERWRITE,
    label_values: str | None = options.LABEL_VALUES,
    binary_threshold: int | None = options.BINARY_THRESHOLD,
    split: str | None = options.SPLIT,
    progress: bool = options.PROGRESS,
    as_json: bool = jsonout.JSON,
) -> None:
    """Train a change detector: supervised on change pairs, or STAR / G-STAR on scenes."""
    options.check_dataset(data, format)  # before torch is imported
    options.require_paths(val)
    config = _train_config(
        model,
        backbone,
        recipe=recipe,
        default_epochs=20,
        backbone_weights=None if backbone_weights is None else str(backbone_weights),
        mode=mode,
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        crop=crop,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        run={
            "precision": precision,
            "accelerator": accelerator,
            "devices": devices,
            "strategy": strategy,
            "workers": workers,
            "save_every": save_every,
            "keep": keep,
            "log_every": log_every,
        },
        seed=seed,
        train_fraction=train_fraction,
        semantic=semantic,
        objects=objects,
        validate_every=validate_every,
    )
    labels = {"label_values": label_values, "binary_threshold": binary_threshold, "split": split}
    _run(
        config,
        data,
        format,
        taxonomy,
        out,
        val,
        val_format,
        None,
        resume,
        overwrite,
        progress,
        labels,
        as_json,
    )


@app.command()
def finetune(
    init: Path = typer.Option(..., help="Checkpoint (or run folder) whose weights start from."),
    data: Path = DATA,
    out: Path = OUT,
    format: str | None = FORMAT,
    taxonomy: str | None = TAXONOMY,
    recipe: str | None = RECIPE,
    mode: str = MODE,
    epochs: int | None = typer.Option(
        None, min=1, help="Training epochs. (default: 200, Changen fine-tuning)"
    ),
    steps: int | None = STEPS,
    batch_size: int = BATCH,
    crop: int = CROP,
    lr: float | None = LR,
    optimizer: str = OPTIMIZER,
    weight_decay: float | None = WEIGHT_DECAY,
    precision: str | None = options.PRECISION,
    accelerator: str | None = options.ACCELERATOR,
    devices: str | None = options.DEVICES,
    strategy: str | None = options.STRATEGY,
    workers: int | None = options.WORKERS,
    seed: int = SEED,
    train_fraction: float = FRACTION,
    val: Path | None = VAL,
    val_format: str | None = VAL_FORMAT,
    semantic: bool = SEMANTIC,
    objects: str | None = OBJECTS,
    save_every: int | None = options.SAVE_EVERY,
    keep: int | None = options.KEEP,
    validate_every: int = VALIDATE_EVERY,
    log_every: int | None = options.LOG_EVERY,
    resume: bool = options.RESUME,
    overwrite: bool = OVERWRITE,
    label_values: str | None = options.LABEL_VALUES,
    binary_threshold: int | None = options.BINARY_THRESHOLD,
    split: str | None = options.SPLIT,
    progress: bool = options.PROGRESS,
    as_json: bool = jsonout.JSON,
) -> None:
    """Fine-tune a trained detector (weights only) on --train-fraction of a dataset."""
    options.check_dataset(data, format)  # before torch is imported
    options.require_paths(val)
    from changen.engine.checkpoint import load_config
    from changen.engine.run import resolve_checkpoint

    folder = resolve_checkpoint(init)
    saved = load_config(folder)
    if not isinstance(saved.get("model"), str) or not isinstance(saved.get("model_config"), dict):
        raise ConfigError(
            f"{folder}: config.json names no detector model; give --init a checkpoint or run "
            f"written by changen detect train"
        )
    config = _train_config(
        saved["model"],
        saved["model_config"].get("backbone"),
        recipe=recipe,
        default_epochs=200,
        mode=mode,
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        crop=crop,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        run={
            "precision": precision,
            "accelerator": accelerator,
            "devices": devices,
            "strategy": strategy,
            "workers": workers,
            "save_every": save_every,
            "keep": keep,
            "log_every": log_every,
        },
        seed=seed,
        train_fraction=train_fraction,
        semantic=semantic,
        objects=objects,
        validate_every=validate_every,
    )
    labels = {"label_values": label_values, "binary_threshold": binary_threshold, "split": split}
    _run(
        config,
        data,
        format,
        taxonomy,
        out,
        val,
        val_format,
        init,
        resume,
        overwrite,
        progress,
        labels,
        as_json,
    )


def load_model(ckpt: Path | None, official: Path | None, backbone: str | None) -> nn.Module:
    """The detector of ``--ckpt``, or an official ChangeStar 1×96 from ``--official-weights``."""
    if ckpt is not None and official is None:
        from changen.detectors import load_detector

        return load_detector(ckpt)[0]
    if official is not None and ckpt is None:
        from changen.detectors import ChangeStar, load_official_changestar

        model = ChangeStar(canonical(backbone or "resnet18"), symmetric=False)
        return load_official_changestar(official, model).eval()
    raise ConfigError("give exactly one of --ckpt CKPT and --official-weights FILE")


CKPT = typer.Option(None, help="Checkpoint or run folder of `changen detect train`.")
OFFICIAL = typer.Option(
    None, "--official-weights", help="Official ChangeStar 1x96 checkpoint file (Z-Zheng/Changen)."
)
OFFICIAL_BACKBONE = typer.Option(
    None, help="Backbone of --official-weights: resnet18 or mit_b1. (default: resnet18)"
)
THRESHOLD = typer.Option(0.5, help="Change where the probability exceeds this.")


def _print_scores(result: EvalResult, title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.summary().items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


@app.command("eval")
def evaluate(
    data: Path = typer.Argument(..., help="Change dataset to evaluate on."),
    ckpt: Path | None = CKPT,
    official_weights: Path | None = OFFICIAL,
    backbone: str | None = OFFICIAL_BACKBONE,
    format: str | None = FORMAT,
    taxonomy: str | None = TAXONOMY,
    split: str | None = options.SPLIT,
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Images per forward pass."),
    device: str | None = options.DEVICE,
    precision: str = PRECISION,
    threshold: float = THRESHOLD,
    csv: Path | None = typer.Option(
        None, help="Write per-image scores to this CSV file. (default: none written)"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    label_values: str | None = options.LABEL_VALUES,
    binary_threshold: int | None = options.BINARY_THRESHOLD,
    progress: bool = options.PROGRESS,
) -> None:
    """Precision, recall, F1 and IoU of the change class over the whole split, + per image."""
    chosen = {"split": split} if split else {}
    reader = options.open_data(data, format, taxonomy, label_values, binary_threshold, **chosen)
    if reader.kind != "change":
        raise ConfigError(f"{data}: evaluation needs a change dataset, got a {reader.kind} one")
    from changen.data.atomic import write_text_atomic
    from changen.detectors.data import ChangePairDataset, SegSpec
    from changen.detectors.evaluate import evaluate_detector

    model = load_model(ckpt, official_weights, backbone)
    dev = options.resolve_device(device)
    model.to(dev)
    dataset = ChangePairDataset(reader, SegSpec.from_taxonomy(reader.taxonomy))
    with rich_sink(progress and not as_json, unit="images", transient=True) as sink:
        result = evaluate_detector(
            model,
            dataset,
            batch_size=batch_size,
            device=dev,
            precision=precision,
            threshold=threshold,
            progress=sink,
        )
    if csv is not None:
        write_text_atomic(csv, result.per_image_csv())
    if as_json:
        typer.echo(
            json.dumps(result.summary() | {"per_image_csv": None if csv is None else str(csv)})
        )
        return
    _print_scores(result, f"{data} ({len(dataset)} images)")
    if csv is not None:
        typer.echo(f"per-image scores: {csv}")


@app.command()
def predict(
    t1: Path = typer.Argument(..., help="Pre-event image (GeoTIFF, PNG, JPEG)."),
    t2: Path = typer.Argument(..., help="Post-event image, co-registered with T1."),
    out: Path = typer.Option(..., "--out", "-o", help="Change map: CHANGE.tif or CHANGE.png."),
    ckpt: Path | None = CKPT,
    official_weights: Path | None = OFFICIAL,
    backbone: str | None = OFFICIAL_BACKBONE,
    tile: int = typer.Option(
        512, min=1, help="Window size in pixels (rounded up to a multiple of 32)."
    ),
    overlap: int = typer.Option(
        64, min=0, help="Overlap of neighbouring windows; each keeps its centre (no seams)."
    ),
    threshold: float = THRESHOLD,
    batch_size: int = typer.Option(4, "--batch-size", min=1, help="Windows per forward pass."),
    device: str | None = options.DEVICE,
    precision: str = typer.Option(
        "auto", help="auto, fp32 or bf16 (autocast). auto: bf16 on a CPU with native bf16."
    ),
    probability: Path | None = typer.Option(
        None, help="Also write the change probability as a float32 GeoTIFF (PROB.tif)."
    ),
    preview: bool = typer.Option(True, "--preview/--no-preview", help="Write CHANGE.preview.png."),
    overwrite: bool = typer.Option(False, help="Replace an existing change map."),
    progress: bool = options.PROGRESS,
    as_json: bool = jsonout.JSON,
) -> None:
    """Change map of an image pair of any size, streamed window by window; GeoTIFF keeps its
    georeference, and nothing is left behind if the run fails."""
    options.require_paths(t1, t2, reason="file not found")  # before torch is imported
    from changen.detectors.inference import predict_files

    model = load_model(ckpt, official_weights, backbone)
    dev = options.resolve_device(device)
    model.to(dev)
    with rich_sink(progress, unit="windows", transient=True) as sink:
        result = predict_files(
            model,
            t1,
            t2,
            out,
            probability=probability,
            threshold=threshold,
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            device=dev,
            precision=precision,
            preview=preview,
            overwrite=overwrite,
            progress=sink,
        )
    if as_json:
        fields = ("out", "probability", "preview", "changed_fraction")
        summary = {name: getattr(result, name) for name in fields}
        jsonout.emit(summary | {"georeferenced": result.georef is not None})
        return
    extra = "".join(f" and {p}" for p in (result.probability, result.preview) if p)
    geo = " (georeferenced)" if result.georef is not None else ""
    typer.echo(f"wrote {result.out}{geo}{extra}: {100 * result.changed_fraction:.2f}% changed")


@app.command()
def info(
    model: str | None = typer.Option(
        None, help="Detector name. (default: list every detector with its parameters)"
    ),
    backbone: str | None = typer.Option(None, help="Backbone name. (default: the model's)"),
    size: int = typer.Option(256, min=32, help="Input size of the FLOP count (a multiple of 32)."),
    flops: bool = typer.Option(True, "--flops/--no-flops", help="Count FLOPs (one forward)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Parameter count (and FLOPs of one forward at --size²) of a detector; without
    --model, every detector's name, default backbone and parameter count."""
    import torch

    from changen.detectors import build_detector
    from changen.detectors.inference import model_cost

    if model is None:
        if backbone is not None:
            from changen.detectors.backbones import BACKBONES

            known = canonical(backbone) in BACKBONES
            raise ConfigError(
                f"--backbone {backbone!r} needs --model NAME"
                if known
                else f"unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}"
            )
        _list_models(as_json)
        return
    name = canonical(model)
    bb = None if backbone is None else canonical(backbone)
    with torch.random.fork_rng(devices=[]):
        net = build_detector(name, backbone=bb)
    facts: dict[str, Any] = {"model": name, "backbone": getattr(net, "config", {}).get("backbone")}
    if flops:
        facts |= model_cost(net, size)
    else:
        facts["params"] = sum(p.numel() for p in net.parameters())
    if as_json:
        typer.echo(json.dumps(facts))
        return
    table = Table(title=f"{name} ({facts['backbone'] or 'own encoder'})")
    table.add_column("fact")
    table.add_column("value", justify="right")
    table.add_row("parameters", f"{facts['params']:,} ({facts['params'] / 1e6:.2f} M)")
    if "flops" in facts:
        table.add_row(f"FLOPs at {size}² (pair)", f"{facts['flops'] / 1e9:.2f} G")
    Console().print(table)


def _list_models(as_json: bool) -> None:
    """Every detector of ``MODELS`` with its default backbone and parameter count."""
    import torch

    from changen.detectors import BACKBONES, MODELS, build_detector

    rows: list[dict[str, Any]] = []
    for name in MODELS:
        with torch.random.fork_rng(devices=[]):
            net = build_detector(name)
        backbone = getattr(net, "config", {}).get("backbone")
        rows.append(
            {
                "model": name,
                "backbone": backbone,
                "params": sum(p.numel() for p in net.parameters()),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(title="change detectors (changen detect info --model NAME for FLOPs)")
    for column in ("model", "backbone", "parameters"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for row in rows:
        table.add_row(str(row["model"]), row["backbone"] or "own encoder", f"{row['params']:,}")
    table.caption = f"backbones (--backbone): {', '.join(BACKBONES)}"
    Console().print(table)
