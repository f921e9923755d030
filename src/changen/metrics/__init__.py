"""Metrics: change-detection scores (binary change F1/IoU, semantic change SeK/mIoU)."""

from changen.metrics.change import (
    BinaryChangeMetric,
    ChangeScores,
    SemanticChangeMetric,
    SemanticChangeScores,
    binarize_labels,
    binarize_predictions,
    confusion_counts,
    scores_from_counts,
    semantic_change_map,
    semantic_change_scores,
)

__all__ = [
    "BinaryChangeMetric",
    "ChangeScores",
    "SemanticChangeMetric",
    "SemanticChangeScores",
    "binarize_labels",
    "binarize_predictions",
    "confusion_counts",
    "scores_from_counts",
    "semantic_change_map",
    "semantic_change_scores",
]
