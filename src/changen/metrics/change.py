"""Change-detection metrics: binary change precision/recall/F1/IoU and semantic change mIoU/SeK.

Binary change (the convention of every change-detection toolbox): one confusion matrix of the
change class is accumulated over the **whole split**, and precision, recall, F1 and IoU are
computed from it once (not averaged over images). Per-image values are kept too. The counts
are torchmetrics' (``binary_stat_scores``, per image) and the split metric is a torchmetrics
``Metric`` (summed across processes); inputs are checked and thresholded here first, since
torchmetrics would guess (it applies a sigmoid to anything outside [0, 1]). The ratios follow
the 0/0 rule below, which torchmetrics' constant ``zero_division`` cannot express for
precision and recall; elsewhere they equal torchmetrics' ``BinaryPrecision``,
``BinaryRecall``, ``BinaryF1Score`` and ``BinaryJaccardIndex`` (tests check this).

Inputs are explicit, never guessed:

- labels must hold only 0 (no change), 1 (change) and ``ignore_index`` (default 255, excluded
  from every count; ``None`` for none); anything else raises ``DataError``. Beware 0/255 masks
  straight from LEVIR-CD & co.: with the default ignore id their changed pixels would be
  *ignored*; readers must binarise them (``mask // 255``) — or pass ``ignore_index=None`` to have
  such masks rejected;
- float predictions are logits by default (``from_logits=True``: probability = sigmoid(logit))
  or probabilities in [0, 1] (``from_logits=False``; values outside raise ``DataError``);
  a pixel is "change" when its probability is **strictly greater** than ``threshold`` (0.5,
  i.e. logit > 0); bool/integer predictions are taken as already binary (0/1 only).

0/0 rule: a ratio whose denominator is zero is 1.0 when the prediction made no error on the
change class (FP = FN = 0) and 0.0 otherwise. So on an all-negative split (no change in labels
or predictions) precision = recall = F1 = IoU = 1.0, and a split with no labelled change but
some predicted change has precision = F1 = IoU = 0.0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_stat_scores

from changen.errors import DataError

ArrayLike = torch.Tensor | np.ndarray


def _ratio(num: torch.Tensor, den: torch.Tensor, errors: torch.Tensor) -> torch.Tensor:
    """num / den, with 0/0 → 1.0 where ``errors`` is 0 and 0.0 elsewhere."""
    num, den = num.double(), den.double()
    fallback = (errors == 0).double()
    return torch.where(den > 0, num / den.clamp(min=1), fallback)


def _as_bhw(x: ArrayLike, what: str) -> torch.Tensor:
    """(B, H, W) view of a (B, 1, H, W), (B, H, W) or (H, W) array."""
    t = torch.as_tensor(x)
    if t.ndim == 4 and t.shape[1] == 1:
        t = t[:, 0]
    elif t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise DataError(
            f"{what} has shape {tuple(t.shape)}; give (B, 1, H, W), (B, H, W) or (H, W)"
        )
    return t


def binarize_labels(
    target: ArrayLike, ignore_index: int | None = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """(change, valid) boolean (B, H, W) maps from 0/1 labels with ``ignore_index`` pixels."""
    t = _as_bhw(target, "change labels")
    ignored = (
        t == ignore_index if ignore_index is not None else torch.zeros_like(t, dtype=torch.bool)
    )
    ok = (t == 0) | (t == 1) | ignored
    if not bool(ok.all()):
        bad = torch.unique(t[~ok])[:5].tolist()
        raise DataError(
            f"change labels hold values {bad} besides 0, 1 and the ignore id {ignore_index}; "
            "binarise them when reading (0/255 masks: mask // 255)"
        )
    return t == 1, ~ignored


def binarize_predictions(
    preds: ArrayLike, threshold: float = 0.5, from_logits: bool = True
) -> torch.Tensor:
    """Boolean (B, H, W) change map: probability > ``threshold`` (see the module docstring)."""
    if not 0.0 < threshold < 1.0:
        raise DataError(f"threshold {threshold} must lie strictly between 0 and 1")
    p = _as_bhw(preds, "change predictions")
    if not p.is_floating_point():
        if not bool(((p == 0) | (p == 1)).all()):
            bad = torch.unique(p[(p != 0) & (p != 1)])[:5].tolist()
            raise DataError(
                f"integer change predictions hold values {bad}; give 0/1 maps, probabilities "
                "or logits"
            )
        return p == 1
    if not torch.isfinite(p).all():
        raise DataError("change predictions contain NaN or infinite values")
    if from_logits:
        return torch.sigmoid(p.float()) > threshold
    if p.min() < 0 or p.max() > 1:
        raise DataError(
            f"probabilities lie in [{float(p.min()):.3g}, {float(p.max()):.3g}], outside [0, 1]; "
            "pass from_logits=True for logits"
        )
    return p > threshold


def confusion_counts(
    preds: ArrayLike,
    target: ArrayLike,
    *,
    threshold: float = 0.5,
    from_logits: bool = True,
    ignore_index: int | None = 255,
) -> torch.Tensor:
    """Per-image change-class counts, an int64 (B, 4) tensor of columns TP, FP, FN, TN."""
    pred = binarize_predictions(preds, threshold, from_logits)
    label, valid = binarize_labels(target, ignore_index)
    if pred.shape != label.shape:
        raise DataError(
            f"predictions {tuple(pred.shape)} and labels {tuple(label.shape)} differ in shape"
        )
    if not len(label):
        return torch.zeros((0, 4), dtype=torch.long)
    target = torch.where(valid, label.long(), torch.full_like(label, -1, dtype=torch.long))
    stats = binary_stat_scores(
        pred.to(label.device).long(),
        target,
        # torchmetrics' samplewise counts cannot stack a single image's; one image is global
        multidim_average="samplewise" if len(target) > 1 else "global",
        ignore_index=-1,
        validate_args=False,
    )
    return stats.reshape(-1, 5)[:, [0, 1, 3, 2]].long()  # torchmetrics: TP, FP, TN, FN, support


@dataclass
class ChangeScores:
    """Change-class scores and the confusion counts they come from."""

    precision: float
    recall: float
    f1: float
    iou: float
    tp: int
    fp: int
    fn: int
    tn: int

    @classmethod
    def from_counts(cls, counts: ArrayLike) -> ChangeScores:
        """Scores of one (4,) TP, FP, FN, TN vector."""
        c = torch.as_tensor(counts).long().reshape(1, 4)
        s = scores_from_counts(c)
        tp, fp, fn, tn = (int(v) for v in c[0])
        return cls(
            precision=float(s["precision"][0]),
            recall=float(s["recall"][0]),
            f1=float(s["f1"][0]),
            iou=float(s["iou"][0]),
            tp=tp,
            fp=fp,
            fn=fn,
            tn=tn,
        )


def scores_from_counts(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Precision, recall, F1 and IoU (float64, one per row) of (N, 4) TP, FP, FN, TN counts."""
    tp, fp, fn = counts[:, 0], counts[:, 1], counts[:, 2]
    errors = fp + fn
    return {
        "precision": _ratio(tp, tp + fp, errors),
        "recall": _ratio(tp, tp + fn, errors),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn, errors),
        "iou": _ratio(tp, tp + fp + fn, errors),
    }


class BinaryChangeMetric(Metric):
    """Split-level change precision/recall/F1/IoU, accumulated over ``update`` calls.

    Distributed runs sum the counts across processes (torchmetrics). ``compute()`` gives
    :class:`ChangeScores` of the whole split; ``compute_per_image()`` the per-image values in
    update order.
    """

    full_state_update = False
    # States registered by ``add_state``; declared so they do not type as ``Tensor | Module``.
    counts: torch.Tensor
    image_counts: list[torch.Tensor]

    def __init__(
        self,
        threshold: float = 0.5,
        from_logits: bool = True,
        ignore_index: int | None = 255,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        self.from_logits = from_logits
        self.ignore_index = ignore_index
        self.add_state("counts", torch.zeros(4, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("image_counts", [], dist_reduce_fx="cat")

    def update(self, preds: ArrayLike, target: ArrayLike) -> None:
        counts = confusion_counts(
            preds,
            target,
            threshold=self.threshold,
            from_logits=self.from_logits,
            ignore_index=self.ignore_index,
        ).to(self.counts.device)
        self.counts += counts.sum(0)
        self.image_counts.append(counts)

    def compute(self) -> ChangeScores:
        return ChangeScores.from_counts(self.counts)

    def compute_per_image(self) -> dict[str, torch.Tensor]:
        """Per-image ``precision``, ``recall``, ``f1``, ``iou`` and ``counts`` (N, 4)."""
        with self.sync_context():
            counts = _cat(self.image_counts, (0, 4)).to(self.counts.device)
        return {**scores_from_counts(counts), "counts": counts}


def _cat(state: list[torch.Tensor] | torch.Tensor, empty_shape: tuple[int, ...]) -> torch.Tensor:
    if isinstance(state, torch.Tensor):  # already gathered across processes
        return state
    return torch.cat(state) if state else torch.zeros(empty_shape, dtype=torch.long)


def semantic_change_map(semantic: ArrayLike, change: ArrayLike) -> torch.Tensor:
    """Semantic change ids: class id (0..K-1) + 1 where ``change`` is 1, 0 (no change) elsewhere.

    For SECOND-style evaluation build one such map per date (from that date's class map); for
    from-to change types pass ``s1 * K + s2`` as ``semantic``.
    """
    s = torch.as_tensor(semantic).long()
    c = torch.as_tensor(change).to(s.device).bool()
    if s.shape != c.shape:
        raise DataError(f"semantic map {tuple(s.shape)} and change map {tuple(c.shape)} differ")
    return torch.where(c, s + 1, torch.zeros_like(s))


@dataclass
class SemanticChangeScores:
    """SECOND's semantic change scores (see :func:`semantic_change_scores`)."""

    miou: float
    sek: float
    fscd: float
    kappa_n0: float
    iou_change: float
    iou_nochange: float
    miou_classes: float
    class_iou: tuple[float, ...]


def semantic_change_scores(confusion: ArrayLike) -> SemanticChangeScores:
    """Scores of a (K+1)×(K+1) semantic change confusion matrix Q.

    Rows are labels, columns predictions; id 0 is no change, ids 1..K change classes.

    As in the SECOND benchmark (Yang et al., TGRS 2021):

    - binary change IoUs from the 2×2 matrix of no-change (id 0) vs change (ids ≥ 1):
      IoU_nc = q00 / (Σ_j q0j + Σ_i qi0 − q00), IoU_c = Σ_{i,j≥1} qij / (N − q00);
      ``miou`` = (IoU_nc + IoU_c) / 2;
    - ``kappa_n0``: Cohen's kappa of Q with the true no-change cell q00 set to 0 (the no-change
      class is excluded from the agreement): ρ = Σ_i qii / Σ q, η = Σ_i (Σ_j qij)(Σ_j qji) / (Σ q)²,
      κ = (ρ − η) / (1 − η), and κ = 0 when Σ q = 0 or η = 1;
    - ``sek`` = κ · exp(IoU_c − 1);
    - ``fscd``: harmonic mean of P = Σ_{i≥1} qii / (predicted change) and
      R = Σ_{i≥1} qii / (labelled change).

    ``class_iou`` is the IoU of every id of Q (NaN for ids absent from labels and predictions);
    ``miou_classes`` averages it over the ids present in the labels. 0/0 ratios follow the
    module's rule (1.0 when no error was made), so an all-no-change split has miou = fscd = 1
    and sek = 0.
    """
    q = torch.as_tensor(confusion).double()
    if q.ndim != 2 or q.shape[0] != q.shape[1] or q.shape[0] < 2:
        raise DataError(f"confusion matrix has shape {tuple(q.shape)}; expected square (K+1, K+1)")
    nc_nc = q[0, 0]
    fp = q[0, 1:].sum()  # labelled no change, predicted change
    fn = q[1:, 0].sum()  # labelled change, predicted no change
    ch_ch = q[1:, 1:].sum()
    errors = fp + fn
    iou_nc = float(_ratio(nc_nc, nc_nc + fp + fn, errors))
    iou_c = float(_ratio(ch_ch, ch_ch + fp + fn, errors))
    q_n0 = q.clone()
    q_n0[0, 0] = 0
    kappa = _kappa(q_n0)
    sc_tp = q[1:, 1:].diagonal().sum()
    pred_change, label_change = ch_ch + fp, ch_ch + fn
    precision = float(_ratio(sc_tp, pred_change, label_change))
    recall = float(_ratio(sc_tp, label_change, pred_change))
    fscd = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    inter = q.diagonal()
    union = q.sum(0) + q.sum(1) - inter
    class_iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.nan)
    present = q.sum(1) > 0
    miou_classes = float(class_iou[present].mean()) if bool(present.any()) else 1.0
    return SemanticChangeScores(
        miou=(iou_nc + iou_c) / 2,
        sek=kappa * math.exp(iou_c - 1),
        fscd=fscd,
        kappa_n0=kappa,
        iou_change=iou_c,
        iou_nochange=iou_nc,
        miou_classes=miou_classes,
        class_iou=tuple(float(v) for v in class_iou),
    )


def _kappa(q: torch.Tensor) -> float:
    total = q.sum()
    if total == 0:
        return 0.0
    po = q.diagonal().sum() / total
    pe = (q.sum(1) * q.sum(0)).sum() / total**2
    return 0.0 if pe == 1 else float((po - pe) / (1 - pe))


class SemanticChangeMetric(Metric):
    """Accumulates the semantic change confusion matrix; ``compute()`` gives SeK, mIoU, F_scd.

    ``num_classes`` counts the change classes (ids 1..num_classes); id 0 is no change and
    ``ignore_index`` pixels (in the labels) are skipped. Inputs are id maps such as
    :func:`semantic_change_map` builds; for SECOND, update with both dates' maps.
    """

    full_state_update = False
    confusion: torch.Tensor  # registered by ``add_state``

    def __init__(self, num_classes: int, ignore_index: int = 255, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        n = num_classes + 1
        self.add_state("confusion", torch.zeros(n, n, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: ArrayLike, target: ArrayLike) -> None:
        p = _as_bhw(preds, "semantic change predictions").long()
        t = _as_bhw(target, "semantic change labels").long().to(p.device)
        if p.shape != t.shape:
            raise DataError(f"predictions {tuple(p.shape)} and labels {tuple(t.shape)} differ")
        n = self.num_classes + 1
        valid = t != self.ignore_index
        for name, ids in (("labels", t[valid]), ("predictions", p[valid])):
            if ids.numel() and (ids.min() < 0 or ids.max() >= n):
                bad = torch.unique(ids[(ids < 0) | (ids >= n)])[:5].tolist()
                raise DataError(
                    f"semantic change {name} hold ids {bad} outside 0..{n - 1} (0 = no change, "
                    f"1..{self.num_classes} = classes, {self.ignore_index} = ignore in labels)"
                )
        cells = torch.bincount(t[valid] * n + p[valid], minlength=n * n).reshape(n, n)
        self.confusion += cells.to(self.confusion.device)

    def compute(self) -> SemanticChangeScores:
        return semantic_change_scores(self.confusion)
