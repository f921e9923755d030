"""Options shared by several commands, declared once.

Run options (where and how a training runs, :class:`~changen.engine.config.RunConfig`) are used
by ``train generator`` and ``detect train/finetune``; event options (the change process) by
``simulate``, ``generate`` and ``train generator``. Every option defaults to ``None`` so that a
command can tell what was given: what is left out takes the library's default (or, when
resuming, the run's recorded value).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from changen.errors import ConfigError, DataError

if TYPE_CHECKING:
    from changen.data.readers.base import Reader
    from changen.events import ChangeProcess, TransitionKernel
    from changen.sample import Taxonomy

ACCELERATOR = typer.Option(None, help="cpu, gpu/cuda, mps or auto. (default: auto)")
DEVICES = typer.Option(None, help="Devices per node: a count or auto (DDP when more than one).")
NUM_NODES = typer.Option(None, min=1, help="Nodes (DDP). (default: 1)")
STRATEGY = typer.Option(None, help="Lightning strategy: auto or ddp. (default: auto)")
PRECISION = typer.Option(None, help="fp32 or bf16 (autocast). (default: fp32)")
WORKERS = typer.Option(None, "--workers", min=0, help="DataLoader worker processes.")
LOG_EVERY = typer.Option(None, min=1, help="Steps between metric rows. (default: 10)")
SAVE_EVERY = typer.Option(None, min=0, help="Steps between checkpoints (0: the family's default).")
KEEP = typer.Option(None, min=1, help="Step checkpoints kept.")
RESUME = typer.Option(False, help="Continue the run in --out from its newest checkpoint.")
PROGRESS = typer.Option(True, "--progress/--no-progress", help="Show a progress bar.")


def require_paths(*paths: str | Path | None, reason: str = "no such file or folder") -> None:
    """Raise ``DataError("PATH: reason")`` for the first path given that does not exist, so
    that a command fails on it before importing torch and the models."""
    for path in paths:
        if path is not None and not Path(path).exists():
            raise DataError(f"{path}: {reason}")


def check_dataset(path: str | Path, format: str | None) -> None:
    """Raise the reader's one-line error if ``path`` is missing, empty, of no known layout or
    ``format`` is unknown: listing folders only, so a command fails here before importing
    torch and the models."""
    from changen.data.readers import detect_format, reader_class

    require_paths(path)
    if format is None:
        detect_format(path)
    else:
        reader_class(format)


def run_settings(**given: Any) -> dict[str, Any]:
    """The run options that were given (not ``None``), as :class:`RunConfig` fields."""
    return {k: v for k, v in given.items() if v is not None}


DEVICE = typer.Option(
    None, help="Where learned models run: auto, cpu, cuda or cuda:N. (default: auto)"
)


def resolve_device(device: str | None) -> str:
    """``auto`` (or nothing) → ``cuda`` when available, else ``cpu``; other torch device names
    unchanged, anything else a :class:`ConfigError`."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError:
        raise ConfigError(
            f"--device {device!r}: not a torch device; use auto, cpu, cuda or cuda:N"
        ) from None
    return device


SAMPLING_STEPS = typer.Option(
    None,
    "--sampling-steps",
    min=1,
    help="Denoising steps of a diffusion synthesizer. (default: 50)",
)
SAMPLER = typer.Option(
    None, help="Sampler of a diffusion synthesizer: ddim or ddpm. (default: ddim)"
)
SWITCH = typer.Option(
    None,
    min=0.0,
    max=1.0,
    help="Fraction of diffusion steps that keep unchanged regions to the pre-event image; after "
    "it they vary freely (ChangeAnywhere's two phases). (default: 1)",
)
N_MAX = typer.Option(
    None,
    "--n-max",
    min=1,
    help="ChangeAnywhere's N_max: start from the pre-event latent noised to this step of the "
    "--sampling-steps (a shorter run). (default: all steps, from pure noise)",
)
N_MIN = typer.Option(
    None,
    "--n-min",
    min=0,
    help="ChangeAnywhere's N_min: the last steps that denoise the whole latent freely; sets "
    "--switch to (N_max - N_min) / N_max, so give one of the two. (default: 0)",
)
UNLABELED = typer.Option(
    "none",
    help="Class-agnostic mode: 'instances' (the dataset's instance maps, e.g. SAM), 'slic' or "
    "'felzenszwalb' (regions proposed from the image; those over 1/16 of it stay background); "
    "'none' uses masks. Change labels are then binary.",
)


def sampling_options(
    steps: int | None,
    sampler: str | None,
    switch: float | None,
    n_max: int | None = None,
    n_min: int | None = None,
) -> dict[str, Any]:
    """The diffusion sampling flags that were given, as synthesizer options
    (:data:`changen.synthesis.SAMPLING_OPTIONS`); ``--n-min`` and ``--switch`` say the same
    thing two ways, so only one may be given."""
    if switch is not None and n_min is not None:
        raise ConfigError(
            "--switch and --n-min both set where unchanged regions start to vary; give one"
        )
    given = {"steps": steps, "sampler": sampler, "switch": switch, "n_max": n_max, "n_min": n_min}
    return {k: v for k, v in given.items() if v is not None}


EVENTS = typer.Option(
    None,
    help="Events: a comma list of create, remove, reclass; changeanywhere (ChangeAnywhere's: "
    "instances moved into homogeneous regions, instances filled with the class around them); "
    "or a ChangeProcess JSON file (e.g. an earlier run's process.json). (default: "
    "create,remove, plus reclass when the transition kernel fits the taxonomy)",
)
COUNT = typer.Option(None, help="Objects per event and step, LO:HI. (default: 1:5)")
OBJECT_SCALE = typer.Option(None, help="Scale range of created objects, LO:HI. (default: 0.5:1.5)")
OBJECT_ROTATE = typer.Option(
    None, help="Rotation of created objects: any, 90 or none. (default: any)"
)
OBJECT_FLIP = typer.Option(
    None, "--flip/--no-flip", help="Mirror created objects with probability 1/2. (default: no)"
)
FILL = typer.Option(
    None,
    help="What removed objects become: background, or surrounding (the majority class around "
    "them). (default: surrounding for taxonomies of more than two classes, else background)",
)
KERNEL = typer.Option(
    None,
    help='Transition kernel JSON for reclass, {"from": {"to": weight}}. (default: OpenEarthMap)',
)
PLACEMENT = typer.Option(
    None,
    help="Where created objects land: free, within (--within classes) or homogeneous (the "
    "interior of a large single-class region). (default: background for object taxonomies, "
    "homogeneous for land cover)",
)
WITHIN = typer.Option(None, help="Host classes of --placement within, e.g. 2,3.")


SPLIT = typer.Option(
    None,
    "--split",
    help="Read only this split of the source (e.g. train, val, test: split folders, LoveDA "
    "Train/Val, list files); an unknown name lists the splits the source has.",
)


SOURCES_FILE = typer.Option(
    None,
    "--sources",
    help='JSON list of sources [{"path", "format", "gsd", "binary_threshold", "split"}] to '
    "pool (paths relative to the file).",
)
GSD = typer.Option(
    None, help="Resample sources to GSD metres per pixel first (e.g. 0.5 for LEVIR-CD)."
)
SOURCE_GSD = typer.Option(
    None, help="GSD of sources whose files carry no georeference (with --gsd)."
)
SOURCE_THRESHOLD = typer.Option(
    None,
    "--binary-threshold",
    min=0,
    help="Read grey 0/255 building masks as mask > N (mask-folder sources), e.g. 127.",
)


LABEL_VALUES = typer.Option(
    None,
    "--label-values",
    help="Values of unchanged and changed pixels in change labels, U:C, e.g. 1:2 (OSCD). "
    "(default: 0/1 or 0/255, anything else is an error)",
)
BINARY_THRESHOLD = typer.Option(
    None,
    "--binary-threshold",
    min=0,
    help="Read change labels (or grey 0/255 scene masks) as value > N, e.g. 127.",
)


def open_data(
    path: Path,
    format: str | None,
    taxonomy: str | None,
    label_values: str | None = None,
    binary_threshold: int | None = None,
    **options: Any,
) -> Reader[Any]:
    """The dataset at ``path``, its labels read as ``--label-values`` / ``--binary-threshold``
    say (see :func:`label_options`)."""
    from changen.data.readers import open_dataset

    labels = label_options(path, format, label_values, binary_threshold)
    return open_dataset(path, format=format, taxonomy=taxonomy, **labels, **options)


def label_options(
    path: Path, format: str | None, label_values: str | None, binary_threshold: int | None
) -> dict[str, Any]:
    """Reader options for ``--label-values`` / ``--binary-threshold``: binary change folders
    take both, scene mask folders the threshold, other formats neither."""
    from changen.data.readers import detect_format, reader_class
    from changen.data.readers.change_folders import BinaryChangeReader
    from changen.data.readers.folder import FolderReader

    if label_values is None and binary_threshold is None:
        return {}
    fmt = format or detect_format(path)
    cls = reader_class(fmt)
    if issubclass(cls, BinaryChangeReader):
        if label_values is not None:
            return {"label_values": _label_values(label_values)}
        return {"threshold": binary_threshold}
    if issubclass(cls, FolderReader) and label_values is None:
        return {"binary_threshold": binary_threshold}
    raise ConfigError(
        f"{path}: --label-values and --binary-threshold apply to binary change folders "
        f"(levircd, s2looking, …), --binary-threshold also to mask folders; a {fmt} "
        f"dataset declares its own label values"
    )


def _label_values(text: str) -> tuple[int, int]:
    """``U:C`` as two non-negative ints (unpacking the wrong count raises ValueError too)."""
    try:
        unchanged, changed = (int(p) for p in text.split(":"))
    except ValueError:
        unchanged = changed = -1
    if min(unchanged, changed) < 0:
        raise ConfigError(f"--label-values {text!r}: expected UNCHANGED:CHANGED, e.g. 1:2")
    return unchanged, changed


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


def class_ids(text: str | None, option: str) -> tuple[int, ...] | None:
    """``2,3`` → ``(2, 3)`` for ``option`` (``None`` stays ``None``)."""
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(
            f"{option} {text!r}: give class ids separated by commas, e.g. 2,3"
        ) from None


def change_process(
    events: str | None,
    taxonomy: Taxonomy,
    *,
    steps: int | None = None,
    unlabeled: bool = False,
    count: str | None = None,
    scale: str | None = None,
    rotate: str | None = None,
    flip: bool | None = None,
    fill: str | None = None,
    kernel: Path | None = None,
    placement: str | None = None,
    within: str | None = None,
) -> ChangeProcess:
    """The change process of the event flags: ``events`` is a ``ChangeProcess`` JSON file (no
    other event flag allowed; ``steps`` overrides its step count), ``changeanywhere``, or a
    comma list of events, completed by the taxonomy's defaults
    (:func:`changen.events.policy.default_process`)."""
    from changen.events import ChangeProcess
    from changen.events.policy import default_process

    flags = {
        "--count": count,
        "--scale": scale,
        "--rotate": rotate,
        "--flip": flip,
        "--fill": fill,
        "--kernel": kernel,
        "--placement": placement,
        "--within": within,
    }
    if events is not None and Path(events).is_file():
        given = [name for name, value in flags.items() if value is not None]
        if given:
            raise ConfigError(
                f"--events {events} defines the process; drop {', '.join(given)} or pass "
                f"--events as a list of events"
            )
        try:
            process = ChangeProcess.from_dict(json.loads(Path(events).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError, AttributeError, ConfigError) as e:
            raise ConfigError(
                f"{events}: not a change-process JSON ({type(e).__name__}: {e}); pass the "
                f"process.json of an earlier run"
            ) from None
        return process if steps is None else dataclasses.replace(process, steps=steps)
    return default_process(
        taxonomy,
        events=events,
        steps=1 if steps is None else steps,
        unlabeled=unlabeled,
        count=None if count is None else parse_range(count, "--count", int),
        scale=None if scale is None else parse_range(scale, "--scale", float),
        rotate=rotate,
        flip=flip,
        fill=fill,  # type: ignore[arg-type]  # RemoveConfig checks the name, in one line
        kernel=None if kernel is None else load_kernel(kernel),
        placement=placement,  # type: ignore[arg-type]  # CreateConfig checks the name
        within=class_ids(within, "--within"),
    )
