"""Style transfer from a donor scene: the post-event image takes (part of) the colour statistics
of another image of the same source, as if seen by another sensor on another day.

The statistics are per-channel mean and standard deviation in CIE Lab (Reinhard et al.'s colour
transfer): cheap, global, and they move colour and contrast without touching structure. A
:class:`DonorBank` holds the statistics of a few source scenes, so workers need no images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


def lab_stats(image: np.ndarray) -> np.ndarray:
    """The (2, 3) Lab mean and std of an RGB image (uint8, or float32 in [0, 1])."""
    rgb = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image
    lab = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2LAB).reshape(-1, 3)
    return np.stack([lab.mean(0), lab.std(0) + 1e-3]).astype(np.float32)


@dataclass(frozen=True)
class DonorBank:
    """Lab statistics (N, 2, 3) of donor scenes."""

    stats: np.ndarray

    @classmethod
    def from_images(cls, images: Iterable[np.ndarray]) -> DonorBank:
        return cls(np.stack([lab_stats(im) for im in images]).astype(np.float32))

    def __len__(self) -> int:
        return int(self.stats.shape[0])

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for provenance: how many donors and a hash of their stats."""
        digest = hashlib.sha256(np.ascontiguousarray(self.stats).tobytes()).hexdigest()[:16]
        return {"donors": len(self), "stats_hash": digest}


def transfer_style(
    image: np.ndarray, bank: DonorBank, rng: np.random.Generator, strength: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """Move ``image``'s Lab statistics a random part of the way to a random donor's (at
    strength 1 between 30 % and 100 %; standard deviations change by at most ×/÷2)."""
    donor = int(rng.integers(len(bank)))
    amount = float(min(1.0, rng.uniform(0.3, 1.0) * strength))
    lab = cv2.cvtColor(np.clip(image, 0.0, 1.0), cv2.COLOR_RGB2LAB)
    mean, std = lab_stats(image)
    d_mean, d_std = bank.stats[donor]
    ratio = np.clip(d_std / std, 0.5, 2.0) ** amount
    lab = (lab - mean) * ratio + mean + amount * (d_mean - mean)
    out = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)
    return out, {"donor": donor, "amount": round(amount, 4)}
