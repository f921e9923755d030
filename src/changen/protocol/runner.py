"""Run a transfer experiment: generate, pre-train, evaluate zero-shot, fine-tune, evaluate.

For every seed and detector, each synthesizer is an **arm**: its synthetic set (events and
synthesis from the single-temporal sources, seeded by the seed) pre-trains the detector,
which is evaluated zero-shot on the change set's test split and then fine-tuned on each
fraction of its train split (:func:`~changen.detectors.data.subset_indices`: a smaller
fraction keeps a subset of a larger one's pairs) and evaluated again. Baseline arms
(``scratch``) train the same fine-tuning from random weights.

The work folder::

    protocol.json                  the config this folder runs (a rerun must give the same)
    data/world/…, data/synthetic/<arm>-seed<s>/      generated data, reused when complete
    runs/<detector>/<arm>/seed<s>/{pretrain,finetune-<f>}/      detector run folders
    results/<detector>/<arm>/seed<s>/<phase>.json    one result per finished unit of work
    results.json, results.md, f1_vs_fraction.png     the table (:mod:`.report`)

Every unit of work writes its result atomically when it ends, so a run killed at any point
resumes where it stopped: finished units are read back, a detector run with checkpoints
continues from its newest one, a synthetic set continues from its committed shards.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from changen.data.atomic import write_text_atomic
from changen.data.readers import open_dataset
from changen.data.readers.base import Reader
from changen.data.readers.pooled import SourceEntry, open_sources
from changen.data.world import write_sample_world
from changen.detectors import load_detector
from changen.detectors.augment import PairAugmentConfig
from changen.detectors.data import ChangePairDataset, SegSpec, subset_indices
from changen.detectors.evaluate import SCORE_NAMES, evaluate_detector
from changen.detectors.train import DetectorTrainConfig, recipe_settings, train_detector
from changen.engine.config import RunConfig
from changen.engine.progress import SILENT, ProgressSink
from changen.engine.run import step_checkpoints
from changen.errors import ConfigError
from changen.events.policy import unfired_warnings
from changen.generation import GenerationConfig, RunOptions, generate_dataset
from changen.generation.shards import read_rows
from changen.protocol.config import (
    WORLD,
    ChangeSet,
    Detector,
    ProtocolConfig,
    Training,
    change_process,
    source_taxonomy,
)
from changen.protocol.report import write_report
from changen.synthesis.nuisance import nuisance_config

Scores = dict[str, float]


class Subset(Reader[Any]):
    """The items ``indices`` of a reader, under their own names (a train or test split)."""

    def __init__(self, reader: Reader[Any], indices: list[int]) -> None:
        self.root, self.taxonomy, self._reader = reader.root, reader.taxonomy, reader
        self.kind = reader.kind  # type: ignore[misc]  # a view has its reader's kind
        self.format = reader.format  # type: ignore[misc]
        self._indices = indices
        self.names = [reader.names[i] for i in indices]

    def __getitem__(self, index: int) -> Any:
        return self._reader[self._indices[index]]


def arm_name(synthesizer: str) -> str:
    """A folder-safe arm name: the synthesizer's name, or a checkpoint folder's last parts."""
    if "/" not in synthesizer:
        return synthesizer
    parts = [p for p in Path(synthesizer).parts[-2:] if p not in ("last",)]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts)) or "checkpoint"


class Protocol:
    """One experiment in one work folder (see the module docstring)."""

    def __init__(self, config: ProtocolConfig, out: Path, progress: ProgressSink = SILENT):
        self.config, self.out, self.progress = config, out, progress
        self.log: Callable[[str], None] = lambda message: None

    def run(self) -> dict[str, Any]:
        """Every arm of every seed and detector, then the report; returns its JSON."""
        self._claim()
        torch.set_num_threads(self.config.threads)
        sources, change = self._data()
        train, test = change
        test_set = ChangePairDataset(test, SegSpec.from_taxonomy(test.taxonomy))
        results: dict[str, Any] = {}
        for seed in self.config.seeds:
            for det in self.config.detectors:
                for synth in self.config.synthesizers:
                    arm = arm_name(synth)
                    key = (det.key, arm, seed)
                    pre = self._pretrained(key, det, sources, synth)
                    results.setdefault(det.key, {}).setdefault(arm, {})[seed] = {
                        "zero_shot": self._unit(key, "zero_shot", partial(_scores, pre, test_set)),
                        **self._finetunes(key, det, train, test_set, seed, init=pre),
                    }
                for baseline in self.config.baselines:
                    key = (det.key, baseline, seed)
                    results.setdefault(det.key, {}).setdefault(baseline, {})[seed] = self._baseline(
                        key, det, sources, train, test_set
                    )
        return write_report(self.config, results, self.out, all_changed(test))

    def _claim(self) -> None:
        """Record the config in the folder, or check that a rerun changes only what results
        are keyed by (:data:`GROWABLE`: more seeds, arms, detectors or fractions reuse the
        finished units)."""
        record = self.out / "protocol.json"
        config = json.loads(json.dumps(self.config.to_dict()))
        if record.is_file():
            before = json.loads(record.read_text())
            changed = sorted(k for k in config if _fixed(config, k) != _fixed(before, k))
            if changed:
                raise ConfigError(
                    f"{record}: this work folder ran other {', '.join(changed)} settings; "
                    f"rerun with them or give a new --out"
                )
        elif self.out.exists() and any(self.out.iterdir()):
            raise ConfigError(
                f"{self.out}: not empty and not a protocol work folder; give a new --out"
            )
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(record, json.dumps(config, indent=2, sort_keys=True) + "\n")

    def _data(self) -> tuple[tuple[SourceEntry, ...], tuple[Reader[Any], Reader[Any]]]:
        """The single-temporal sources and the change set's (train, test) readers."""
        config, world = self.config, self.config.world
        root = self.out / "data" / "world"
        if config.sources == WORLD:
            path = _world(root / "source", world.n_source, 100, world.size, pairs=False)
            sources: tuple[SourceEntry, ...] = (SourceEntry(str(path)),)
        else:
            assert not isinstance(config.sources, str)
            sources = tuple(s.entry() for s in config.sources)
        if config.change == WORLD:
            train = open_dataset(_world(root / "train", world.n_train, 300, world.size, pairs=True))
            test = open_dataset(_world(root / "test", world.n_test, 400, world.size, pairs=True))
            return sources, (train, test)
        change = config.change
        assert isinstance(change, ChangeSet)
        if change.path is None:
            assert change.train is not None and change.test is not None
            return sources, (open_dataset(change.train), open_dataset(change.test))
        whole = open_dataset(change.path)
        if whole.kind != "change":
            raise ConfigError(f"{change.path}: the change set must be a change dataset")
        held = subset_indices(whole.names, change.test_fraction, 0)
        rest = [i for i in range(len(whole)) if i not in held]
        if not rest:
            raise ConfigError(f"{change.path}: too few pairs to split off a test part")
        return sources, (Subset(whole, rest), Subset(whole, held))

    def _synthetic(self, sources: tuple[SourceEntry, ...], synth: str, seed: int) -> Reader[Any]:
        """The arm's synthetic set for ``seed``, generated (or resumed) once."""
        g = self.config.generation
        process = change_process(self.config.events, source_taxonomy(self.config))
        generation = GenerationConfig(
            source=sources,
            synthesizer=synth,
            process=process,
            per_image=g.per_image,
            seed=seed,
            crop=g.crop,
            limit=g.limit,
            nuisance=None if g.nuisance in (None, "off") else nuisance_config(g.nuisance),
            negatives=g.negatives,
            synthesizer_options={
                "device": None if self.config.accelerator == "auto" else self.config.accelerator
            },
        )
        out = self.out / "data" / "synthetic" / f"{arm_name(synth)}-seed{seed}"
        if not (out / "manifest.json").is_file():
            self.log(f"generating {out.name}")
            resume = out.is_dir() and any(out.iterdir())
            options = RunOptions(batch_size=g.batch_size, workers=0, resume=resume)
            generate_dataset(generation, out, options, progress=self.progress)
            counts = Counter(e["event"] for row in read_rows(out) for e in row["events"])
            for warning in unfired_warnings(process, counts):
                self.log(f"{out.name}: {warning}")
        return open_dataset(out)

    def _pretrained(
        self, key: tuple[str, str, int], det: Detector, sources: tuple[SourceEntry, ...], synth: str
    ) -> Path:
        """The arm's pre-trained checkpoint (its synthetic set generated first)."""

        def work() -> dict[str, Any]:
            synthetic = self._synthetic(sources, synth, key[2])
            pretrain = self.config.pretrain
            checkpoint = self._train(
                key, "pretrain", det, pretrain, synthetic, key[2], weights=det.backbone_weights
            )
            return {"checkpoint": str(checkpoint)}

        return Path(self._unit(key, "pretrain", work)["checkpoint"])

    def _baseline(
        self,
        key: tuple[str, str, int],
        det: Detector,
        sources: tuple[SourceEntry, ...],
        train: Reader[Any],
        test: ChangePairDataset,
    ) -> dict[str, Scores]:
        """A baseline arm's fine-tuned scores: from random weights (``scratch``), from the
        detector's backbone file (``imagenet``) or from segmentation pre-training."""
        weights = det.backbone_weights if key[1] == "imagenet" else None
        init = self._segmented(key, det, sources) if key[1] == "segmentation" else None
        return self._finetunes(key, det, train, test, key[2], init=init, weights=weights)

    def _segmented(
        self, key: tuple[str, str, int], det: Detector, sources: tuple[SourceEntry, ...]
    ) -> Path:
        """The segmentation baseline's checkpoint: the detector's semantic head and encoder
        pre-trained on the sources' masks alone (Changen Table 6), with the pre-training
        budget of the synthetic arms."""

        def work() -> dict[str, Any]:
            checkpoint = self._train(
                key,
                "pretrain",
                det,
                self.config.pretrain,
                open_sources(sources),
                key[2],
                weights=det.backbone_weights,
                mode="segmentation",
            )
            return {"checkpoint": str(checkpoint)}

        return Path(self._unit(key, "pretrain", work)["checkpoint"])

    def _config(self, det: Detector, train: Training, seed: int, **kw: Any) -> DetectorTrainConfig:
        """The detector config of a phase: the phase's settings, the rest from its recipe."""
        save = max(1, train.steps // 4)
        given = {"batch_size": train.batch_size, "crop": train.crop, "lr": train.lr}
        given |= {"epochs": train.epochs, "optimizer": None, "weight_decay": None, "dice": None}
        settings = recipe_settings(train.recipe, given)
        run = RunConfig(
            accelerator=self.config.accelerator,
            save_every=save,
            keep=1,
            log_every=max(1, save // 5),
        )
        return DetectorTrainConfig(
            model=det.model,
            backbone=det.backbone,
            epochs=settings.pop("epochs"),
            steps=None if train.epochs else train.steps,
            aug=PairAugmentConfig(crop=settings.pop("crop")),
            optimizer=settings.pop("optimizer") or "sgd",
            recipe=train.recipe,
            seed=seed,
            run=run,
            **settings,
            **kw,
        )

    def _train(
        self,
        key: tuple[str, str, int],
        phase: str,
        det: Detector,
        train: Training,
        data: Reader[Any],
        seed: int,
        init: Path | None = None,
        fraction: float = 1.0,
        weights: str | None = None,
        mode: str = "supervised",
    ) -> Path:
        """A detector run's final checkpoint: trained, or resumed from its newest one."""
        run = self.out / "runs" / key[0] / key[1] / f"seed{key[2]}" / phase
        config = self._config(
            det,
            train,
            seed,
            train_fraction=fraction,
            backbone_weights=weights,
            mode=mode,
            semantic=mode == "segmentation",
        )
        resume = run.is_dir() and bool(step_checkpoints(run))
        self.log(f"training {'/'.join(map(str, key))}/{phase}")
        result = train_detector(
            config,
            data,
            run,
            init=init,
            resume=resume,
            overwrite=not resume,
            progress=self.progress,
        )
        return Path(result.checkpoint)

    def _finetunes(
        self,
        key: tuple[str, str, int],
        det: Detector,
        train: Reader[Any],
        test: ChangePairDataset,
        seed: int,
        init: Path | None,
        weights: str | None = None,
    ) -> dict[str, Scores]:
        """Fine-tuned scores for every fraction (from checkpoint ``init``, from backbone
        ``weights``, or from scratch)."""
        out = {}
        for f in self.config.finetune.fractions:
            phase = f"finetune-{f:g}"

            def work(phase: str = phase, f: float = f) -> Scores:
                ckpt = self._train(
                    key, phase, det, self.config.finetune, train, seed, init, f, weights
                )
                return _scores(ckpt, test)

            out[phase] = self._unit(key, phase, work)
        return out

    def _unit(
        self, key: tuple[str, str, int], phase: str, work: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """The result of one unit of work: read back when finished, else computed and saved."""
        file = self.out / "results" / key[0] / key[1] / f"seed{key[2]}" / f"{phase}.json"
        if file.is_file():
            return dict(json.loads(file.read_text()))
        scores = work()
        file.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(file, json.dumps(scores, indent=2) + "\n")
        return scores


GROWABLE = ("seeds", "synthesizers", "detectors", "baselines", "finetune.fractions")
"""Config fields a rerun of a work folder may change."""


def _fixed(config: dict[str, Any], key: str) -> Any:
    """``config[key]`` without its :data:`GROWABLE` parts."""
    if key in GROWABLE:
        return None
    value = config.get(key)
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if f"{key}.{k}" not in GROWABLE}
    return value


def _world(path: Path, n: int, seed: int, size: int, pairs: bool) -> Path:
    """A sample-world folder, written once (complete when its digest file exists)."""
    done = path.with_name(f".{path.name}.done")
    if not done.is_file():
        write_sample_world(path, n, seed, size=size, pairs=pairs, overwrite=True)
        done.write_text(hashlib.sha256(f"{n}:{seed}:{size}:{pairs}".encode()).hexdigest())
    return path


def _scores(checkpoint: Path, test: ChangePairDataset) -> Scores:
    model, _ = load_detector(checkpoint)
    result = evaluate_detector(model, test, batch_size=4)
    return {k: round(float(getattr(result.scores, k)), 4) for k in SCORE_NAMES}


def all_changed(test: Reader[Any]) -> Scores:
    """Scores of the trivial detector that marks every pixel changed."""
    changed = total = 0
    for sample in test:
        keep = sample.change_mask != 255
        changed += int((sample.change_mask[keep] == 1).sum())
        total += int(keep.sum())
    precision = changed / max(total, 1)
    return {
        "precision": round(precision, 4),
        "recall": 1.0,
        "f1": round(2 * precision / (1 + precision), 4),
        "iou": round(precision, 4),
    }


def run_protocol(
    config: ProtocolConfig,
    out: str | Path,
    progress: ProgressSink = SILENT,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run ``config`` in work folder ``out`` (new, or one it ran before: resumes)."""
    protocol = Protocol(config, Path(out), progress)
    if log is not None:
        protocol.log = log
    return protocol.run()


__all__ = ["Protocol", "Subset", "all_changed", "arm_name", "run_protocol"]
