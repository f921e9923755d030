"""Change metrics through torchmetrics: the same figures as the hand-counted definition and as
torchmetrics' own binary metrics, on random data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.classification import (
    BinaryF1Score,
    BinaryJaccardIndex,
    BinaryPrecision,
    BinaryRecall,
)

from changen.metrics import BinaryChangeMetric, confusion_counts


def _random_split(seed: int, images: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and 0/1/255 labels of ``images`` 32² images, some pixels ignored."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(images, 1, 32, 32, generator=g) * 2
    labels = (torch.rand(images, 32, 32, generator=g) < 0.3).to(torch.uint8)
    labels[torch.rand(images, 32, 32, generator=g) < 0.1] = 255
    return logits, labels


def _old_counts(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """The previous hand-counted definition: TP, FP, FN, TN per image over valid pixels."""
    pred = (torch.sigmoid(logits[:, 0]) > 0.5).numpy()
    lab = labels.numpy()
    valid, change = lab != 255, lab == 1
    cells = [pred & change, pred & ~change, ~pred & change, ~pred & ~change]
    return np.stack([(c & valid).reshape(len(lab), -1).sum(1) for c in cells], axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counts_equal_the_hand_counted_definition(seed: int) -> None:
    logits, labels = _random_split(seed)
    assert np.array_equal(confusion_counts(logits, labels).numpy(), _old_counts(logits, labels))
    one = confusion_counts(logits[:1], labels[:1])  # a single image (torchmetrics squeezes it)
    assert one.shape == (1, 4) and np.array_equal(one.numpy(), _old_counts(logits, labels)[:1])
    assert confusion_counts(logits[:0], labels[:0]).shape == (0, 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_and_per_image_scores_equal_torchmetrics(seed: int) -> None:
    logits, labels = _random_split(seed)
    metric = BinaryChangeMetric()
    metric.update(logits[:4], labels[:4])
    metric.update(logits[4:], labels[4:])
    scores = metric.compute()
    old = _old_counts(logits, labels).sum(0)
    assert (scores.tp, scores.fp, scores.fn, scores.tn) == tuple(int(v) for v in old)
    tp, fp, fn, _ = (float(v) for v in old)
    assert scores.f1 == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-12)
    probs, target = torch.sigmoid(logits[:, 0]), labels.long()
    reference = {
        "precision": BinaryPrecision(ignore_index=255),
        "recall": BinaryRecall(ignore_index=255),
        "f1": BinaryF1Score(ignore_index=255),
        "iou": BinaryJaccardIndex(ignore_index=255),
    }
    per_image = metric.compute_per_image()
    for name, tm in reference.items():
        assert getattr(scores, name) == pytest.approx(float(tm(probs, target)), abs=1e-6)
        pairs = zip(probs, target, strict=True)
        samplewise = [float(tm.__class__(ignore_index=255)(p, t)) for p, t in pairs]
        assert per_image[name].tolist() == pytest.approx(samplewise, abs=1e-6)
