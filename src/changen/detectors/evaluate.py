"""Evaluating a change detector on whole images of a change dataset.

:func:`evaluate_detector` pads each pair to a multiple of 32 (padding ignored), thresholds the
change probability and accumulates one confusion matrix over the split
(:mod:`changen.metrics.change`'s rules), plus a row per image.
"""

from __future__ import annotations

import csv
import io
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from changen.detectors.data import ChangePairDataset, pad_collate
from changen.engine.data import make_loader
from changen.engine.progress import SILENT, ProgressSink
from changen.errors import ConfigError
from changen.metrics.change import ChangeScores, confusion_counts, scores_from_counts

SCORE_NAMES = ("precision", "recall", "f1", "iou")


@dataclass
class EvalResult:
    """Whole-split scores and one row per image (name, counts, precision/recall/F1/IoU)."""

    scores: ChangeScores
    per_image: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        return asdict(self.scores) | {"images": len(self.per_image)}

    def per_image_csv(self) -> str:
        buf = io.StringIO()
        columns = ["name", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "iou"]
        writer = csv.DictWriter(buf, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.per_image)
        return buf.getvalue()


def evaluate_detector(
    model: nn.Module,
    dataset: ChangePairDataset,
    *,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    threshold: float = 0.5,
    num_workers: int = 0,
    progress: ProgressSink = SILENT,
) -> EvalResult:
    """Whole images of ``dataset`` (padded to multiples of 32; padding is ignored) through
    ``model``: split-level precision/recall/F1/IoU (one confusion matrix over the split, by
    :mod:`changen.metrics.change`'s rules) and per-image rows. Runs in this process only
    (no collective calls), so one rank of a distributed run can call it alone."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: evaluate at least one image per batch")
    device = torch.device(device)
    batches = [
        list(range(k, min(len(dataset), k + batch_size)))
        for k in range(0, len(dataset), batch_size)
    ]
    loader = make_loader(dataset, batches, num_workers, seed=0, collate_fn=pad_collate)
    advance = progress.task("eval", len(dataset))
    counts: list[torch.Tensor] = []
    order: list[int] = []
    was_training = model.training
    model.eval()
    with torch.no_grad(), _autocast(device, precision):
        for batch in loader:
            out = model(batch["t1"].to(device), batch["t2"].to(device))
            counts.append(
                confusion_counts(out.change.float(), batch["change"], threshold=threshold).cpu()
            )
            order.extend(int(i) for i in batch["index"])
            advance(len(batch["index"]))
    model.train(was_training)
    per_image = torch.cat(counts)
    scores = scores_from_counts(per_image)
    rows = []
    for row, k in enumerate(order):
        tp, fp, fn, tn = (int(v) for v in per_image[row])
        rows.append(
            {"name": dataset.name(k), "tp": tp, "fp": fp, "fn": fn, "tn": tn}
            | {m: round(float(scores[m][row]), 6) for m in SCORE_NAMES}
        )
    return EvalResult(ChangeScores.from_counts(per_image.sum(0)), rows)


def _autocast(device: torch.device, precision: str) -> Any:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
