"""Metrics: change-detection scores (binary change F1/IoU, semantic change SeK/mIoU) in
:mod:`changen.metrics.change`, FID/KID/IS in :mod:`changen.metrics.fidelity`.

The names below are imported on first use: ``import changen.metrics`` costs nothing, and
the change scores pull in torchmetrics (which imports torchvision when it is installed) only
when one of them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports them
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


def __getattr__(name: str) -> Any:
    """The change-metric names, from :mod:`changen.metrics.change` on first use."""
    if name in __all__:
        from changen.metrics import change

        return getattr(change, name)
    raise AttributeError(f"module 'changen.metrics' has no attribute {name!r}")
