"""Change-detector training on Lightning Fabric: supervised bitemporal, STAR, G-STAR and
segmentation-only pre-training.

:func:`train_detector` runs one training (pre-training, or fine-tuning from ``init`` weights)
on 1..N devices (the engine's Fabric: CPU, GPUs, DDP; fp32 or bf16 autocast) and writes the
engine's run folder (:mod:`changen.engine.run`)::

    RUN/config.json                 the training config and data sources
    RUN/metrics.csv, RUN/curves.png training losses (rank 0's), lr, s/step, validation
                                    scores (:class:`changen.engine.metrics.MetricsLog`)
    RUN/checkpoints/step-<N>/       the newest ``run.keep`` checkpoints (see below)
    RUN/checkpoints/last/           the newest of them

A checkpoint (:mod:`changen.engine.checkpoint`) holds ``model.safetensors``, a
``config.json`` (``kind: changen_detector``, the model name and constructor arguments, the
segmentation targets, the taxonomy, the training config, step) and ``state.pt`` (optimizer,
step, epoch, position in the epoch, global RNG states), so ``resume=True`` continues exactly
where the newest checkpoint left off: the same batches, the same weights as an uninterrupted
run (bitwise in one CPU process; under DDP the other ranks' RNG streams are not saved);
``metrics.csv`` drops the rows logged after that checkpoint. Checkpoints are written every
``run.save_every`` steps (0: at the end of every epoch) and at the end; validation runs
every ``validate_every`` steps (0: every epoch) and at the end.

Losses (FACTS §6). Change: BCE on the change logits (+ soft dice), ignore pixels excluded; a
temporally symmetric ChangeStar supervises both orderings, 0.5·(L(t1→t2) + L(t2→t1)).
Segmentation (ChangeStar with a semantic head, when masks are known): K = 1 (binary objects)
BCE + dice, else cross-entropy; supervised mode uses both dates, STAR / G-STAR the t1 date.
``segmentation`` mode (Changen Table 6's segmentation pre-training) trains only that: the
semantic head and the shared encoder on single-temporal scenes, no change loss; fine-tuning
from it (``init``) starts change detection from a building/land-cover encoder.
A deeply supervised model (LightCDNet) adds :data:`AUX_WEIGHT` × the change loss of its
auxiliary logits. Optimiser: SGD (momentum 0.9, weight decay 1e-4, lr 0.03) or AdamW (lr
1e-4, weight decay 0.01; :data:`OPTIMIZER_DEFAULTS`), with the poly schedule
lr = base · (1 − step/total)^0.9 — Changen's pre-training and fine-tuning recipe.

Named recipes (:data:`RECIPES`) fill in the settings a paper trained with, e.g.
``changeanywhere``: AdamW lr 1e-3, weight decay 0.05, poly, cross-entropy, batch 8, 256²
crops (its fine-tuning: lr 1e-4, 50 epochs). "Cross-entropy" on our one-logit heads is the
plain BCE (no dice): two-class softmax cross-entropy of logits (0, z) is exactly the BCE of z.

``backbone_weights``: a local ImageNet (or other) state dict loaded into the detector's
pretrained backbone(s) before training (:func:`changen.detectors.load_pretrained`; not on
resume, and not with ``init``); ``RUN/config.json`` records the file and how many tensors it
gave.

The loop seeds torch inside :func:`torch.random.fork_rng`, so model initialisation and dropout
are reproducible and the caller's global RNG state is left as it was.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from changen import __version__
from changen.data.atomic import write_text_atomic
from changen.data.output import check_output_dir
from changen.data.readers.base import Reader
from changen.detectors import ChangeOutput, build_detector, load_pretrained
from changen.detectors.augment import IGNORE, PairAugmentConfig
from changen.detectors.data import (
    ChangePairDataset,
    EpochBatchSampler,
    SegSpec,
    StarPairDataset,
    subset_indices,
)
from changen.detectors.evaluate import SCORE_NAMES, EvalResult, evaluate_detector
from changen.engine.checkpoint import (
    load_config,
    load_state,
    load_weights,
    read_safetensors,
    unwrap,
)
from changen.engine.config import RunConfig, make_fabric
from changen.engine.data import make_loader
from changen.engine.loop import Periodic, TrainTask, Window, mean_over_processes, run_loop
from changen.engine.metrics import MetricsLog
from changen.engine.progress import SILENT, ProgressSink
from changen.engine.run import (
    capture_rng,
    check_resume,
    latest_checkpoint,
    resolve_checkpoint,
    restore_rng,
    save_step,
    step_checkpoints,
)
from changen.errors import ConfigError

Mode = Literal["supervised", "star", "gstar", "segmentation"]
KIND = "changen_detector"
MODES = ("supervised", "star", "gstar", "segmentation")
SEMANTIC_MODELS = ("changestar_1x96", "changestar_4x16")
#: Axes of ``curves.png``: metric-name substring → axis title.
CURVE_GROUPS = {"loss": "loss", "validation": "val_"}
#: Settings that may change when a run is resumed (where and how fast it runs, not what).
RUNTIME_SETTINGS = ("run", "eval_batch_size")
#: (learning rate, weight decay) of each optimizer when the config leaves them out.
OPTIMIZER_DEFAULTS = {"sgd": (0.03, 1e-4), "adamw": (1e-4, 0.01)}
#: Weight of the auxiliary (deep supervision) change loss, LightCDNet's 0.4.
AUX_WEIGHT = 0.4
#: Named training recipes: settings of :class:`DetectorTrainConfig` (crop: ``aug.crop``).
RECIPES: dict[str, dict[str, Any]] = {
    "changen": {"optimizer": "sgd", "lr": 0.03, "weight_decay": 1e-4, "batch_size": 16,
                "crop": 256, "epochs": 20},
    "changen_finetune": {"optimizer": "sgd", "lr": 0.03, "weight_decay": 1e-4,
                         "batch_size": 16, "crop": 256, "epochs": 200},
    "changeanywhere": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05, "dice": False,
                       "batch_size": 8, "crop": 256},
    "changeanywhere_finetune": {"optimizer": "adamw", "lr": 1e-4, "weight_decay": 0.05,
                                "dice": False, "batch_size": 8, "crop": 256, "epochs": 50},
}  # fmt: skip


def recipe_settings(recipe: str | None, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` settings with those left ``None`` taken from ``recipe`` (a key of
    :data:`RECIPES`; ``None``: none). Explicit settings win over the recipe."""
    if recipe is None:
        return dict(given)
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return {k: v for k, v in RECIPES[recipe].items() if given.get(k) is None} | {
        k: v for k, v in given.items() if v is not None or k not in RECIPES[recipe]
    }


def default_run() -> RunConfig:
    """The detector's run defaults: every device, a checkpoint each epoch, the newest 2 kept."""
    return RunConfig(devices="auto", save_every=0, keep=2, log_every=10)


@dataclass(frozen=True)
class DetectorTrainConfig:
    """Everything that defines a detector training run (saved in the run and checkpoints).

    Give ``epochs`` or ``steps`` (``steps`` wins when both are set). ``semantic``: train a
    semantic head when the data have masks (ChangeStar only). ``symmetric``: temporally
    symmetric ChangeMixin (``None``: on for STAR / G-STAR, off for supervised). ``dice``:
    add soft dice to the change BCE (``None``: on for supervised, off for STAR as in the
    paper). ``object_classes``: class ids that make the binary object masks (``None``: see
    :meth:`SegSpec.from_taxonomy`). ``self_prob``: G-STAR's self-pair probability.
    ``train_fraction``: the deterministic subset of :func:`subset_indices`. ``lr`` /
    ``weight_decay`` left ``None`` take the optimizer's :data:`OPTIMIZER_DEFAULTS`. ``run``:
    devices, precision, workers and checkpoint cadence (:func:`default_run`).
    ``backbone_weights``: a local state dict for the pretrained backbone (module docstring);
    ``recipe``: the name of the :data:`RECIPES` entry the settings came from (a record).
    """

    model: str = "changestar_1x96"
    backbone: str | None = None
    mode: Mode = "supervised"
    semantic: bool = True
    symmetric: bool | None = None
    object_classes: tuple[int, ...] | None = None
    epochs: int | None = 20
    steps: int | None = None
    batch_size: int = 16
    aug: PairAugmentConfig = field(default_factory=PairAugmentConfig)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    poly_power: float = 0.9
    dice: bool | None = None
    self_prob: float = 0.5
    train_fraction: float = 1.0
    seed: int = 0
    validate_every: int = 0
    eval_batch_size: int = 4
    threshold: float = 0.5
    backbone_weights: str | None = None
    recipe: str | None = None
    run: RunConfig = field(default_factory=default_run)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.mode == "segmentation" and (self.model not in SEMANTIC_MODELS or not self.semantic):
            raise ConfigError(
                f"mode segmentation trains a semantic head, which {self.model!r}"
                f"{'' if self.semantic else ' without semantic'} lacks; use one of "
                f"{', '.join(SEMANTIC_MODELS)} with its semantic head"
            )
        if self.optimizer not in OPTIMIZER_DEFAULTS:
            raise ConfigError(f"optimizer {self.optimizer!r}: choose sgd or adamw")
        lr, weight_decay = OPTIMIZER_DEFAULTS[self.optimizer]
        if self.lr is None:
            object.__setattr__(self, "lr", lr)
        if self.weight_decay is None:
            object.__setattr__(self, "weight_decay", weight_decay)
        if self.steps is None and self.epochs is None:
            raise ConfigError("give the training length: epochs or steps")
        for name in ("epochs", "steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value} must be at least 1")
        for name in ("batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be at least 1")
        if self.validate_every < 0:
            raise ConfigError(f"validate_every={self.validate_every} must be at least 0")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning rate {self.lr} must be positive")
        if not 0 < self.threshold < 1:
            raise ConfigError(f"threshold {self.threshold} must lie strictly between 0 and 1")
        if self.recipe is not None and self.recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {self.recipe!r}; choose one of {', '.join(RECIPES)}")

    @property
    def learning_rate(self) -> float:
        """``lr``, resolved (never ``None`` after construction)."""
        return OPTIMIZER_DEFAULTS[self.optimizer][0] if self.lr is None else self.lr

    @property
    def decay(self) -> float:
        """``weight_decay``, resolved (never ``None`` after construction)."""
        wd = self.weight_decay
        return OPTIMIZER_DEFAULTS[self.optimizer][1] if wd is None else wd

    @property
    def use_dice(self) -> bool:
        return self.mode == "supervised" if self.dice is None else self.dice

    @property
    def use_symmetric(self) -> bool:
        return self.mode != "supervised" if self.symmetric is None else self.symmetric

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["aug"] = self.aug.to_dict()
        out["run"] = self.run.to_dict()
        if self.object_classes is not None:
            out["object_classes"] = list(self.object_classes)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorTrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown detector training settings {unknown}")
        values = dict(data)
        if "aug" in values:
            aug = dict(values["aug"])
            aug["scale"] = tuple(aug.get("scale", PairAugmentConfig.scale))
            values["aug"] = PairAugmentConfig(**aug)
        if values.get("object_classes") is not None:
            values["object_classes"] = tuple(values["object_classes"])
        if "run" in values:
            values["run"] = RunConfig.from_dict(values["run"])
        return cls(**values)


@dataclass
class TrainResult:
    """Where the final checkpoint is, how far training went, the logged metrics
    (``(step, {name: value})`` rows of ``metrics.csv``), the last validation result and how
    many backbone tensors ``backbone_weights`` gave (``None``: not loaded)."""

    checkpoint: Path
    step: int
    history: list[tuple[int, dict[str, float]]]
    val: EvalResult | None = None
    backbone_tensors: int | None = None


# ---------------------------------------------------------------------------- models


def build_model(config: DetectorTrainConfig, seg_classes: int | None) -> nn.Module:
    """The detector of ``config``; a semantic head of ``seg_classes`` outputs when given
    (ChangeStar with ``config.semantic``)."""
    kw: dict[str, Any] = {}
    if config.model in SEMANTIC_MODELS:
        kw["symmetric"] = config.use_symmetric
        kw["num_semantic_classes"] = seg_classes if config.semantic else None
    return build_detector(config.model, backbone=config.backbone, **kw)


def load_trained(folder: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The detector of a ``changen_detector`` checkpoint folder in eval mode, and its config
    (the loader :func:`changen.detectors.load_detector` dispatches to)."""
    config = load_config(folder)
    try:
        model = build_detector(config["model"], **config["model_config"])
    except (KeyError, TypeError, ConfigError) as e:
        raise ConfigError(
            f"{folder}: config.json does not describe a changen detector ({e}); give a "
            f"checkpoint written by changen detect train"
        ) from None
    load_weights(folder, {"model": model})
    return model.eval(), config


def init_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Load a checkpoint's weights into ``model`` (fine-tuning): every parameter must match
    except the semantic head, which is kept fresh when its shape differs. Returns the keys
    left at their initial values."""
    folder = resolve_checkpoint(path)
    weights = read_safetensors(folder / "model.safetensors")
    own = unwrap(model).state_dict()
    usable = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    fresh = sorted(k for k in own if k not in usable)
    blocking = [k for k in fresh if not k.startswith("semantic_head.")]
    if blocking:
        raise ConfigError(
            f"{folder}: its weights (model {load_config(folder).get('model')!r}) do not fit "
            f"the model being trained ({len(blocking)} keys, e.g. {blocking[0]}); fine-tune "
            f"with the checkpoint's own model and backbone"
        )
    unwrap(model).load_state_dict(usable, strict=False)
    return fresh


# ---------------------------------------------------------------------------- losses


def _valid_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean BCE over non-ignore pixels (0 when there are none) of (B, 1, H, W) logits."""
    valid = target != IGNORE
    loss = F.binary_cross_entropy_with_logits(
        logits[:, 0].float(), (target == 1).float(), reduction="none"
    )
    return (loss * valid).sum() / valid.sum().clamp(min=1)


def _valid_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft dice loss 1 − 2|P∩T| / (|P| + |T|) over the batch's non-ignore pixels."""
    valid = (target != IGNORE).float()
    prob = torch.sigmoid(logits[:, 0].float()) * valid
    truth = (target == 1).float() * valid
    return 1 - (2 * (prob * truth).sum() + 1) / (prob.sum() + truth.sum() + 1)


def _seg_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if logits.shape[1] == 1:
        return _valid_bce(logits, target) + _valid_dice(logits, target)
    valid = target != IGNORE
    if not bool(valid.any()):
        return logits.sum() * 0
    return F.cross_entropy(logits.float(), target.long(), ignore_index=IGNORE)


def _change_loss(
    logits: torch.Tensor, change: torch.Tensor, config: DetectorTrainConfig
) -> torch.Tensor:
    bce = _valid_bce(logits, change)
    return bce + _valid_dice(logits, change) if config.use_dice else bce


def detector_loss(
    out: ChangeOutput, batch: dict[str, torch.Tensor], config: DetectorTrainConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss of one batch and its parts (see the module docstring). In segmentation
    mode no change term is formed at all, so the change head gets no gradient (not even the
    weight decay that a zero gradient would apply)."""
    terms: list[torch.Tensor] = []
    parts: dict[str, float] = {}
    if config.mode != "segmentation":
        change = batch["change"]
        orderings = [o for o in (out.change, out.change_t2t1) if o is not None]
        change_loss = torch.stack([_change_loss(o, change, config) for o in orderings]).mean()
        terms.append(change_loss)
        parts["loss_change"] = float(change_loss.detach())
        if out.aux is not None:
            aux_loss = _change_loss(out.aux, change, config)
            terms.append(AUX_WEIGHT * aux_loss)
            parts["loss_aux"] = float(aux_loss.detach())
    dates = ["t1"] if config.mode != "supervised" else ["t1", "t2"]
    seg_terms = [
        _seg_loss(logits, batch[f"{d}_seg"])
        for d, logits in zip(("t1", "t2"), (out.t1_semantic, out.t2_semantic), strict=True)
        if d in dates and logits is not None
    ]
    if seg_terms:
        seg_loss = torch.stack(seg_terms).mean()
        terms.append(seg_loss)
        parts["loss_seg"] = float(seg_loss.detach())
    total = torch.stack(terms).sum()
    parts["loss"] = float(total.detach())
    return total, parts


# ---------------------------------------------------------------------------- training


def train_dataset(
    config: DetectorTrainConfig, reader: Reader[Any], seg: SegSpec
) -> ChangePairDataset | StarPairDataset:
    """The training dataset of ``config.mode`` over the ``train_fraction`` subset."""
    indices = subset_indices(reader.names, config.train_fraction, config.seed)
    if config.mode == "supervised":
        return ChangePairDataset(reader, seg, config.aug, config.seed, indices)
    self_prob = config.self_prob if config.mode == "gstar" else 0.0
    return StarPairDataset(reader, seg, config.aug, config.seed, indices, self_prob)


def _has_masks(dataset: ChangePairDataset | StarPairDataset) -> bool:
    if isinstance(dataset, StarPairDataset):
        return True
    sample = dataset.reader[dataset.indices[0]]
    return sample.t1_mask is not None or sample.t2_mask is not None


def _poly(config: DetectorTrainConfig, step: int, total: int) -> float:
    return config.learning_rate * (1 - min(step, total) / total) ** config.poly_power


def _optimizer(config: DetectorTrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.learning_rate, momentum=config.momentum, weight_decay=config.decay
        )
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.decay)


def train_detector(
    config: DetectorTrainConfig,
    data: Reader[Any],
    out: str | Path,
    *,
    val: Reader[Any] | None = None,
    init: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: ProgressSink = SILENT,
    sources: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a detector on ``data`` into run folder ``out`` (see the module docstring).

    ``val``: a change dataset evaluated on whole images (``validate_every``) by rank 0.
    ``init``: a checkpoint (or run) whose weights start the model — fine-tuning.
    ``resume``: continue ``out`` from its newest checkpoint (``config`` must be the run's).
    ``sources``: extra facts recorded in ``RUN/config.json`` (e.g. data paths). ``progress``
    receives the step bar (rank 0 only).
    """
    out = Path(out)
    if init is not None and config.backbone_weights is not None:
        raise ConfigError(
            f"backbone weights {config.backbone_weights}: --init {init} already sets every "
            f"weight; give one of them"
        )
    if resume:
        if not step_checkpoints(out):
            raise ConfigError(f"{out}: no checkpoints/step-<N> to resume from; drop --resume")
    elif check_output_dir(out, overwrite):
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # no stale newer checkpoints
    if val is not None and val.kind != "change":
        raise ConfigError(f"{val.root}: validation needs a change dataset, got {val.kind}")
    seg = SegSpec.from_taxonomy(data.taxonomy, config.object_classes)
    dataset = train_dataset(config, data, seg)
    seg_classes = seg.num_classes if _has_masks(dataset) else None
    fabric = make_fabric(config.run)
    fabric.launch()
    with torch.random.fork_rng(devices=_rng_devices(fabric)):
        torch.manual_seed(config.seed)
        return _Trainer(config, dataset, out, fabric, seg, seg_classes, val).run(
            init=init, resume=resume, progress=progress, sources=sources or {}
        )


def _rng_devices(fabric: Any) -> list[int]:
    device = fabric.device
    return [device.index or 0] if device.type == "cuda" else []


class _Trainer(TrainTask):
    """The state of one training run: the detectors' :class:`~changen.engine.loop.TrainTask`
    (:meth:`run` hands it to the engine's loop)."""

    def __init__(
        self,
        config: DetectorTrainConfig,
        dataset: ChangePairDataset | StarPairDataset,
        out: Path,
        fabric: Any,
        seg: SegSpec,
        seg_classes: int | None,
        val: Reader[Any] | None,
    ) -> None:
        self.config, self.dataset, self.out, self.fabric = config, dataset, out, fabric
        self.seg, self.seg_classes = seg, seg_classes
        self.val = None
        if val is not None:
            self.val = ChangePairDataset(val, SegSpec.from_taxonomy(val.taxonomy))
        self.sampler = EpochBatchSampler(
            len(dataset), config.batch_size, config.seed, fabric.global_rank, fabric.world_size
        )
        self.total = config.steps or (config.epochs or 1) * len(self.sampler)
        self.step = self.epoch = self.position = 0
        self._epoch_done = False
        self.last_val: EvalResult | None = None
        self.backbone_tensors: int | None = None
        self.loop_state: dict[str, Any] = {}

    @property
    def is_main(self) -> bool:
        return bool(self.fabric.global_rank == 0)

    def run(
        self,
        *,
        init: str | Path | None,
        resume: bool,
        progress: ProgressSink,
        sources: dict[str, Any],
    ) -> TrainResult:
        config, fabric = self.config, self.fabric
        model = build_model(config, self.seg_classes)
        if init is not None:
            init_weights(model, init)
        elif config.backbone_weights is not None and not resume:
            self.backbone_tensors = load_pretrained(model, config.backbone_weights)
        if fabric.world_size > 1 and fabric.device.type == "cuda":  # SyncBN is GPU-only
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model, self.optimizer = fabric.setup(model, _optimizer(config, model))
        if resume:
            self._restore()
        elif self.is_main:
            record = {"train": config.to_dict(), "init": None if init is None else str(init)}
            if self.backbone_tensors is not None:
                record["backbone_weights"] = {
                    "file": config.backbone_weights,
                    "tensors": self.backbone_tensors,
                }
            write_text_atomic(
                self.out / "config.json", json.dumps(record | sources, indent=2) + "\n"
            )
        log = None
        if self.is_main:
            log = MetricsLog(
                self.out / "metrics.csv",
                plot=self.out / "curves.png",
                resume_step=self.step if resume else None,
                groups=CURVE_GROUPS,
            )
        loader = fabric.setup_dataloaders(
            make_loader(self.dataset, self.sampler, config.run.workers, config.seed),
            use_distributed_sampler=False,
        )
        self.batches = self._epochs(loader)
        self.model.train()
        periodic = [] if self.val is None else [Periodic(config.validate_every, self._validate)]
        run_loop(
            self,
            self.total,
            config.run,
            log=log,
            advance=(progress if self.is_main else SILENT).task("train", self.total, self.step),
            periodic=periodic,
            window=Window.from_state(self.loop_state.get("window")),
            reduce=mean_over_processes(fabric),
        )
        history = []
        if log is not None:
            log.close()
            history = log.rows
        return TrainResult(
            latest_checkpoint(self.out), self.step, history, self.last_val, self.backbone_tensors
        )

    def _epochs(self, loader: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Batches epoch after epoch, from the current position of the current epoch."""
        while True:
            self.sampler.set_epoch(self.epoch, self.position)
            self.dataset.set_epoch(self.epoch)
            yield from loader

    def update(self) -> dict[str, float]:
        """One optimiser step at the poly learning rate; moves the epoch position on."""
        batch = next(self.batches)
        lr = _poly(self.config, self.step, self.total)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, parts = detector_loss(self.model(batch["t1"], batch["t2"]), batch, self.config)
        self.optimizer.zero_grad(set_to_none=True)
        self.fabric.backward(loss)
        self.optimizer.step()
        self.step += 1
        self.position += 1
        self._epoch_done = self.position == len(self.sampler)
        if self._epoch_done:
            self.epoch, self.position = self.epoch + 1, 0
        return parts | {"lr": lr}

    def at_boundary(self) -> bool:
        return self._epoch_done

    def _validate(self, step: int) -> dict[str, float] | None:
        """Scores on the validation set (rank 0 evaluates, the others wait)."""
        row = None
        if self.is_main and self.val is not None:
            result = evaluate_detector(
                unwrap(self.model),
                self.val,
                batch_size=self.config.eval_batch_size,
                device=self.fabric.device,
                precision=self.config.run.precision,
                threshold=self.config.threshold,
            )
            self.last_val = result
            scores = asdict(result.scores)
            row = {f"val_{k}": float(scores[k]) for k in SCORE_NAMES}
        self.fabric.barrier()
        return row

    def _checkpoint_config(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "model": self.config.model,
            "model_config": unwrap(self.model).config,
            "seg": {"num_classes": self.seg.num_classes, "lut": self.seg.lut.tolist()},
            "taxonomy": self.dataset.reader.taxonomy.to_dict(),
            "train": self.config.to_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "changen_version": __version__,
        }

    def save(self, loop_state: dict[str, Any]) -> None:
        if self.is_main:
            state = {
                "optimizer": self.optimizer.state_dict(),
                "step": self.step,
                "epoch": self.epoch,
                "position": self.position,
                "rng": capture_rng(),
                "loop": loop_state,
            }
            config = self._checkpoint_config()
            models = {"model": self.model}
            save_step(self.out, self.step, models, config, state, self.config.run.keep)
        self.fabric.barrier()

    def _restore(self) -> None:
        folder = latest_checkpoint(self.out)
        saved = load_config(folder).get("train", {})
        check_resume(self.config.to_dict(), saved, RUNTIME_SETTINGS, self.out)
        load_weights(folder, {"model": self.model})
        state = load_state(folder)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self.loop_state = state.get("loop", {})
        restore_rng(state["rng"])
