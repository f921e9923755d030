"""How a mask becomes the label map a diffusion model is conditioned on.

Four encodings (:data:`ENCODINGS`), chosen when a model is trained and recorded in its
checkpoint; masks arrive as model class ids ``0..K-1`` (:mod:`changen.synthesis.classes`,
255 = ignore) and leave as float (N, C, H, W) maps at the image's resolution:

- ``onehot`` — K channels, 1 on the pixel's class (multi-class taxonomies; the default); an
  ignored pixel is all zeros ("no condition");
- ``index`` — 1 channel, the class id scaled to [−1, 1] (``2k/(K−1) − 1``; ignore as
  background): a cheap condition for many classes, but it imposes an order on them;
- ``binary`` — 1 channel, 1 on any non-background class (class-agnostic building masks);
- ``contour`` — 1 channel, Changen2's condition for unlabeled images: the instance outlines
  of :func:`changen.events.unlabeled.contour_map`, made from instance maps, not classes.

Families resample the map as they need (RS-DiT embeds it at any resolution; a latent UNet
pools it to the latent grid).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from changen.errors import ConfigError, DataError
from changen.events.unlabeled import contour_map

ENCODINGS = ("onehot", "index", "binary", "contour")
IGNORE = 255


@dataclass(frozen=True)
class LabelSpec:
    """``encoding`` (see :data:`ENCODINGS`) of masks with ``num_classes`` model classes."""

    encoding: str = "onehot"
    num_classes: int = 2

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ConfigError(
                f"unknown label encoding {self.encoding!r}; choose one of {', '.join(ENCODINGS)}"
            )
        if self.num_classes < 2:
            raise ConfigError(f"num_classes={self.num_classes} must be at least 2")

    @property
    def channels(self) -> int:
        """Channels of the encoded map (the model's ``label_channels``)."""
        return self.num_classes if self.encoding == "onehot" else 1

    @property
    def needs_instances(self) -> bool:
        return self.encoding == "contour"

    def to_dict(self) -> dict[str, Any]:
        return {"encoding": self.encoding, "num_classes": self.num_classes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSpec:
        return cls(encoding=str(data["encoding"]), num_classes=int(data["num_classes"]))

    def encode(self, masks: np.ndarray | Tensor, instances: np.ndarray | None = None) -> Tensor:
        """(N, H, W) model ids (uint8, 255 = ignore) → (N, channels, H, W) float32; the
        ``contour`` encoding reads ``instances`` (N, H, W) instead."""
        if self.encoding == "contour":
            if instances is None:
                raise DataError(
                    "a contour-conditioned model needs instance maps; give the batch's "
                    "instances (unlabeled mode makes them)"
                )
            maps = np.stack([contour_map(np.asarray(i)) for i in instances])
            return torch.from_numpy(maps.astype(np.float32))[:, None]
        ids = torch.as_tensor(np.asarray(masks)).long()
        if ids.ndim != 3:
            raise DataError(f"masks must be (N, H, W), got shape {tuple(ids.shape)}")
        valid = ids != IGNORE
        bad = valid & (ids >= self.num_classes)
        if bad.any():
            raise DataError(
                f"mask holds model class ids {sorted(set(ids[bad].tolist()))[:8]} beyond the "
                f"model's {self.num_classes} classes; use a model trained on this taxonomy"
            )
        ids = torch.where(valid, ids, 0)
        if self.encoding == "onehot":
            onehot = torch.nn.functional.one_hot(ids, self.num_classes).permute(0, 3, 1, 2)
            return onehot.float() * valid[:, None].float()
        if self.encoding == "index":
            return (2.0 * ids.float() / (self.num_classes - 1) - 1.0)[:, None]
        return ((ids > 0) & valid).float()[:, None]
