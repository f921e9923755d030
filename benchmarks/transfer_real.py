"""Synthetic pairs → real change: zero-shot and few-shot transfer to real LEVIR-CD crops.

Does a detector pre-trained on changen's synthetic pairs find real change, and does the
nuisance model between dates (and hard negatives) help? All synthetic data are made here from
real single-temporal building tiles; the real change set is only evaluated on (and, for the
few-shot arms, a few of its pairs are fine-tuned on).

1. **sources**: the real building tiles of ``--sources`` (default: the xView2 Joplin pre-event
   tiles with their polygons and the Ida-BD pre-event tiles with 0/255 masks, both at about
   LEVIR-CD's 0.5 m; see ``docs/transfer.md``), pooled and cut into ``--crop-size``² crops;
2. **arms**: for every synthesizer (``copy_paste``, ``inpaint``, and a Changen GAN checkpoint
   when ``--gan`` is given) × nuisance (``off`` / ``--nuisance``), plus hard negatives
   (``--negatives`` share, with nuisance): one synthetic dataset per arm and seed, generated
   with the same events (created and removed buildings) and seed in every arm;
3. per arm and seed: the same detector (``--model``, ``--steps``, batch, crop, lr) pre-trained
   on the arm's pairs, evaluated **zero-shot** on all real pairs; then fine-tuned on
   ``--few`` real pairs (a seeded choice, the same for every arm of a seed) and evaluated on
   the other real pairs; a **scratch** arm trains the same fine-tuning from random weights;
4. **calibrated zero-shot**: the pre-trained detector (not fine-tuned) scored on the held-out
   real pairs at the threshold that maximises its F1 on the ``--few`` fine-tuning pairs — what a
   user with a few labelled target pairs can do without retraining, when the detector ranks
   change well (AUROC) but is badly calibrated at 0.5. ``--merge`` adds it to older runs.

Prints (and writes to ``OUT/transfer.json``) the settings, per-seed scores (precision,
recall, F1, IoU over the split's pixels at threshold 0.5, and the threshold-free pixel ROC-AUC
of the zero-shot detector) and mean ± std over seeds, beside the trivial "everything changed"
detector on all real pairs and, per seed, on the held-out ones; ``OUT/transfer.md`` has the
table and ``OUT/overlays.png`` the zero-shot predictions of the arm with the best AUROC on a
few real crops (green: true change found, red: false alarm, blue: missed). ``--merge``
combines work folders run apart (arms or seeds in parallel). Whatever the numbers show, they
are reported as they are.

    .venv/bin/python benchmarks/transfer_real.py --out /tmp/transfer [--gan RUN] [--quick]
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

import numpy as np
import torch

from changen.data.output import check_output_dir
from changen.data.readers import open_dataset
from changen.data.readers.pooled import SourceEntry
from changen.detectors import load_detector
from changen.detectors.augment import PairAugmentConfig
from changen.detectors.data import ChangePairDataset, SegSpec, subset_indices
from changen.detectors.evaluate import SCORE_NAMES, evaluate_detector
from changen.detectors.inference import predict_change
from changen.detectors.train import DetectorTrainConfig, train_detector
from changen.engine.config import RunConfig
from changen.events import ChangeProcess
from changen.generation import GenerationConfig, RunOptions, generate_dataset
from changen.synthesis.nuisance import nuisance_config
from changen.viz.grid import make_grid, save_png

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
QUICK = {"steps": 30, "finetune_steps": 10, "seeds": [0], "per_image": 1, "limit": 1}


def arms(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Arm name → synthesizer, nuisance preset and share of hard negatives."""
    synths = {"copy_paste": "copy_paste", "inpaint": "inpaint"}
    if args.gan is not None:
        synths["gan"] = str(args.gan)
    out: dict[str, dict[str, Any]] = {}
    for name, spec in synths.items():
        out[f"{name}"] = {"synthesizer": spec, "nuisance": "off", "negatives": 0.0}
        out[f"{name}+nuisance"] = {"synthesizer": spec, "nuisance": args.nuisance, "negatives": 0.0}
        out[f"{name}+nuisance+negatives"] = {
            "synthesizer": spec,
            "nuisance": args.nuisance,
            "negatives": args.negatives,
        }
    return {k: v for k, v in out.items() if not args.arms or k in args.arms}


def sources(args: argparse.Namespace) -> tuple[SourceEntry, ...]:
    return (
        SourceEntry(str(args.real / "xview2_joplin"), "xview2"),
        SourceEntry(str(args.real / "idabd_pre"), binary_threshold=127),
    )


def generate(args: argparse.Namespace, arm: dict[str, Any], seed: int, out: Path) -> float:
    """The arm's synthetic dataset for ``seed`` (seconds taken)."""
    process = ChangeProcess.from_flags(
        "create,remove", count=(1, 4), scale=(0.8, 1.25), rotate="any", min_area=64
    )
    config = GenerationConfig(
        source=sources(args),
        synthesizer=arm["synthesizer"],
        process=process,
        per_image=args.per_image,
        seed=seed,
        crop=args.crop_size,
        limit=args.limit,
        nuisance=nuisance_config(arm["nuisance"]),
        negatives=arm["negatives"],
        synthesizer_options={"device": "cpu"},
    )
    start = time.perf_counter()
    generate_dataset(config, out, RunOptions(batch_size=8, workers=0, threads=args.threads))
    return time.perf_counter() - start


def detector_config(
    args: argparse.Namespace, seed: int, steps: int, **kw: Any
) -> DetectorTrainConfig:
    return DetectorTrainConfig(
        model=args.model,
        backbone=args.backbone,
        steps=steps,
        batch_size=args.batch_size,
        aug=PairAugmentConfig(crop=args.crop),
        lr=args.lr,
        seed=seed,
        semantic=False,
        run=RunConfig(accelerator="cpu", save_every=steps, keep=1, log_every=max(1, steps // 10)),
        **kw,
    )


def scores(
    model: torch.nn.Module, dataset: ChangePairDataset, threshold: float = 0.5
) -> dict[str, float]:
    result = evaluate_detector(model, dataset, batch_size=4, threshold=threshold)
    return {k: round(float(getattr(result.scores, k)), 4) for k in SCORE_NAMES}


def f1_threshold(prob: np.ndarray, truth: np.ndarray) -> float:
    """The probability threshold (``prob > t`` is change) with the best F1 on these pixels:
    halfway between the two distinct probabilities where the best cut lies, kept strictly
    inside (0, 1). 0.5 when ``truth`` has no change (no F1 to maximise)."""
    if not truth.any():
        return 0.5
    order = np.argsort(-prob, kind="stable")
    p, t = prob[order].astype(np.float64), truth[order]
    tp = np.cumsum(t)
    f1 = 2 * tp / (np.arange(1, len(t) + 1) + t.sum())  # 2TP / (TP + FP + P)
    cut = np.r_[p[1:] < p[:-1], True]  # cut only between distinct probabilities
    k = int(np.argmax(np.where(cut, f1, -1.0)))
    below = p[k + 1] if k + 1 < len(p) else 0.0
    return float(np.clip((p[k] + below) / 2, 1e-7, 1 - 1e-7))


def calibrated(model: torch.nn.Module, test: Path, few_names: list[str]) -> dict[str, float]:
    """Zero-shot scores on the held-out real pairs at the F1-best threshold of the few-shot
    pairs ``few_names`` (which stay out of the scoring), and that threshold."""
    real = open_dataset(test)
    few = [real.names.index(name) for name in few_names]
    prob, truth = [], []
    for i in few:
        sample = real[i]
        keep = sample.change_mask != 255
        prob.append(predict_change(model, sample.t1_image, sample.t2_image)[keep])
        truth.append(sample.change_mask[keep] == 1)
    threshold = f1_threshold(np.concatenate(prob), np.concatenate(truth))
    held = [i for i in range(len(real)) if i not in few]
    seg = SegSpec.from_taxonomy(real.taxonomy)
    held_scores = scores(model, ChangePairDataset(real, seg, indices=held), threshold)
    return {**held_scores, "threshold": float(f"{threshold:.4g}")}


def auroc(model: torch.nn.Module, test: Path) -> float:
    """Pixel ROC-AUC of the change probability over all real pairs (threshold-free: 0.5 is
    chance, whatever the detector's calibration)."""
    from torchmetrics.classification import BinaryAUROC

    metric = BinaryAUROC(thresholds=200)
    for sample in open_dataset(test):
        prob = predict_change(model, sample.t1_image, sample.t2_image)
        keep = sample.change_mask != 255
        metric.update(
            torch.from_numpy(prob[keep]), torch.from_numpy(sample.change_mask[keep].astype(int))
        )
    return round(float(metric.compute()), 4)


def run_seed(args: argparse.Namespace, seed: int, root: Path) -> dict[str, Any]:
    """Every arm (pre-train, zero-shot, fine-tune) and the scratch arm for one seed."""
    real = open_dataset(args.test)
    seg = SegSpec.from_taxonomy(real.taxonomy)
    few = subset_indices(real.names, args.few / len(real), seed)
    held = [i for i in range(len(real)) if i not in few]
    all_real = ChangePairDataset(real, seg)
    held_real = ChangePairDataset(real, seg, indices=held)
    tune = {"train_fraction": args.few / len(real)}
    out: dict[str, Any] = {"few_shot_pairs": [real.names[i] for i in few]}
    for name, arm in arms(args).items():
        data = root / "data" / f"seed{seed}" / name
        gen_s = generate(args, arm, seed, data)
        start = time.perf_counter()
        pre = train_detector(
            detector_config(args, seed, args.steps),
            open_dataset(data),
            root / "runs" / f"seed{seed}" / name,
        )
        model, _ = load_detector(pre.checkpoint)
        zero = {**scores(model, all_real), "auroc": auroc(model, args.test)}
        zero_calibrated = calibrated(model, args.test, out["few_shot_pairs"])
        fine = train_detector(
            detector_config(args, seed, args.finetune_steps, **tune),
            real,
            root / "runs" / f"seed{seed}" / f"{name}_finetuned",
            init=pre.checkpoint,
        )
        tuned, _ = load_detector(fine.checkpoint)
        out[name] = {
            "zero_shot": zero,
            "zero_shot_held": scores(model, held_real),
            "zero_shot_held_calibrated": zero_calibrated,
            "finetuned_held": scores(tuned, held_real),
            "pairs": len(open_dataset(data)),
            "generate_s": round(gen_s, 1),
            "train_s": round(time.perf_counter() - start, 1),
        }
    scratch = train_detector(
        detector_config(args, seed, args.finetune_steps, **tune),
        real,
        root / "runs" / f"seed{seed}" / "scratch",
    )
    model, _ = load_detector(scratch.checkpoint)
    out["scratch"] = {"finetuned_held": scores(model, held_real)}
    return out


def all_changed(test: Path, skip: tuple[str, ...] = ()) -> dict[str, float]:
    """Scores of the trivial detector that marks every pixel changed (precision = the share of
    changed pixels) on the real pairs not named in ``skip``: what a detector that learnt "any
    difference is change" scores, and what a calibrated threshold reaches by marking all."""
    changed = total = 0
    real = open_dataset(test)
    for name, sample in zip(real.names, real, strict=True):
        if name in skip:
            continue
        keep = sample.change_mask != 255
        changed += int((sample.change_mask[keep] == 1).sum())
        total += int(keep.sum())
    precision = changed / total
    return {"precision": round(precision, 4), "f1": round(2 * precision / (1 + precision), 4)}


def summarise(per_seed: dict[int, dict[str, Any]]) -> dict[str, dict[str, dict[str, str]]]:
    """``mean ± std`` over seeds of every arm, phase and score (sample std; 0 for one seed)."""
    first = next(iter(per_seed.values()))
    summary: dict[str, dict[str, dict[str, str]]] = {}
    for arm, phases in first.items():
        if not isinstance(phases, dict):
            continue
        summary[arm] = {}
        for phase, values in phases.items():
            if not isinstance(values, dict):
                continue
            summary[arm][phase] = {}
            for score in values:
                xs = [r[arm][phase][score] for r in per_seed.values()]
                std = statistics.stdev(xs) if len(xs) > 1 else 0.0
                summary[arm][phase][score] = f"{statistics.mean(xs):.3f} ± {std:.3f}"
    return summary


def table(summary: dict[str, dict[str, dict[str, str]]]) -> str:
    """The Markdown table of zero-shot (all pairs at 0.5; held-out pairs at 0.5 and at the
    calibrated threshold) and fine-tuned scores per arm."""
    lines = [
        "| arm | zero-shot P | zero-shot R | zero-shot F1 | zero-shot IoU | zero-shot AUROC "
        "| zero-shot F1 (held, 0.5) | calibrated threshold | calibrated P (held) "
        "| calibrated F1 (held) | fine-tuned F1 (held) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, phases in summary.items():
        z = phases.get("zero_shot", {})
        h = phases.get("zero_shot_held", {})
        c = phases.get("zero_shot_held_calibrated", {})
        f = phases.get("finetuned_held", {})
        cells = [z.get(k, "–") for k in ("precision", "recall", "f1", "iou", "auroc")]
        cells += [h.get("f1", "–")] + [c.get(k, "–") for k in ("threshold", "precision", "f1")]
        lines.append(f"| {arm} | {' | '.join(cells)} | {f.get('f1', '–')} |")
    return "\n".join(lines)


def overlays(test: Path, run: Path, arm: str, out: Path) -> None:
    """Zero-shot predictions of the detector in ``run`` (arm ``arm``) on the first real crops:
    TP green, FP red, FN blue."""
    real = open_dataset(test)
    model, _ = load_detector(run)
    rows = []
    for i in range(min(4, len(real))):
        s = real[i]
        pred = predict_change(model, s.t1_image, s.t2_image) > 0.5
        truth = s.change_mask == 1
        view = s.t2_image.copy()
        for mask, colour in (
            (pred & truth, (0, 200, 0)),
            (pred & ~truth, (230, 0, 0)),
            (~pred & truth, (0, 90, 255)),
        ):
            view[mask] = (0.5 * view[mask] + 0.5 * np.array(colour)).astype(np.uint8)
        rows.append([s.t1_image, s.t2_image, s.change_mask.astype(np.uint8) * 255, view])
    grid = make_grid(
        rows,
        titles=["pre (real)", "post (real)", "true change", f"zero-shot: {arm}"],
        row_labels=[real.names[i] for i in range(len(rows))],
        cell=192,
    )
    save_png(out, grid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="Work folder (new or empty).")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--real", type=Path, default=REAL, help="The shared real samples.")
    parser.add_argument("--test", type=Path, default=None, help="Real change set (LEVIR-CD crops).")
    parser.add_argument("--gan", type=Path, default=None, help="A Changen GAN checkpoint or run.")
    parser.add_argument("--arms", nargs="*", default=None, help="Run only these arms.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--nuisance", default="default", help="Preset or JSON of the nuisance arms."
    )
    parser.add_argument("--negatives", type=float, default=0.2)
    parser.add_argument("--per-image", type=int, default=2)
    parser.add_argument("--crop-size", type=int, default=256, help="Source crops (generation).")
    parser.add_argument("--limit", type=int, default=None, help="Source items per dataset.")
    parser.add_argument("--model", default="fc_siam_diff")
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--few", type=int, default=3, help="Real pairs to fine-tune on.")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128, help="Training crops.")
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="A few-minute smoke run.")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="Merge the transfer.json of these work folders (arms or seeds run apart) into --out.",
    )
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    args.test = args.test or args.real / "levircd_crops"
    if check_output_dir(args.out, args.overwrite):
        for sub in ("data", "runs"):
            shutil.rmtree(args.out / sub, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.merge:
        per_seed, runs, arm_specs = merged(args.merge)
    else:
        os.nice(10)
        torch.set_num_threads(args.threads)
        per_seed = {seed: run_seed(args, seed, args.out) for seed in args.seeds}
        runs = {(seed, a): args.out for seed in per_seed for a in arms(args)}
        arm_specs = arms(args)
    summary = summarise(per_seed)
    best = max(
        (a for a in summary if "zero_shot" in summary[a]),
        key=lambda a: statistics.mean(per_seed[s][a]["zero_shot"]["auroc"] for s in per_seed),
    )
    seed = next(iter(per_seed))
    run = runs[(seed, best)] / "runs" / f"seed{seed}" / best
    overlays(args.test, run, best, args.out / "overlays.png")
    report = {
        "settings": json.loads(json.dumps(vars(args), default=str)),
        "arms": arm_specs,
        "per_seed": per_seed,
        "mean_std": summary,
        "best_zero_shot_arm": best,
        "all_changed_baseline": all_changed(args.test),
        "all_changed_held": {
            seed: all_changed(args.test, tuple(per_seed[seed]["few_shot_pairs"]))
            for seed in per_seed
        },
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": args.threads,
            "load_avg_at_end": os.getloadavg(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "wall_s": round(time.perf_counter() - start, 1),
    }
    text = json.dumps(report, indent=2, ensure_ascii=False)
    (args.out / "transfer.json").write_text(text + "\n")
    trivial = all_changed(args.test)
    p, f1 = trivial["precision"], trivial["f1"]
    row = f"| all changed (trivial) | {p:.3f} | 1.000 | {f1:.3f} | {p:.3f} | 0.500 |" + " – |" * 5
    (args.out / "transfer.md").write_text(table(summary) + "\n" + row + "\n")
    print(text)


def merged(
    folders: list[Path],
) -> tuple[dict[int, dict[str, Any]], dict[tuple[int, str], Path], dict[str, Any]]:
    """Per-seed results, the work folder of each (seed, arm) and the arm specs of several runs."""
    per_seed: dict[int, dict[str, Any]] = {}
    runs: dict[tuple[int, str], Path] = {}
    specs: dict[str, Any] = {}
    for folder in folders:
        report = json.loads((folder / "transfer.json").read_text())
        test = Path(report["settings"]["test"])
        for seed, results in report["per_seed"].items():
            for arm, result in results.items():
                if not isinstance(result, dict) or "zero_shot" not in result:
                    continue
                model, _ = load_detector(folder / "runs" / f"seed{seed}" / arm)
                if "auroc" not in result["zero_shot"]:
                    result["zero_shot"]["auroc"] = auroc(model, test)
                if "zero_shot_held_calibrated" not in result:
                    few = results["few_shot_pairs"]
                    result["zero_shot_held_calibrated"] = calibrated(model, test, few)
            per_seed.setdefault(int(seed), {}).update(results)
            runs.update({(int(seed), arm): folder for arm in report["arms"]})
        specs.update(report["arms"])
    return per_seed, runs, specs


if __name__ == "__main__":
    main()
