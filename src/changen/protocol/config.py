"""A transfer experiment, as a YAML (or JSON) file: what to generate, train and evaluate.

The papers prove synthetic change data by pre-training detectors on it and measuring
zero-shot and few-shot transfer to a real change dataset (Changen Table 5, ChangeAnywhere
Table 1 and Fig. 2). One :class:`ProtocolConfig` describes such a table::

    seeds: [0, 1]
    sources:                       # single-temporal source(s) of the synthetic pairs
      - {path: ../shared/data/real/xview2_joplin, format: xview2}
    events: {events: "create,remove", count: [1, 4], scale: [0.8, 1.25], rotate: any}
    generation: {per_image: 2, crop: 256, nuisance: default}
    synthesizers: [copy_paste, inpaint]          # names or checkpoint / run folders
    detectors: [{model: fc_siam_diff}]
    baselines: [scratch]                         # arms without synthetic pre-training:
                                                 # scratch, imagenet, segmentation
    pretrain: {steps: 300, batch_size: 8, crop: 128, lr: 0.03}
    finetune: {steps: 100, fractions: [0.05, 1.0]}
    change: {path: ../shared/data/real/levircd_crops, test_fraction: 0.5}

``sources: sample-world`` (and ``change: sample-world``) make the procedural sample world
with the ``world`` block's counts, so a preset runs with no data at all. Paths are relative
to the config file. Unknown keys are errors, so a typo never silently runs the defaults.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from changen.data.readers.pooled import SourceEntry, open_sources
from changen.detectors.train import RECIPES, SEMANTIC_MODELS
from changen.errors import ConfigError
from changen.events import ChangeProcess
from changen.events.policy import default_process
from changen.sample import Taxonomy
from changen.synthesis import SYNTHESIZERS
from changen.taxonomies import get_taxonomy

WORLD = "sample-world"
BASELINES = ("scratch", "imagenet", "segmentation")
"""Arms that are not pre-trained on synthetic pairs: ``scratch`` (random initialisation),
``imagenet`` (the detector's ``backbone_weights``, e.g. an ImageNet state dict) and
``segmentation`` (segmentation-only pre-training on the sources, Changen Table 6)."""


@dataclass(frozen=True)
class Source:
    """One single-temporal source dataset (see :class:`changen.data.readers.pooled.SourceEntry`)."""

    path: str
    format: str | None = None
    binary_threshold: int | None = None

    def entry(self) -> SourceEntry:
        """The source as the readers' pooled-source entry."""
        return SourceEntry(self.path, self.format, None, self.binary_threshold)


@dataclass(frozen=True)
class Detector:
    """A detector of :data:`changen.detectors.MODELS`, with its backbone and optionally a
    local state dict for it (``backbone_weights``): it then initialises the synthetic
    pre-training and the ``imagenet`` baseline."""

    model: str
    backbone: str | None = None
    backbone_weights: str | None = None

    @property
    def key(self) -> str:
        return self.model if self.backbone is None else f"{self.model}-{self.backbone}"


@dataclass(frozen=True)
class Training:
    """Detector training settings shared by the arms of one phase: ``steps``, or ``epochs``
    over the phase's data when given (the papers' unit); ``recipe`` (a name of
    :data:`changen.detectors.train.RECIPES`) fills the optimizer, weight decay, loss and —
    when ``lr`` is not given — the learning rate; without one, SGD with lr 0.03."""

    steps: int = 300
    epochs: int | None = None
    batch_size: int = 8
    crop: int = 128
    lr: float | None = None
    recipe: str | None = None
    fractions: tuple[float, ...] = (1.0,)


@dataclass(frozen=True)
class Generation:
    """Synthetic-set settings (see :class:`changen.generation.GenerationConfig`)."""

    per_image: int = 1
    crop: int | None = None
    limit: int | None = None
    nuisance: str | None = None
    negatives: float = 0.0
    batch_size: int = 8


@dataclass(frozen=True)
class World:
    """Sizes of the sample world made for ``sample-world`` sources / change sets."""

    size: int = 128
    n_source: int = 24
    n_train: int = 40
    n_test: int = 12


@dataclass(frozen=True)
class ChangeSet:
    """The real change data: ``train`` and ``test`` folders, or one ``path`` whose items are
    split by name (``test_fraction`` of them, :func:`~changen.detectors.data.subset_indices`
    with seed 0) into test and train; or :data:`WORLD`."""

    path: str | None = None
    train: str | None = None
    test: str | None = None
    test_fraction: float = 0.5


@dataclass(frozen=True)
class ProtocolConfig:
    """One transfer experiment (see the module docstring)."""

    sources: tuple[Source, ...] | str
    change: ChangeSet | str
    synthesizers: tuple[str, ...] = ("copy_paste",)
    detectors: tuple[Detector, ...] = (Detector("fc_siam_diff"),)
    baselines: tuple[str, ...] = ("scratch",)
    events: dict[str, Any] = field(default_factory=dict)
    generation: Generation = field(default_factory=Generation)
    pretrain: Training = field(default_factory=Training)
    finetune: Training = field(default_factory=lambda: Training(steps=100, fractions=(1.0,)))
    world: World = field(default_factory=World)
    seeds: tuple[int, ...] = (0,)
    threads: int = 2
    accelerator: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


EVENT_KEYS = (
    *("events", "steps", "count", "scale", "rotate", "flip", "fill", "placement", "within"),
    "min_area",
)
"""The keys of a config's ``events``: the ``changen generate`` event flags, plus ``min_area``."""


def source_taxonomy(config: ProtocolConfig) -> Taxonomy:
    """The taxonomy of the config's sources (the sample world's is OpenEarthMap's)."""
    if config.sources == WORLD:
        return get_taxonomy("openearthmap")
    assert not isinstance(config.sources, str)
    return open_sources([s.entry() for s in config.sources]).taxonomy


def change_process(events: dict[str, Any], taxonomy: Taxonomy) -> ChangeProcess:
    """The config's ``events`` as ``changen generate`` builds them for a source of
    ``taxonomy`` (:func:`~changen.events.policy.default_process`: unnamed choices take the
    taxonomy's defaults, e.g. created objects land in homogeneous regions of land cover)."""
    unknown = sorted(set(events) - set(EVENT_KEYS))
    if unknown:
        raise ConfigError(
            f"events: unknown keys {unknown}; known: {list(EVENT_KEYS)} (the `changen "
            f"generate` event flags)"
        )
    flags: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in events.items()}
    if isinstance(flags.get("within"), int):
        flags["within"] = (flags["within"],)
    return default_process(taxonomy, **flags)


def _build(cls: Any, data: Any, where: str) -> Any:
    """``cls(**data)`` with unknown keys and wrong shapes as one-line errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from None


def _path(value: str | None, base: Path) -> str | None:
    if value is None or value == WORLD:
        return value
    return str((base / value).resolve())


def parse_config(data: dict[str, Any], base: Path, where: str) -> ProtocolConfig:
    """A :class:`ProtocolConfig` from a parsed file; relative paths resolve against ``base``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the config must be a mapping of settings")
    data = dict(data)
    for required in ("sources", "change"):
        if required not in data:
            raise ConfigError(
                f"{where}: missing {required!r} (see `changen bench transfer --help`)"
            )
    sources = data.pop("sources")
    if sources != WORLD:
        if not isinstance(sources, list) or not sources:
            raise ConfigError(f"{where}: 'sources' must be {WORLD!r} or a list of {{path: …}}")
        sources = tuple(
            _build(Source, s if isinstance(s, dict) else {"path": s}, f"{where}: sources")
            for s in sources
        )
        sources = tuple(
            Source(_path(s.path, base) or s.path, s.format, s.binary_threshold) for s in sources
        )
    change = data.pop("change")
    if change != WORLD:
        change = _build(ChangeSet, change, f"{where}: change")
        change = ChangeSet(
            _path(change.path, base),
            _path(change.train, base),
            _path(change.test, base),
            change.test_fraction,
        )
        if change.path is None and (change.train is None or change.test is None):
            raise ConfigError(f"{where}: 'change' needs path, or both train and test")
        if not 0.0 < change.test_fraction < 1.0:
            raise ConfigError(f"{where}: change.test_fraction must lie in (0, 1)")
    nested = {"generation": Generation, "pretrain": Training, "finetune": Training, "world": World}
    values: dict[str, Any] = {"sources": sources, "change": change}
    for key, cls in nested.items():
        if key in data:
            values[key] = _build(cls, data.pop(key), f"{where}: {key}")
    if "detectors" in data:
        dets = data.pop("detectors")
        if not isinstance(dets, list) or not dets:
            raise ConfigError(f"{where}: 'detectors' must be a list of {{model: …}}")
        built = [
            _build(Detector, d if isinstance(d, dict) else {"model": d}, f"{where}: detectors")
            for d in dets
        ]
        values["detectors"] = tuple(
            Detector(d.model, d.backbone, _path(d.backbone_weights, base)) for d in built
        )
    if "synthesizers" in data:
        values["synthesizers"] = tuple(
            s if s in SYNTHESIZERS else _path(str(s), base) for s in data.pop("synthesizers")
        )
    config = _build(ProtocolConfig, {**data, **values}, where)
    bad = sorted(set(config.baselines) - set(BASELINES))
    if bad:
        raise ConfigError(f"{where}: unknown baselines {bad}; choose from {list(BASELINES)}")
    flat = [d.model for d in config.detectors if d.model not in SEMANTIC_MODELS]
    if "segmentation" in config.baselines and flat:
        raise ConfigError(
            f"{where}: the segmentation baseline pre-trains a semantic head, which {flat[0]} "
            f"lacks; use it with {' or '.join(SEMANTIC_MODELS)}"
        )
    if "imagenet" in config.baselines and any(d.backbone_weights is None for d in config.detectors):
        raise ConfigError(
            f"{where}: the imagenet baseline needs backbone_weights on every detector "
            f"(see docs/transfer.md for how to save them)"
        )
    for phase in (config.pretrain, config.finetune):
        if phase.recipe is not None and phase.recipe not in RECIPES:
            raise ConfigError(
                f"{where}: unknown recipe {phase.recipe!r}; choose one of {', '.join(RECIPES)}"
            )
    try:
        change_process(config.events, source_taxonomy(config))
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    if not config.seeds:
        raise ConfigError(f"{where}: give at least one seed")
    for fraction in config.finetune.fractions:
        if not 0.0 < fraction <= 1.0:
            raise ConfigError(f"{where}: fine-tuning fraction {fraction} must lie in (0, 1]")
    return config


def load_config(path: str | Path) -> ProtocolConfig:
    """Read a protocol config from a YAML or JSON file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{file}: cannot read the protocol config ({e.strerror})") from None
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0]
        raise ConfigError(f"{file}: not valid YAML/JSON ({first}); fix the file") from None
    return parse_config(data, file.parent.resolve(), str(file))
