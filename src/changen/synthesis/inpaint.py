"""Inpainting baseline: every changed region is filled from its surroundings.

The Changen paper's "Inpainting" baseline removes objects and fills the removed pixels with
the image's own local statistics. Here every changed region is filled by OpenCV's Telea
inpainting (``cv2.INPAINT_TELEA``, radius ``inpaint_radius``): the pixels whose class differs
between the masks (``t1_mask != t2_mask``) and, when the batch carries instance maps and event
records, the pixels each record touched (created objects, removed objects as they were at t1,
re-classed regions). A removed object therefore turns into the background around it, while a
created object or a re-classed region only receives a smooth fill of its surroundings: this
baseline cannot render new objects, which is why it is a baseline (see :class:`.CopyPaste`
for one that can). Without records, the masks alone say what changed. Every other pixel is
byte-identical to t1. No randomness is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from changen.errors import ConfigError
from changen.synthesis.base import SynthesisBatch, check_rngs
from changen.synthesis.patches import sample_changes, telea


@dataclass(frozen=True, kw_only=True)
class Inpaint:
    """Telea-inpainting synthesizer (see the module); ``inpaint_radius`` is Telea's radius."""

    name: ClassVar[str] = "inpaint"

    inpaint_radius: int = 5

    def __post_init__(self) -> None:
        if self.inpaint_radius < 1:
            raise ConfigError(
                f"inpaint inpaint_radius must be >= 1 pixel, got {self.inpaint_radius}"
            )

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    def __call__(self, batch: SynthesisBatch, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        check_rngs(batch, rngs)
        out = np.empty_like(batch.t1_image)
        for i in range(len(batch)):
            out[i] = telea(batch.t1_image[i], sample_changes(batch, i).changed, self.inpaint_radius)
        return out
