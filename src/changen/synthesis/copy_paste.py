"""Copy-Paste baseline: created objects take the pixels of their source object.

The learning-free baseline of the Changen paper's tables (Copy-Paste, combined with Telea
inpainting for removals), made harder to spot. What changed is read from the batch's instance
maps and event records (:class:`changen.events.EventRecord`). First every changed pixel — the
pixels whose class differs between the masks and every pixel a record touched — is filled by
:func:`.patches.fill_changes` with ``fill``: ``"patch"`` (the default; Telea's low frequencies
plus real texture of the class the pixel shows at t2, so a removal leaves no flat smudge) or
``"telea"`` (the paper's baseline, exactly as :class:`.Inpaint` does). Under a created object
the fill renders what was there at t1 (its class there), so the object's feathered edge fades
into ground, not into more object. Then, per record in log order, new content is pasted:

- ``create`` with a source object in t1: the source's t1 crop is flipped, rotated and scaled
  like its footprint was (:func:`.patches.warp_patch`, the geometry of
  :func:`changen.events.transform_shape`), aligned on the created footprint (t2 pixels of
  ``new_id``) and pasted there. Only the object's own pixels move: its shadow and its
  surroundings are not copied.
- ``create`` without source pixels (shape-bank shapes, ``source_id == -1``, or a source born
  after t1): the nearest t1 object of the same class (by bbox centre) is stretched onto the
  new footprint's bbox (:func:`.patches.refit_object`); with no such object the footprint
  keeps its fill.
- ``remove``: nothing is pasted; the removed pixels keep their fill (a step that creates and
  removes gets both).
- ``reclass``: a texture of the target class tiled from t1 (:func:`.patches.class_texture`;
  which square and which phase come from the sample's rng); when t1 shows no pixel of that
  class, the region keeps its fill.

A copied object is first harmonised to where it lands (``harmonize``, :mod:`.harmonize`):
``"poisson"`` (the default: gradient-domain blending in Lab, which on real Ida-BD pastes came
closest to the object's own contrast against its old surroundings; see ``docs/synthesis.md``),
``"stats"`` (Lab mean/std transfer of the difference of surroundings) or ``"none"``. Pasted
pixels are then alpha-blended with an opacity that ramps up over ``feather`` pixels inside
their region, so their seam fades into the fill. Without event records (``batch.events is
None``) only the masks say what changed, and this baseline fills those pixels, like
:class:`.Inpaint`. Pixels outside the changed pixels are byte-identical to t1; every random
choice comes from the sample's generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from changen.errors import ConfigError
from changen.events import EventRecord
from changen.synthesis.base import SynthesisBatch, check_rngs
from changen.synthesis.harmonize import HARMONIZE, poisson_blend, ring, stats_transfer
from changen.synthesis.patches import (
    FILLS,
    InstanceIndex,
    Layer,
    Region,
    class_texture,
    composite,
    fill_changes,
    refit_object,
    sample_changes,
    warp_patch,
)


@dataclass(frozen=True, kw_only=True)
class CopyPaste:
    """Copy-Paste synthesizer (see the module). ``feather``: width in pixels of the soft edge
    of pasted pixels (0: hard edge); ``inpaint_radius``: Telea's radius; ``harmonize``: how a
    copied object's colours adapt to its new surroundings (one of
    :data:`.harmonize.HARMONIZE`); ``fill``: how changed pixels are filled before pasting (one
    of :data:`.patches.FILLS`)."""

    name: ClassVar[str] = "copy_paste"

    feather: int = 2
    inpaint_radius: int = 5
    harmonize: str = "poisson"
    fill: str = "patch"

    def __post_init__(self) -> None:
        if self.harmonize not in HARMONIZE:
            raise ConfigError(
                f"copy_paste harmonize must be one of {', '.join(HARMONIZE)}, "
                f"got {self.harmonize!r}"
            )
        if self.fill not in FILLS:
            raise ConfigError(
                f"copy_paste fill must be one of {', '.join(FILLS)}, got {self.fill!r}"
            )
        if self.feather < 0:
            raise ConfigError(f"copy_paste feather must be >= 0 pixels, got {self.feather}")
        if self.inpaint_radius < 1:
            raise ConfigError(
                f"copy_paste inpaint_radius must be >= 1 pixel, got {self.inpaint_radius}"
            )

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    def __call__(self, batch: SynthesisBatch, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        check_rngs(batch, rngs)
        out = np.empty_like(batch.t1_image)
        for i, rng in enumerate(rngs):
            out[i] = self.synthesize(batch, i, rng)
        return out

    def synthesize(self, batch: SynthesisBatch, i: int, rng: np.random.Generator) -> np.ndarray:
        """The post-event image of sample ``i`` (H, W, 3) uint8."""
        image, t1_mask = batch.t1_image[i], batch.t1_mask[i]
        changes = sample_changes(batch, i)
        fill_classes = batch.t2_mask[i].copy()
        for rec, region in changes.regions:
            if rec.event == "create":  # under a copy lies what was there, not more object
                fill_classes[region.box][region.footprint] = t1_mask[region.box][region.footprint]
        out = fill_changes(
            image,
            changes.changed,
            t1_mask,
            fill_classes,
            method=self.fill,
            radius=self.inpaint_radius,
            rng=rng,
        )
        objects = None if changes.t1 is None else changes.t1.instances > 0
        for rec, region in changes.regions:
            layer = None
            if rec.event == "create" and changes.t1 is not None and objects is not None:
                copied = self._create(image, t1_mask, changes.t1, rec, region)
                if copied is not None:
                    layer = self._harmonized(out, image, objects, *copied)
            elif rec.event == "reclass":
                layer = self._reclass(image, t1_mask, rec, region, rng)
            if layer is not None:
                composite(out, layer, self.feather)
        return out

    def _harmonized(
        self,
        canvas: np.ndarray,
        image: np.ndarray,
        objects: np.ndarray,
        layer: Layer,
        source: Region,
    ) -> Layer:
        """``layer`` (copied from ``source`` of t1 ``image``; ``objects``: the t1 instances'
        pixels) adapted to where it lands."""
        if self.harmonize == "none":
            return layer
        source_ring = ring(image, source, objects)
        if self.harmonize == "poisson":
            blended = poisson_blend(canvas, layer.region, layer.pixels, source_ring)
            if blended is not None:
                return Layer(layer.region, blended)
        pixels = stats_transfer(layer.pixels, source_ring, ring(image, layer.region, objects))
        return Layer(layer.region, pixels)

    def _create(
        self,
        image: np.ndarray,
        t1_mask: np.ndarray,
        t1: InstanceIndex,
        rec: EventRecord,
        target: Region,
    ) -> tuple[Layer, Region] | None:
        """The pasted copy and the t1 object it came from (None: nothing to paste, the target
        keeps its fill)."""
        source = t1.region(rec.source_id) if rec.source_id > 0 else None
        if source is not None:
            pixels, fp = warp_patch(
                image[source.box],
                source.footprint,
                scale=rec.scale,
                angle=rec.angle,
                flip=rec.flip,
            )
            pos = _align(fp, source, rec, target, image.shape[:2])
            if pos is not None:
                return Layer(Region(*pos, _within(Region(*pos, fp), target)), pixels), source
        near = _nearest_object(t1, t1_mask, rec.class_after, target)
        if near is None:
            return None
        refit = refit_object(image, near, target.footprint.shape, self.inpaint_radius)
        return None if refit is None else (Layer(target, refit), near)

    def _reclass(
        self,
        image: np.ndarray,
        t1_mask: np.ndarray,
        rec: EventRecord,
        target: Region,
        rng: np.random.Generator,
    ) -> Layer | None:
        texture = class_texture(image, t1_mask, rec.class_after, target.footprint.shape, rng)
        return None if texture is None else Layer(target, texture)


def _within(a: Region, b: Region) -> np.ndarray:
    """The pixels of ``a`` that ``b`` also holds, in ``a``'s footprint coordinates."""
    (ah, aw), (bh, bw) = a.footprint.shape, b.footprint.shape
    out = np.zeros_like(a.footprint)
    y0, y1 = max(a.y0, b.y0), min(a.y0 + ah, b.y0 + bh)
    x0, x1 = max(a.x0, b.x0), min(a.x0 + aw, b.x0 + bw)
    if y0 < y1 and x0 < x1:
        out[y0 - a.y0 : y1 - a.y0, x0 - a.x0 : x1 - a.x0] = (
            a.footprint[y0 - a.y0 : y1 - a.y0, x0 - a.x0 : x1 - a.x0]
            & b.footprint[y0 - b.y0 : y1 - b.y0, x0 - b.x0 : x1 - b.x0]
        )
    return out


def _align(
    fp: np.ndarray, source: Region, rec: EventRecord, target: Region, shape: tuple[int, int]
) -> tuple[int, int] | None:
    """Top-left position of the warped footprint that covers most of the created pixels.

    The created footprint's bbox gives it exactly when nothing covered part of the copy later;
    the record's centroid offset (rounded by the event) gives it up to a pixel otherwise."""
    (sy, sx), (ty, tx) = _centroid(source.footprint), _centroid(fp)
    ey = source.y0 + sy + rec.offset[0] - ty
    ex = source.x0 + sx + rec.offset[1] - tx
    candidates = [(target.y0, target.x0)] + [
        (round(ey) + dy, round(ex) + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
    ]
    h, w = fp.shape
    best, best_pos = 0, None
    for py, px in candidates:
        if 0 <= py <= shape[0] - h and 0 <= px <= shape[1] - w:
            score = int(np.count_nonzero(_within(Region(py, px, fp), target)))
            if score > best:
                best, best_pos = score, (py, px)
    return best_pos


def _centroid(fp: np.ndarray) -> tuple[float, float]:
    m = cv2.moments(fp.view(np.uint8), binaryImage=True)
    return (m["m01"] / m["m00"], m["m10"] / m["m00"]) if m["m00"] else (0.0, 0.0)


def _nearest_object(
    t1: InstanceIndex, t1_mask: np.ndarray, class_id: int, target: Region
) -> Region | None:
    """The t1 object of ``class_id`` whose bbox centre is nearest the target's."""
    ids = np.unique(t1.instances[t1_mask == class_id])
    h, w = target.footprint.shape
    cy, cx = target.y0 + h / 2.0, target.x0 + w / 2.0
    best, best_d = None, np.inf
    for obj_id in ids[ids > 0]:
        region = t1.region(int(obj_id))
        if region is None:
            continue
        rh, rw = region.footprint.shape
        d = (region.y0 + rh / 2.0 - cy) ** 2 + (region.x0 + rw / 2.0 - cx) ** 2
        if d < best_d:
            best, best_d = region, d
    return best
