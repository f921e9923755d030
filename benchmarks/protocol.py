"""The Changen transfer protocol on the procedural sample world (issue 6, "Done when").

Does synthetic pre-training with changen help a change detector that then sees only 5% of a
true change dataset? All data are generated here, seeded:

1. **source**: ``--n-source`` sample-world scenes (single-temporal: image + OpenEarthMap mask);
2. **synthetic**: ``changen.generation.generate_dataset`` over the source (events create /
   remove / reclass with the OpenEarthMap kernel, removed objects filled with the surrounding
   class, then the ``--synthesizer``, Copy-Paste by default), ``--per-image`` pairs per scene,
   LEVIR-CD layout;
3. **held-out true change**: sample-world change pairs (``write_sample_world(pairs=True)``),
   a train part (``--n-train``) and a test part (``--n-test``) with other seeds than the source.

Then for every seed in ``--seeds``:

* (a) **pre-train** on synthetic (supervised; with a semantic head when the model has one) →
  **zero-shot** evaluation on the test part → **fine-tune** on ``--fraction`` (5%) of the train
  part (the deterministic :func:`~changen.detectors.data.subset_indices` subset,
  change labels only) → evaluation on the test part;
* (b) **from scratch**: the same fine-tuning from random initialisation → evaluation.

Prints (and writes to ``OUT/protocol.json``) one JSON object: the settings, per-seed
precision / recall / F1 / IoU of ``pretrained_finetuned``, ``scratch_finetuned`` and
``zero_shot``, their mean ± std (sample std over seeds), the training step time and
evaluation throughput, and the wall time of every phase. Whatever the numbers show, they are
reported as they are.

The defaults fit about 20 minutes on 2 CPU cores (FC-Siam-diff, 128² crops); the process
lowers its own priority (``nice`` +10). ``--quick`` is a 2–3 minute smoke run. The paper's
setting is ``--model changestar_1x96 --backbone resnet18`` with far more steps (a GPU run).

    .venv/bin/python benchmarks/protocol.py --out /tmp/protocol [--quick] [--overwrite]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from changen.cli.progress import rich_sink
from changen.data.output import check_output_dir
from changen.data.readers import open_dataset
from changen.data.world import write_sample_world
from changen.detectors import load_detector
from changen.detectors.augment import PairAugmentConfig
from changen.detectors.data import ChangePairDataset, SegSpec
from changen.detectors.evaluate import SCORE_NAMES, evaluate_detector
from changen.detectors.train import DetectorTrainConfig, TrainResult, train_detector
from changen.engine.config import RunConfig
from changen.engine.progress import ProgressSink
from changen.events import ChangeProcess
from changen.generation import GenerationConfig, RunOptions, generate_dataset

ARMS = ("pretrained_finetuned", "scratch_finetuned", "zero_shot")
QUICK = {
    "n_source": 24,
    "per_image": 1,
    "n_train": 40,
    "n_test": 12,
    "pretrain_steps": 20,
    "finetune_steps": 10,
    "seeds": [0, 1, 2],
}


def build_data(args: argparse.Namespace, root: Path) -> dict[str, Path]:
    """Source scenes, the synthetic dataset and the held-out train / test change sets."""
    size = args.size
    source = write_sample_world(root / "source", args.n_source, 100, size=size)
    process = ChangeProcess.from_flags(
        "create,remove,reclass", count=(1, 4), scale=(0.75, 1.25), rotate="any", fill="surrounding"
    )
    config = GenerationConfig(
        source=str(source),
        synthesizer=args.synthesizer,
        process=process,
        layout="levircd",
        per_image=args.per_image,
        seed=200,
    )
    generate_dataset(config, root / "synthetic", RunOptions(batch_size=8))
    return {
        "synthetic": root / "synthetic",
        "train": write_sample_world(root / "heldout_train", args.n_train, 300, size, pairs=True),
        "test": write_sample_world(root / "heldout_test", args.n_test, 400, size, pairs=True),
    }


def _config(args: argparse.Namespace, seed: int, save_every: int, **kw: Any) -> DetectorTrainConfig:
    return DetectorTrainConfig(
        model=args.model,
        backbone=args.backbone,
        batch_size=args.batch_size,
        aug=PairAugmentConfig(crop=args.crop),
        lr=args.lr,
        seed=seed,
        run=RunConfig(devices="auto", save_every=save_every, keep=2, log_every=25),
        eval_batch_size=8,
        **kw,
    )


def _scores(result: Any) -> dict[str, float]:
    return {k: round(getattr(result.scores, k), 4) for k in SCORE_NAMES}


def _step_time(result: TrainResult) -> float:
    times = [row["s_per_step"] for _, row in result.history if "s_per_step" in row]
    return statistics.median(times) if times else float("nan")


def run_seed(
    args: argparse.Namespace, seed: int, data: dict[str, Path], root: Path, sink: ProgressSink
) -> dict[str, Any]:
    """Pre-train, zero-shot, fine-tune from pre-trained and from scratch for one seed."""
    test = open_dataset(data["test"])
    test_set = ChangePairDataset(test, SegSpec.from_taxonomy(test.taxonomy))
    train = open_dataset(data["train"])
    timing: dict[str, float] = {}
    out: dict[str, Any] = {}

    start = time.perf_counter()
    pre = train_detector(
        _config(args, seed, args.pretrain_steps, steps=args.pretrain_steps),
        open_dataset(data["synthetic"]),
        root / f"seed{seed}" / "pretrain",
        progress=sink,
    )
    timing["pretrain_s"] = time.perf_counter() - start
    out["pretrain_sec_per_step"] = round(_step_time(pre), 4)

    start = time.perf_counter()
    model, _ = load_detector(pre.checkpoint)
    zero = evaluate_detector(model, test_set, batch_size=8)
    timing["eval_s"] = time.perf_counter() - start
    out["eval_images_per_s"] = round(len(test_set) / timing["eval_s"], 2)
    out["zero_shot"] = _scores(zero)

    n = args.finetune_steps
    tune = _config(
        args, seed, n, steps=n, train_fraction=args.fraction, semantic=False, validate_every=n
    )
    for arm, init in (("pretrained_finetuned", pre.checkpoint), ("scratch_finetuned", None)):
        start = time.perf_counter()
        result = train_detector(
            tune, train, root / f"seed{seed}" / arm, val=test, init=init, progress=sink
        )
        timing[f"{arm}_s"] = time.perf_counter() - start
        assert result.val is not None
        out[arm] = _scores(result.val)
        out["finetune_sec_per_step"] = round(_step_time(result), 4)
    out["timing_s"] = {k: round(v, 1) for k, v in timing.items()}
    return out


def summarise(per_seed: dict[int, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """``mean ± std`` over seeds of every arm's scores (sample std; 0 for one seed)."""
    summary: dict[str, dict[str, str]] = {}
    for arm in ARMS:
        summary[arm] = {}
        for name in SCORE_NAMES:
            values = [r[arm][name] for r in per_seed.values()]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[arm][name] = f"{statistics.mean(values):.4f} ± {std:.4f}"
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="Work folder (new or empty).")
    parser.add_argument("--overwrite", action="store_true", help="Replace --out's contents.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default="fc_siam_diff")
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--synthesizer", default="copy_paste")
    parser.add_argument("--size", type=int, default=256, help="Sample-world image size.")
    parser.add_argument("--n-source", type=int, default=96)
    parser.add_argument("--per-image", type=int, default=2)
    parser.add_argument("--n-train", type=int, default=200, help="Held-out train part.")
    parser.add_argument("--n-test", type=int, default=48, help="Held-out test part.")
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="A 2–3 minute smoke run.")
    parser.add_argument("--progress", action="store_true", help="Show progress bars.")
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if check_output_dir(args.out, args.overwrite):
        shutil.rmtree(args.out / "data", ignore_errors=True)
        shutil.rmtree(args.out / "runs", ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    os.nice(10)
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    data = build_data(args, args.out / "data")
    data_s = time.perf_counter() - start
    with rich_sink(args.progress) as sink:
        per_seed = {
            seed: run_seed(args, seed, data, args.out / "runs", sink) for seed in args.seeds
        }
    report = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "data": {name: len(open_dataset(path)) for name, path in data.items()},
        "per_seed": per_seed,
        "mean_std": summarise(per_seed),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": args.threads,
            "load_avg_at_end": os.getloadavg(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "wall_s": {"data": round(data_s, 1), "total": round(time.perf_counter() - start, 1)},
    }
    text = json.dumps(report, indent=2, ensure_ascii=False)
    (args.out / "protocol.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
