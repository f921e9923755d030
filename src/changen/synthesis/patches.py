"""Pixel helpers of the learning-free synthesizers (:mod:`.copy_paste`, :mod:`.inpaint`).

- **Regions**: where each event record acts, read from the instance maps of both dates
  (:func:`changen.events.regions.event_regions`, the one rule every reader uses).
- **Warping**: :func:`warp_patch` flips, rotates and scales an image crop with exactly the
  geometry :func:`changen.events.transform_shape` applies to the object's footprint, so a
  copied object's pixels land on the footprint the create event placed.
- **Filling**: :func:`telea` (OpenCV's Telea inpainting, only the given pixels change),
  :func:`class_texture` (a class's appearance tiled from t1), :func:`refit_object` (an object's
  pixels stretched onto another footprint).
- **Blending**: :func:`composite` pastes a :class:`Layer` with an alpha that ramps up over
  ``feather`` pixels *inside* its region, so the seam is soft and no pixel outside the region
  changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from changen.errors import DataError
from changen.events import EventRecord
from changen.events.regions import InstanceIndex, Region, event_regions
from changen.synthesis.base import SynthesisBatch

EVENTS = ("create", "remove", "reclass")


@dataclass(frozen=True)
class Layer:
    """Pixels to paste: ``pixels`` (h, w, 3) uint8 over the pixels of ``region``."""

    region: Region
    pixels: np.ndarray


def sample_records(batch: SynthesisBatch, i: int) -> list[EventRecord] | None:
    """Sample ``i``'s event records (dicts are read with :meth:`EventRecord.from_dict`);
    None when the batch carries none. Records need both instance maps."""
    if batch.events is None:
        return None
    if batch.t1_instances is None or batch.t2_instances is None:
        raise DataError(
            "event records refer to instance ids: pass t1_instances and t2_instances "
            "with events, or leave events out to synthesise from the masks only"
        )
    records = []
    for r in batch.events[i]:
        if isinstance(r, Mapping):
            try:
                r = EventRecord.from_dict(r)
            except (KeyError, TypeError, ValueError) as e:
                raise DataError(f"sample {i}: unreadable event record {r!r} ({e})") from None
        if r.event not in EVENTS:
            raise DataError(
                f"sample {i}: unknown event {r.event!r}; records are one of {', '.join(EVENTS)}"
            )
        records.append(r)
    return records


@dataclass(frozen=True)
class SampleChanges:
    """What changed in one sample: ``changed`` (H, W) bool, the pixels whose class differs
    plus those a record touched whose instance id differs; ``regions``, each record with those
    of its pixels that changed (records with none left, e.g. undone by a later step, are left
    out); ``t1``, the index of the t1 instances (None without records). A pixel with the same
    class and instance at both dates is never changed."""

    changed: np.ndarray
    regions: list[tuple[EventRecord, Region]]
    t1: InstanceIndex | None


def sample_changes(batch: SynthesisBatch, i: int) -> SampleChanges:
    """Sample ``i``'s changes: from its records when the batch has them, else its masks."""
    t2_mask = batch.t2_mask[i]
    changed = batch.t1_mask[i] != t2_mask
    records = sample_records(batch, i)
    t1_inst, t2_inst = batch.t1_instances, batch.t2_instances
    if not records or t1_inst is None or t2_inst is None:
        return SampleChanges(changed, [], None)
    t1 = InstanceIndex(t1_inst[i], "t1_instances")
    t2 = InstanceIndex(t2_inst[i], "t2_instances")
    moved = changed | (t1.instances != t2.instances)
    regions = []
    for rec, region in event_regions(records, t1, t2, t2_mask):
        fp = region.footprint & moved[region.box]
        if fp.any():
            region = Region(region.y0, region.x0, fp)
            region.paint(changed)
            regions.append((rec, region))
    return SampleChanges(changed, regions, t1)


def warp_patch(
    image: np.ndarray,
    footprint: np.ndarray,
    *,
    scale: float = 1.0,
    angle: float = 0.0,
    flip: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip, rotate (degrees, counter-clockwise on screen) and scale an image crop and its
    bool footprint the way :func:`changen.events.transform_shape` does; returns the image and
    the footprint cropped to the footprint's tight bbox. The footprint is sampled nearest, the
    image bilinearly (area-averaged when a multiple-of-90° rotation shrinks it); flips and
    multiple-of-90° rotations without scaling move pixels exactly."""
    fp = footprint[:, ::-1] if flip else footprint
    img = image[:, ::-1] if flip else image
    quarter = angle / 90.0
    if abs(quarter - round(quarter)) < 1e-9:
        k = round(quarter) % 4
        fp, img = np.rot90(fp, k), np.rot90(img, k)
        if scale != 1.0:
            h, w = fp.shape
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            fp = cv2.resize(
                np.ascontiguousarray(fp).view(np.uint8),
                size,
                interpolation=cv2.INTER_NEAREST_EXACT,
            ).view(bool)
            inter = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            img = cv2.resize(np.ascontiguousarray(img), size, interpolation=inter)
    else:
        h, w = fp.shape
        m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, scale)
        corners = np.array(
            [[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [-0.5, h - 0.5, 1], [w - 0.5, h - 0.5, 1]]
        )
        mapped = corners @ m.T
        lo = mapped.min(axis=0)
        size = np.ceil(mapped.max(axis=0) - lo).astype(int)
        m[:, 2] += -0.5 - lo
        dsize = (int(size[0]), int(size[1]))
        fp = cv2.warpAffine(
            np.ascontiguousarray(fp).view(np.uint8),
            m,
            dsize,
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        ).view(bool)
        img = cv2.warpAffine(
            np.ascontiguousarray(img),
            m,
            dsize,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
    rows, cols = np.flatnonzero(fp.any(axis=1)), np.flatnonzero(fp.any(axis=0))
    if rows.size == 0:
        return np.zeros((0, 0, 3), np.uint8), np.zeros((0, 0), bool)
    sel = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    return np.ascontiguousarray(img[sel]), np.ascontiguousarray(fp[sel])


def feather_alpha(region: Region, shape: tuple[int, int], feather: int) -> np.ndarray:
    """Per-pixel opacity (h, w) float32 of a region: ``d / (feather + 1)`` capped at 1, with
    ``d`` the Euclidean distance to the nearest pixel outside the region; the image border
    does not count as outside (nothing lies beyond it to blend with)."""
    big_h, big_w = shape
    h, w = region.footprint.shape
    wy0, wx0 = max(region.y0 - 1, 0), max(region.x0 - 1, 0)
    wy1, wx1 = min(region.y0 + h + 1, big_h), min(region.x0 + w + 1, big_w)
    win = np.zeros((wy1 - wy0, wx1 - wx0), np.uint8)
    oy, ox = region.y0 - wy0, region.x0 - wx0
    win[oy : oy + h, ox : ox + w] = region.footprint
    dist = cv2.distanceTransform(win, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.minimum(dist[oy : oy + h, ox : ox + w] / np.float32(feather + 1), 1.0)


def composite(canvas: np.ndarray, layer: Layer, feather: int) -> None:
    """Blend ``layer`` into ``canvas`` (H, W, 3) uint8 in place; only the region's pixels
    change, and those at least ``feather + 1`` pixels inside it take the layer's exact values."""
    region = layer.region
    alpha = feather_alpha(region, canvas.shape[:2], feather)[..., None]
    base = canvas[region.box]
    mixed = alpha * layer.pixels + (1.0 - alpha) * base
    sel = region.footprint
    base[sel] = np.rint(mixed[sel]).astype(np.uint8)


def telea(image: np.ndarray, region: np.ndarray, radius: int) -> np.ndarray:
    """``image`` with the pixels of the bool map ``region`` filled by Telea inpainting from
    their surroundings (every other pixel is returned unchanged)."""
    if not region.any():
        return image.copy()
    if region.all():
        fill = image.reshape(-1, 3).mean(axis=0)
        return np.broadcast_to(np.rint(fill).astype(np.uint8), image.shape).copy()
    filled = cv2.inpaint(image, region.view(np.uint8), radius, cv2.INPAINT_TELEA)
    return np.where(region[..., None], filled, image)


def class_texture(
    image: np.ndarray,
    mask: np.ndarray,
    class_id: int,
    shape: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray | None:
    """A (h, w, 3) texture of ``class_id`` as seen in ``image``: the largest square that fits
    inside the class's pixels of ``mask`` (one drawn from ``rng`` among equal ones), mirrored
    to tile ``shape`` from a random phase. None when the class is absent."""
    inside = np.pad((mask == class_id).view(np.uint8), 1)
    dist = cv2.distanceTransform(inside, cv2.DIST_C, 3)[1:-1, 1:-1]
    top = int(dist.max())
    if top == 0:
        return None
    centres = np.flatnonzero(dist == top)
    cy, cx = divmod(int(centres[rng.integers(centres.size)]), mask.shape[1])
    r = top - 1
    tile = image[cy - r : cy + r + 1, cx - r : cx + r + 1]
    side = 2 * r + 1
    h, w = shape
    oy, ox = (int(v) for v in rng.integers(side, size=2))
    pad = ((0, max(oy + h - side, 0)), (0, max(ox + w - side, 0)), (0, 0))
    return np.ascontiguousarray(np.pad(tile, pad, mode="symmetric")[oy : oy + h, ox : ox + w])


def refit_object(
    image: np.ndarray, source: Region, shape: tuple[int, int], radius: int
) -> np.ndarray | None:
    """An object's pixels stretched to a (h, w) box: its bbox crop is resized, and the pixels
    that fall outside its (resized) footprint are inpainted from the object itself. None when
    the resized footprint is empty."""
    h, w = shape
    crop = image[source.box]
    inter = cv2.INTER_AREA if h * w < crop.shape[0] * crop.shape[1] else cv2.INTER_LINEAR
    pixels = cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=inter)
    fp = cv2.resize(
        source.footprint.view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST_EXACT
    ).view(bool)
    if not fp.any():
        return None
    return telea(pixels, ~fp, radius)
