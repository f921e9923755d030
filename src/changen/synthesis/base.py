"""The interface every synthesizer implements: pre-event image + both masks → post-event image.

A synthesizer samples I_t+1 ~ P(I_t+1 | S_t+1, I_t, S_t) for a batch. Images enter and leave as
uint8 (B, H, W, 3) numpy arrays and masks as uint8 (B, H, W) class ids, whatever the family
(learning-free, GAN, diffusion) does inside. Randomness comes from one ``numpy.random.Generator``
per sample, so a sample's output does not depend on which batch it was in (learned models draw
their noise from a torch generator seeded by that sample's generator).

Learning-free baselines need to know where each created object came from; the optional
instance maps and per-sample event records of :class:`SynthesisBatch` carry that, and models
that do not need them ignore them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from changen.errors import DataError
from changen.events import EventRecord


@dataclass
class SynthesisBatch:
    """Inputs of one synthesis call: ``t1_image`` (B,H,W,3) uint8, masks (B,H,W) uint8, and
    optionally the instance maps (B,H,W) int32 of both dates and each sample's event records
    for the step t1 → t2 (as produced by :func:`changen.events.simulate`)."""

    t1_image: np.ndarray
    t1_mask: np.ndarray
    t2_mask: np.ndarray
    t1_instances: np.ndarray | None = None
    t2_instances: np.ndarray | None = None
    events: Sequence[Sequence[EventRecord]] | None = None

    def __post_init__(self) -> None:
        img = self.t1_image
        if img.ndim != 4 or img.shape[3] != 3 or img.dtype != np.uint8:
            raise DataError(f"t1_image must be uint8 (B, H, W, 3), got {img.dtype} {img.shape}")
        for name in ("t1_mask", "t2_mask", "t1_instances", "t2_instances"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != img.shape[:3]:
                raise DataError(f"{name} must be (B, H, W) = {img.shape[:3]}, got {arr.shape}")
        if self.events is not None and len(self.events) != len(self):
            raise DataError(
                f"events must hold one list per sample ({len(self)}), got {len(self.events)}"
            )

    def __len__(self) -> int:
        return int(self.t1_image.shape[0])


@runtime_checkable
class Synthesizer(Protocol):
    """Anything that turns a :class:`SynthesisBatch` into post-event images.

    ``name`` identifies the family; ``config()`` returns a JSON-ready description (hashed into
    the provenance of generated datasets).
    """

    name: str

    def config(self) -> dict[str, Any]: ...

    def __call__(
        self, batch: SynthesisBatch, rngs: Sequence[np.random.Generator]
    ) -> np.ndarray: ...


def check_rngs(batch: SynthesisBatch, rngs: Sequence[np.random.Generator]) -> None:
    """Raise unless there is one generator per sample."""
    if len(rngs) != len(batch):
        raise DataError(f"need one random generator per sample ({len(batch)}), got {len(rngs)}")


def torch_seed(rng: np.random.Generator) -> int:
    """A torch seed drawn from a sample's numpy generator (for models that sample noise)."""
    return int(rng.integers(0, 2**63 - 1))
