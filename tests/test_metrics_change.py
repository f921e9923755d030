"""Change metrics against hand-computed confusion matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from changen.errors import DataError
from changen.metrics import (
    BinaryChangeMetric,
    ChangeScores,
    SemanticChangeMetric,
    confusion_counts,
    semantic_change_map,
    semantic_change_scores,
)

# image A: TP 2, FP 1, FN 1, TN 4 (the 255 pixel is ignored; 0.5 is not > 0.5)
LABEL_A = [[1, 1, 0], [0, 1, 0], [0, 0, 255]]
PROB_A = [[0.9, 0.2, 0.7], [0.1, 0.6, 0.5], [0.0, 0.0, 0.99]]
# image B: TP 0, FP 0, FN 1, TN 8
LABEL_B = [[0, 0, 0], [0, 1, 0], [0, 0, 0]]
PROB_B = [[0.1] * 3] * 3


def _split() -> tuple[torch.Tensor, torch.Tensor]:
    probs = torch.tensor([PROB_A, PROB_B], dtype=torch.float32)
    labels = torch.tensor([LABEL_A, LABEL_B], dtype=torch.uint8)
    return probs, labels


def test_counts_per_image_from_probabilities() -> None:
    probs, labels = _split()
    counts = confusion_counts(probs, labels, from_logits=False)
    assert counts.tolist() == [[2, 1, 1, 4], [0, 0, 1, 8]]


def test_logits_integer_and_channel_inputs_agree() -> None:
    probs, labels = _split()
    logits = torch.logit(probs.clamp(1e-6, 1 - 1e-6))
    expected = [[2, 1, 1, 4], [0, 0, 1, 8]]
    assert confusion_counts(logits[:, None], labels[:, None]).tolist() == expected
    assert confusion_counts((probs > 0.5).long(), labels.numpy()).tolist() == expected
    assert confusion_counts(probs > 0.5, labels).tolist() == expected


def test_threshold_is_explicit() -> None:
    probs, labels = _split()
    counts = confusion_counts(probs, labels, threshold=0.8, from_logits=False)
    assert counts.tolist() == [[1, 0, 2, 5], [0, 0, 1, 8]]


def test_split_scores_come_from_the_accumulated_matrix_not_per_image_means() -> None:
    probs, labels = _split()
    metric = BinaryChangeMetric(from_logits=False)
    metric.update(probs[:1], labels[:1])
    metric.update(probs[1:], labels[1:])
    scores = metric.compute()
    assert (scores.tp, scores.fp, scores.fn, scores.tn) == (2, 1, 2, 12)
    assert scores.precision == pytest.approx(2 / 3)
    assert scores.recall == pytest.approx(1 / 2)
    assert scores.f1 == pytest.approx(4 / 7)
    assert scores.iou == pytest.approx(2 / 5)
    per_image = metric.compute_per_image()
    assert per_image["f1"].tolist() == pytest.approx([2 / 3, 0.0])
    assert per_image["iou"].tolist() == pytest.approx([1 / 2, 0.0])
    assert per_image["precision"].tolist() == pytest.approx([2 / 3, 0.0])
    assert per_image["counts"].tolist() == [[2, 1, 1, 4], [0, 0, 1, 8]]
    assert float(per_image["f1"].mean()) != pytest.approx(scores.f1)
    metric.reset()
    assert metric.compute_per_image()["counts"].shape == (0, 4)


def test_ignored_pixels_do_not_count_whatever_is_predicted() -> None:
    probs, labels = _split()
    flipped = probs.clone()
    flipped[0, 2, 2] = 0.0  # the ignored pixel
    assert torch.equal(
        confusion_counts(probs, labels, from_logits=False),
        confusion_counts(flipped, labels, from_logits=False),
    )
    all_ignored = torch.full((1, 3, 3), 255, dtype=torch.uint8)
    assert confusion_counts(probs[:1], all_ignored, from_logits=False).tolist() == [[0, 0, 0, 0]]


def test_all_negative_split_scores_one() -> None:
    metric = BinaryChangeMetric()
    for _ in range(2):
        metric.update(torch.full((1, 1, 4, 4), -3.0), torch.zeros(1, 4, 4, dtype=torch.uint8))
    scores = metric.compute()
    assert (scores.tp, scores.fp, scores.fn, scores.tn) == (0, 0, 0, 32)
    assert (scores.precision, scores.recall, scores.f1, scores.iou) == (1.0, 1.0, 1.0, 1.0)
    assert metric.compute_per_image()["f1"].tolist() == [1.0, 1.0]


def test_false_alarms_on_a_split_without_change_score_zero() -> None:
    scores = ChangeScores.from_counts([0, 3, 0, 13])
    assert (scores.precision, scores.recall, scores.f1, scores.iou) == (0.0, 0.0, 0.0, 0.0)
    missed = ChangeScores.from_counts([0, 0, 2, 14])
    assert (missed.precision, missed.recall, missed.f1, missed.iou) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("bad", [2, 128])
def test_non_binary_labels_raise(bad: int) -> None:
    labels = torch.zeros(1, 2, 2, dtype=torch.uint8)
    labels[0, 0, 0] = bad
    with pytest.raises(DataError, match=f"values \\[{bad}\\]"):
        confusion_counts(torch.zeros(1, 2, 2), labels)


def test_zero_255_masks_are_rejected_without_an_ignore_id() -> None:
    labels = torch.tensor([[[0, 255], [255, 0]]], dtype=torch.uint8)
    with pytest.raises(DataError, match="mask // 255"):
        confusion_counts(torch.zeros(1, 2, 2), labels, ignore_index=None)


def test_bad_predictions_raise() -> None:
    labels = torch.zeros(1, 2, 2, dtype=torch.uint8)
    with pytest.raises(DataError, match="from_logits=True"):
        confusion_counts(torch.full((1, 2, 2), 1.5), labels, from_logits=False)
    with pytest.raises(DataError, match="integer change predictions"):
        confusion_counts(torch.full((1, 2, 2), 3), labels)
    with pytest.raises(DataError, match="NaN"):
        confusion_counts(torch.full((1, 2, 2), float("nan")), labels)
    with pytest.raises(DataError, match="differ in shape"):
        confusion_counts(torch.zeros(1, 3, 3), labels)
    with pytest.raises(DataError, match="strictly between"):
        confusion_counts(torch.zeros(1, 2, 2), labels, threshold=1.0)


# rows: labels, columns: predictions; id 0 = no change
Q = [[50, 5, 5], [4, 20, 6], [6, 4, 30]]


def _maps_from_confusion(q: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    labels, preds = [], []
    for i, row in enumerate(q):
        for j, n in enumerate(row):
            labels += [i] * n
            preds += [j] * n
    labels += [255] * 7  # ignored, whatever is predicted
    preds += [2] * 7
    return torch.tensor([[preds]]), torch.tensor([[labels]], dtype=torch.uint8)


def test_semantic_change_scores_by_hand() -> None:
    preds, labels = _maps_from_confusion(Q)
    metric = SemanticChangeMetric(num_classes=2)
    metric.update(preds[:, :, :70], labels[:, :, :70])
    metric.update(preds[:, :, 70:], labels[:, :, 70:])
    assert metric.confusion.tolist() == Q
    s = metric.compute()
    iou_nc, iou_c = 50 / 70, 60 / 80
    kappa = (50 / 80 - 2610 / 6400) / (1 - 2610 / 6400)
    assert s.iou_nochange == pytest.approx(iou_nc)
    assert s.iou_change == pytest.approx(iou_c)
    assert s.miou == pytest.approx((iou_nc + iou_c) / 2)
    assert s.kappa_n0 == pytest.approx(kappa)
    assert s.sek == pytest.approx(kappa * math.exp(iou_c - 1))
    assert s.fscd == pytest.approx(50 / 70)
    assert s.class_iou == pytest.approx((50 / 70, 20 / 39, 30 / 51))
    assert s.miou_classes == pytest.approx((50 / 70 + 20 / 39 + 30 / 51) / 3)


def test_semantic_scores_of_an_all_no_change_split() -> None:
    s = semantic_change_scores(np.array([[100, 0], [0, 0]]))
    assert (s.miou, s.iou_change, s.fscd) == (1.0, 1.0, 1.0)
    assert (s.kappa_n0, s.sek) == (0.0, 0.0)
    assert math.isnan(s.class_iou[1])


def test_semantic_change_map_and_id_checks() -> None:
    semantic = torch.tensor([[0, 1], [2, 0]])
    change = torch.tensor([[1, 0], [1, 1]], dtype=torch.uint8)
    assert semantic_change_map(semantic, change).tolist() == [[1, 0], [3, 1]]
    metric = SemanticChangeMetric(num_classes=2)
    with pytest.raises(DataError, match="predictions hold ids \\[3\\]"):
        metric.update(torch.tensor([[[3, 0]]]), torch.tensor([[[0, 0]]]))
    with pytest.raises(DataError, match="labels hold ids \\[7\\]"):
        metric.update(torch.tensor([[[0, 0]]]), torch.tensor([[[7, 0]]]))


def test_real_levircd_labels(real_root) -> None:
    from changen.data.imageio import list_images, read_mask

    paths = list_images(real_root / "levircd_crops" / "label")
    masks = np.stack([read_mask(p) for p in paths])
    labels = masks // 255
    with pytest.raises(DataError, match="mask // 255"):
        confusion_counts(labels, masks, ignore_index=None)
    metric = BinaryChangeMetric()
    metric.update(torch.as_tensor(labels), labels)
    scores = metric.compute()
    assert scores.tp == int(labels.sum()) > 0
    assert (scores.f1, scores.iou) == (1.0, 1.0)
    no_change = [i for i, m in enumerate(labels) if m.max() == 0]
    assert len(no_change) == 1
    assert metric.compute_per_image()["counts"][no_change[0], :3].tolist() == [0, 0, 0]
