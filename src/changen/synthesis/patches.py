"""Pixel helpers of the learning-free synthesizers (:mod:`.copy_paste`, :mod:`.inpaint`).

- **Regions**: where each event record acts, read from the instance maps of both dates
  (:func:`changen.events.regions.event_regions`, the one rule every reader uses).
- **Warping**: :func:`warp_patch` flips, rotates and scales an image crop with exactly the
  geometry :func:`changen.events.transform_shape` applies to the object's footprint, so a
  copied object's pixels land on the footprint the create event placed.
- **Filling**: :func:`fill_changes` fills every changed pixel, by :func:`telea` (OpenCV's
  Telea inpainting, only the given pixels change: the paper's baseline, a smooth smudge) or by
  :func:`patch_fill` (Telea's low frequencies plus the texture of a nearby t1 patch of the class
  the pixel shows at t2, so no flat smudge is left); :func:`class_texture` (a class's
  appearance tiled from t1), :func:`refit_object` (an object's pixels stretched onto another
  footprint).
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
FILLS = ("telea", "patch")
"""How changed pixels are filled (see :func:`fill_changes`)."""
TEXTURE_RADIUS = 8
"""Largest half-side of the square a patch fill copies its texture from (side 17 pixels)."""
TEXTURE_SIGMA = 3.0
"""Gaussian sigma (pixels) splitting low frequencies (Telea, colour) from high (texture)."""
NEAR_SLACK = 8
"""A patch fill draws its source square among those at most this many pixels farther from
the hole than the nearest one."""


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
                r = EventRecord.from_dict(dict(r))
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
    return tile(_square(image, cy, cx, top - 1), shape, rng)


def _square(image: np.ndarray, cy: int, cx: int, r: int) -> np.ndarray:
    return image[cy - r : cy + r + 1, cx - r : cx + r + 1]


def tile(square: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A (h, w, 3) texture tiled from a square crop, mirrored at its edges (no seam jumps)
    and shifted by a phase drawn from ``rng``."""
    side = square.shape[0]
    h, w = shape
    oy, ox = (int(v) for v in rng.integers(side, size=2))
    pad = ((0, max(oy + h - side, 0)), (0, max(ox + w - side, 0)), (0, 0))
    return np.ascontiguousarray(np.pad(square, pad, mode="symmetric")[oy : oy + h, ox : ox + w])


def fill_changes(
    image: np.ndarray,
    changed: np.ndarray,
    t1_mask: np.ndarray,
    t2_mask: np.ndarray,
    *,
    method: str,
    radius: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``image`` with the ``changed`` pixels filled by ``method`` (one of :data:`FILLS`)."""
    if method == "telea":
        return telea(image, changed, radius)
    return patch_fill(image, changed, t1_mask, t2_mask, radius, rng)


def patch_fill(
    image: np.ndarray,
    changed: np.ndarray,
    t1_mask: np.ndarray,
    t2_mask: np.ndarray,
    radius: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Texture-aware fill. Each connected hole of t2 class ``c`` takes its high frequencies
    from real t1 texture of class ``c`` near it: the hole's own shape shifted onto unchanged
    t1 pixels of ``c`` (:func:`_shifted_patch`), or, when it fits nowhere near, a square of
    them mirrored to tile the hole (:func:`_near_square`); both drawn from ``rng``. Its low
    frequencies are the Telea fill's, weighted by the share of the hole's rim that shows ``c``
    at t2 (a removed house amid grass takes the grass colour around it; a field re-classed to
    water amid grass keeps the copied water's colour). A hole whose class has no unchanged t1
    pixels to copy keeps its Telea fill. Only ``changed`` pixels change."""
    out = telea(image, changed, radius)
    if not changed.any() or changed.all():
        return out
    low = cv2.GaussianBlur(out.astype(np.float32), (0, 0), TEXTURE_SIGMA)
    for c in np.unique(t2_mask[changed]):
        source = (t1_mask == c) & ~changed
        if not source.any():
            continue
        dist = cv2.distanceTransform(np.pad(source.view(np.uint8), 1), cv2.DIST_C, 3)[1:-1, 1:-1]
        r = min(TEXTURE_RADIUS, int(dist.max()) - 1)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(
            (changed & (t2_mask == c)).view(np.uint8), connectivity=8
        )
        for k in range(1, n):
            x, y, w, h = (int(v) for v in stats[k, :4])
            box = slice(y, y + h), slice(x, x + w)
            hole = labels[box] == k
            texture = _shifted_patch(image, hole, (y, x), source, rng)
            if texture is None and r >= 1:
                texture = tile(_near_square(image, hole, (y, x), dist > r, r, rng), (h, w), rng)
            if texture is None:
                continue
            texture_f = texture.astype(np.float32)
            weight = _rim_share(hole, t2_mask, (y, x), int(c))
            mixed = texture_f + weight * (
                low[box] - cv2.GaussianBlur(texture_f, (0, 0), TEXTURE_SIGMA)
            )
            out[box][hole] = np.clip(np.rint(mixed[hole]), 0, 255).astype(np.uint8)
    return out


def _shifted_patch(
    image: np.ndarray,
    hole: np.ndarray,
    at: tuple[int, int],
    source: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray | None:
    """The (h, w) crop of ``image`` at a shift of the hole (placed at ``at``) that lands all
    its pixels on ``source`` pixels, drawn among the shifts within :data:`NEAR_SLACK` pixels
    of the shortest one found within ``2 * max(h, w) + 16`` pixels; None when none fits."""
    (y, x), (h, w) = at, hole.shape
    big_h, big_w = source.shape
    m = 2 * max(h, w) + 16
    y0, x0, y1, x1 = max(y - m, 0), max(x - m, 0), min(y + h + m, big_h), min(x + w + m, big_w)
    bad = np.pad((~source[y0:y1, x0:x1]).astype(np.float32), ((0, h), (0, w)), constant_values=1)
    hits = cv2.filter2D(bad, -1, hole.astype(np.float32), anchor=(0, 0))[: y1 - y0, : x1 - x0]
    ys, xs = np.nonzero(hits < 0.5)
    if ys.size == 0:
        return None
    d = np.hypot(ys + (y0 - y), xs + (x0 - x))
    pick = np.flatnonzero(d <= d.min() + NEAR_SLACK)
    k = int(pick[rng.integers(pick.size)])
    py, px = int(ys[k]) + y0, int(xs[k]) + x0
    return image[py : py + h, px : px + w]


def _near_square(
    image: np.ndarray,
    hole: np.ndarray,
    at: tuple[int, int],
    centres: np.ndarray,
    r: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """A (2r+1)² square of ``image`` centred on a pixel of ``centres``, drawn among those
    within :data:`NEAR_SLACK` pixels of the nearest one to the hole."""
    full = np.ones(centres.shape, np.uint8)
    (y, x), (h, w) = at, hole.shape
    full[y : y + h, x : x + w][hole] = 0
    dist = cv2.distanceTransform(full, cv2.DIST_L2, 3)[centres]
    idx = np.flatnonzero(centres)[dist <= dist.min() + NEAR_SLACK]
    cy, cx = divmod(int(idx[rng.integers(idx.size)]), centres.shape[1])
    return _square(image, cy, cx, r)


def _rim_share(hole: np.ndarray, t2_mask: np.ndarray, at: tuple[int, int], c: int) -> float:
    """Share of the pixels just outside ``hole`` (placed at ``at``) whose t2 class is ``c``."""
    (y, x), (h, w) = at, hole.shape
    big_h, big_w = t2_mask.shape
    y0, x0, y1, x1 = max(y - 1, 0), max(x - 1, 0), min(y + h + 1, big_h), min(x + w + 1, big_w)
    win = np.zeros((y1 - y0, x1 - x0), np.uint8)
    win[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = hole
    rim = cv2.dilate(win, np.ones((3, 3), np.uint8)).astype(bool) & ~win.astype(bool)
    classes = t2_mask[y0:y1, x0:x1][rim]
    return float(np.mean(classes == c)) if classes.size else 1.0


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
