"""Inpainting baseline: every changed region is filled from its surroundings.

The Changen paper's "Inpainting" baseline removes objects and fills the removed pixels with
the image's own local statistics. Here every changed region is filled (:func:`.patches.
fill_changes`): with ``fill="telea"`` by OpenCV's Telea inpainting (``cv2.INPAINT_TELEA``,
radius ``inpaint_radius``), the paper's baseline, a smooth smudge a detector finds by its
flatness; with ``fill="patch"`` (the default) by Telea's low frequencies plus the texture of a
nearby t1 square of the class each pixel shows at t2, drawn from the sample's generator
(:func:`.patches.patch_fill`). The changed pixels are the pixels whose class differs
between the masks (``t1_mask != t2_mask``) and, when the batch carries instance maps and event
records, the pixels each record touched (created objects, removed objects as they were at t1,
re-classed regions). A removed object therefore turns into the background around it, while a
created object or a re-classed region only receives a fill (a smooth one with Telea; with the
patch fill, a texture of its new class shifted or tiled from t1): this baseline cannot render
new objects' shapes and details, which is why it is a baseline (see :class:`.CopyPaste` for
one that can). Without records, the masks alone say what changed. Every other pixel is
byte-identical to t1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from changen.errors import ConfigError
from changen.synthesis.base import SynthesisBatch, check_rngs
from changen.synthesis.patches import FILLS, fill_changes, sample_changes


@dataclass(frozen=True, kw_only=True)
class Inpaint:
    """Inpainting synthesizer (see the module); ``inpaint_radius`` is Telea's radius, ``fill``
    one of :data:`.patches.FILLS`."""

    name: ClassVar[str] = "inpaint"

    inpaint_radius: int = 5
    fill: str = "patch"

    def __post_init__(self) -> None:
        if self.fill not in FILLS:
            raise ConfigError(f"inpaint fill must be one of {', '.join(FILLS)}, got {self.fill!r}")
        if self.inpaint_radius < 1:
            raise ConfigError(
                f"inpaint inpaint_radius must be >= 1 pixel, got {self.inpaint_radius}"
            )

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    def __call__(self, batch: SynthesisBatch, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        check_rngs(batch, rngs)
        out = np.empty_like(batch.t1_image)
        for i, rng in enumerate(rngs):
            out[i] = fill_changes(
                batch.t1_image[i],
                sample_changes(batch, i).changed,
                batch.t1_mask[i],
                batch.t2_mask[i],
                method=self.fill,
                radius=self.inpaint_radius,
                rng=rng,
            )
        return out
