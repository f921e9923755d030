"""Create events: copies of existing object shapes appear elsewhere (new buildings, new fields).

Each chosen source object (or shape-bank shape) is transformed — scale, rotation (none,
multiples of 90°, or any angle), left-right flip — and placed at a position drawn uniformly
among the positions where its whole footprint lands on free pixels: background pixels
(``placement="free"``), pixels of ``within_classes`` (``"within"``), or the interior of one
single-class region (``"homogeneous"``, ChangeAnywhere's appearance rule: "a smaller instance is
moved to the interior of the more homogeneous region"; see :class:`_Interior`). The copy keeps
its source's class id. With ``move`` the source is removed where it was, its pixels filled with
the class that surrounds it (:func:`changen.events.remove.erase_object`, as a remove event with
``fill="surrounding"``): ChangeAnywhere's appearance moves an instance, it does not copy it. A
move is logged as the copy's ``create`` record followed by the source's ``remove`` record (same
``source_id``); a source is moved at most once per event, and objects an event already edited
(covered by a copy, or grown by a fill) are not moved, so a moved shape is its source's exactly
(with the identity transform). Ignore pixels are never written; created objects do not overlap
existing foreground or each other unless ``allow_overlap``. Objects whose bbox touches the mask
border are clipped by the tile or crop edge, so they are not copied (their copies would show the
cut, e.g. as triangles) unless ``clipped``.

Positions are drawn by rejection: a uniformly random free pixel is proposed as the position of
the footprint's first pixel and the footprint is checked exactly inside its bbox, which accepts
every fitting position with the same probability. After ``max_tries`` rejections the position
is drawn among all placements whose whole bbox is free (integral image); an object that fits
nowhere is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from changen.data.atomic import atomic_path
from changen.errors import ConfigError, DataError
from changen.events.instances import InstanceLayer
from changen.events.objects import (
    ObjectTable,
    State,
    check_count,
    choose,
    member,
    read_only,
    shape_moments,
)
from changen.events.records import NO_FIT, NO_ROOM, NO_SOURCE, EventRecord, EventTally
from changen.events.remove import DEFAULT_RING, erase_object

Rotation = Literal["none", "90", "any"]
Placement = Literal["free", "within", "homogeneous"]
PLACEMENTS: tuple[str, ...] = ("free", "within", "homogeneous")

_BATCH = 64


@dataclass(frozen=True, eq=False)
class ShapeBank:
    """Object shapes (bool footprints) with their class ids, harvested from other masks of a
    dataset so that created objects need not be copies of the objects of the same mask."""

    footprints: tuple[np.ndarray, ...]
    classes: np.ndarray

    areas: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.footprints) != len(self.classes):
            raise ValueError("a shape bank needs one class id per footprint")
        areas = np.array([int(np.count_nonzero(f)) for f in self.footprints], np.int64)
        object.__setattr__(self, "areas", areas)

    def __len__(self) -> int:
        return len(self.footprints)

    @classmethod
    def harvest(
        cls,
        masks: Iterable[np.ndarray],
        *,
        min_area: int = 64,
        classes: Iterable[int] | None = None,
        max_per_mask: int | None = None,
        rng: np.random.Generator | None = None,
        connectivity: int = 8,
        background: int = 0,
        ignore: int = 255,
        clipped: bool = False,
    ) -> ShapeBank:
        """Collect the objects of ``masks`` (at least ``min_area`` pixels, optionally only some
        classes); ``max_per_mask`` keeps a random subset of each mask's objects (needs ``rng``).
        Objects touching the mask border are left out unless ``clipped`` (their shape is cut)."""
        from changen.events.objects import extract_objects

        if max_per_mask is not None and rng is None:
            raise ConfigError("ShapeBank.harvest: max_per_mask needs an rng to choose objects")
        wanted = None if classes is None else tuple(classes)
        fps: list[np.ndarray] = []
        ids: list[int] = []
        for mask in masks:
            objs = extract_objects(
                mask,
                connectivity=connectivity,
                min_area=min_area,
                background=background,
                ignore=ignore,
                classes=wanted,
            )
            if not clipped:
                objs = [o for o in objs if not _on_border(o.bbox, mask.shape)]
            if max_per_mask is not None and rng is not None and len(objs) > max_per_mask:
                keep = np.sort(rng.choice(len(objs), size=max_per_mask, replace=False))
                objs = [objs[i] for i in keep]
            fps.extend(o.footprint for o in objs)
            ids.extend(o.class_id for o in objs)
        return cls(tuple(fps), np.array(ids, np.int64))

    def save(self, path: str | Path) -> None:
        """Write the bank as one compressed ``.npz`` file (atomically)."""
        shapes = np.array([f.shape for f in self.footprints], np.int64).reshape(-1, 2)
        bits = (
            np.concatenate([f.ravel() for f in self.footprints])
            if self.footprints
            else (np.zeros(0, bool))
        )
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, shapes=shapes, classes=self.classes, bits=bits)

    @classmethod
    def load(cls, path: str | Path) -> ShapeBank:
        try:
            with np.load(path) as z:
                shapes, classes, bits = z["shapes"], z["classes"], z["bits"]
        except (OSError, KeyError, ValueError) as e:
            raise DataError(f"{path}: not a changen shape bank ({e}); harvest it again") from None
        ends = np.cumsum([h * w for h, w in shapes])
        parts = np.split(bits.astype(bool), ends[:-1]) if len(shapes) else []
        fps = tuple(p.reshape(int(h), int(w)) for p, (h, w) in zip(parts, shapes, strict=True))
        return cls(fps, classes.astype(np.int64))


@dataclass(frozen=True)
class CreateConfig:
    """Create event. ``count`` sources (inclusive range; or each eligible object with
    probability ``rate``) among objects of ``classes`` (all foreground when None) with
    ``min_area <= area <= max_area`` are copied. Each copy gets a uniform ``scale`` from the
    range, a rotation (``"none"``, ``"90"``: a uniform multiple of 90°, ``"any"``: uniform in
    [0, 360)), a left-right flip with probability 1/2 when ``flip``, and a uniform position on
    free pixels (see the module). ``margin`` keeps copies that many pixels away from occupied
    pixels. ``shape_bank``, when given, replaces the mask's own objects as the sources. With
    ``placement="within"``, objects of the within classes are never sources (a copy always
    lands on another class); with ``"homogeneous"``, ``within_classes`` (when given) restricts
    the host classes and a copy never lands on its own class. ``clipped`` lets objects whose
    bbox touches the mask border be sources. ``move`` removes each placed source where it was
    (see the module; not with a shape bank)."""

    count: tuple[int, int] = (1, 5)
    rate: float | None = None
    classes: tuple[int, ...] | None = None
    scale: tuple[float, float] = (1.0, 1.0)
    rotation: Rotation = "none"
    flip: bool = False
    placement: Placement = "free"
    within_classes: tuple[int, ...] = ()
    allow_overlap: bool = False
    margin: int = 0
    min_area: int = 64
    max_area: int | None = None
    max_tries: int = 50
    shape_bank: ShapeBank | None = None
    clipped: bool = False
    move: bool = False

    def __post_init__(self) -> None:
        check_count("create", self.count, self.rate)
        lo, hi = self.scale
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ConfigError(
                f"create scale must be a range lo:hi with 0 < lo <= hi, got {self.scale}"
            )
        if self.rotation not in ("none", "90", "any"):
            raise ConfigError(f"create rotation must be none, 90 or any, got {self.rotation!r}")
        if self.placement not in PLACEMENTS:
            raise ConfigError(
                f"create placement must be one of {', '.join(PLACEMENTS)}, got {self.placement!r}"
            )
        if self.placement == "within" and not self.within_classes:
            raise ConfigError(
                "create placement 'within' needs within_classes (class ids to place into)"
            )
        if self.margin < 0 or self.min_area < 0 or self.max_tries < 1:
            raise ConfigError("create margin and min_area must be >= 0 and max_tries >= 1")
        if self.move and self.shape_bank is not None:
            raise ConfigError(
                "create move removes the source from the mask; a shape bank has no source "
                "there, so drop move or the shape bank"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; a shape bank is recorded by its size only (pass it back to
        :meth:`from_dict`); ``move`` only when set, so the JSON of copying processes is as it
        was before moves existed."""
        fields = {
            "count": list(self.count),
            "rate": self.rate,
            "classes": None if self.classes is None else list(self.classes),
            "scale": list(self.scale),
            "rotation": self.rotation,
            "flip": self.flip,
            "placement": self.placement,
            "within_classes": list(self.within_classes),
            "allow_overlap": self.allow_overlap,
            "margin": self.margin,
            "min_area": self.min_area,
            "max_area": self.max_area,
            "max_tries": self.max_tries,
            "shape_bank": None if self.shape_bank is None else {"size": len(self.shape_bank)},
            "clipped": self.clipped,
        }
        return {**fields, "move": True} if self.move else fields

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], shape_bank: ShapeBank | None = None) -> CreateConfig:
        if d.get("shape_bank") is not None and shape_bank is None:
            raise ConfigError(
                "this create config used a shape bank; pass shape_bank= to restore it"
            )
        classes = d.get("classes")
        count = d.get("count", (1, 5))
        scale = d.get("scale", (1.0, 1.0))
        max_area = d.get("max_area")
        return cls(
            count=(int(count[0]), int(count[1])),
            rate=None if d.get("rate") is None else float(d["rate"]),
            classes=None if classes is None else tuple(int(c) for c in classes),
            scale=(float(scale[0]), float(scale[1])),
            rotation=d.get("rotation", "none"),
            flip=bool(d.get("flip", False)),
            placement=d.get("placement", "free"),
            within_classes=tuple(int(c) for c in d.get("within_classes", ())),
            allow_overlap=bool(d.get("allow_overlap", False)),
            margin=int(d.get("margin", 0)),
            min_area=int(d.get("min_area", 64)),
            max_area=None if max_area is None else int(max_area),
            max_tries=int(d.get("max_tries", 50)),
            shape_bank=shape_bank,
            clipped=bool(d.get("clipped", False)),
            move=bool(d.get("move", False)),
        )


def transform_shape(
    footprint: np.ndarray, *, scale: float = 1.0, angle: float = 0.0, flip: bool = False
) -> np.ndarray:
    """Flip (left-right), rotate (degrees, counter-clockwise on screen) and scale a bool
    footprint with nearest-neighbour sampling; returns the tight bool footprint (possibly
    empty). Multiples of 90° are exact rotations."""
    fp = footprint[:, ::-1] if flip else footprint
    quarter = angle / 90.0
    if abs(quarter - round(quarter)) < 1e-9:
        fp = np.rot90(fp, round(quarter) % 4)
        if scale == 1.0:
            return _tight(np.ascontiguousarray(fp))
        h, w = fp.shape
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        out = cv2.resize(
            np.ascontiguousarray(fp).view(np.uint8), size, interpolation=cv2.INTER_NEAREST_EXACT
        )
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
        out = cv2.warpAffine(
            np.ascontiguousarray(fp).view(np.uint8),
            m,
            (int(size[0]), int(size[1])),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
    return _tight(out.view(bool))


def _tight(fp: np.ndarray) -> np.ndarray:
    """``fp`` cut to the bbox of its set pixels (``(0, 0)`` when none is set)."""
    x, y, w, h = cv2.boundingRect(fp.view(np.uint8)) if fp.size else (0, 0, 0, 0)
    if w == 0:
        return np.zeros((0, 0), bool)
    return fp[y : y + h, x : x + w]


def _on_border(bbox: tuple[int, int, int, int], shape: tuple[int, ...]) -> bool:
    """Whether a bbox ``(y0, x0, y1, x1)`` touches the border of a ``shape`` mask."""
    y0, x0, y1, x1 = bbox
    return y0 == 0 or x0 == 0 or y1 == shape[0] or x1 == shape[1]


def _inside(rows: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bool per object-table row: its bbox keeps off the mask border (the object is whole)."""
    return (rows[:, 2] > 0) & (rows[:, 3] > 0) & (rows[:, 4] < shape[0]) & (rows[:, 5] < shape[1])


def _free_classes(config: CreateConfig, background: int, ignore: int) -> np.ndarray:
    """Bool lookup table: which class ids a copy may cover."""
    lut = np.zeros(256, bool)
    if config.placement == "homogeneous":
        lut[list(config.within_classes) if config.within_classes else slice(None)] = True
    elif config.placement == "within":
        lut[list(config.within_classes)] = True
    elif config.allow_overlap:
        lut[:] = True
    else:
        lut[background] = True
    lut[ignore] = False
    return lut


def _free_map(mask: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Bool map of the pixels whose class ``free`` (lookup table) allows."""
    ids = np.flatnonzero(free)
    if ids.size == 1:
        return mask == int(ids[0])
    if ids.size == 255:
        return mask != int(np.flatnonzero(~free)[0])
    return cv2.LUT(mask, free.view(np.uint8)).view(bool)


class _Room:
    """Where copies may go, kept up to date as they are placed.

    Usually a pixel is free when its class in the working mask is: placed copies write their
    class there, which is never a free class, or, with overlap allowed, stays one (any class
    but ignore) as it should, so no map is needed. An explicit map of the free pixels is kept
    when a margin must be left around copies (eroded by the margin; placed copies and their
    margin are removed from it) or when copies placed within classes may overlap each other."""

    def __init__(self, mask: np.ndarray, config: CreateConfig, free: np.ndarray) -> None:
        self.mask, self.free = mask, free
        ids = free.nonzero()[0]
        self.only = int(ids[0]) if ids.size == 1 else None  # the one free class, if one
        self.margin = config.margin
        self.occupy_placed = not config.allow_overlap
        self._none_free: bool | None = None
        self.map: np.ndarray | None = None
        if self.margin or (config.allow_overlap and config.placement == "within"):
            explicit = _free_map(mask, free)
            if self.margin:
                k = 2 * self.margin + 1
                kernel = np.ones((k, k), np.uint8)
                eroded = cv2.erode(explicit.view(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE)
                explicit = eroded.view(bool)
            self.map = explicit

    def free_at(self, flat: np.ndarray) -> np.ndarray:
        """Whether the pixels at flat indices ``flat`` are free."""
        if self.map is not None:
            return self.map.ravel()[flat]
        return self.free[self.mask.ravel()[flat]]

    def fits(self, fp: np.ndarray, py: int, px: int) -> bool:
        """Whether footprint ``fp`` at top-left ``(py, px)`` (inside the image) covers only
        free pixels: the least (and, for one free class, the largest) value under it, which
        OpenCV finds without copying the covered pixels."""
        h, w = fp.shape
        under = fp.view(np.uint8)
        crop: np.ndarray
        if self.map is not None:
            crop = self.map[py : py + h, px : px + w].view(np.uint8)
        elif self.only is None:
            crop = cv2.LUT(self.mask[py : py + h, px : px + w], self.free.view(np.uint8))
        else:
            lo, hi, at, _ = cv2.minMaxLoc(self.mask[py : py + h, px : px + w], mask=under)
            return at[0] < 0 or lo == hi == self.only
        lo, _, at, _ = cv2.minMaxLoc(crop, mask=under)
        return at[0] < 0 or lo > 0

    def free_map(self) -> np.ndarray:
        return self.map if self.map is not None else _free_map(self.mask, self.free)

    def none_free(self) -> bool:
        """Whether no pixel is free (checked once: placed copies never free a pixel)."""
        if self._none_free is None:
            self._none_free = cv2.countNonZero(self.free_map().view(np.uint8)) == 0
        return self._none_free

    def occupy(self, fp: np.ndarray, py: int, px: int) -> None:
        """Mark a placed footprint (grown by the margin) as no longer free, in the explicit
        map; the working mask already says so otherwise."""
        if self.map is None or not self.occupy_placed:
            return
        big_h, big_w = self.map.shape
        h, w = fp.shape
        m = self.margin
        y0, x0 = max(py - m, 0), max(px - m, 0)
        y1, x1 = min(py + h + m, big_h), min(px + w + m, big_w)
        pad = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pad[py - y0 : py - y0 + h, px - x0 : px - x0 + w] = fp
        grown = cv2.dilate(pad, np.ones((2 * m + 1, 2 * m + 1), np.uint8)).view(bool)
        self.map[y0:y1, x0:x1][grown] = False


def _place(
    fp: np.ndarray, room: _Room, rng: np.random.Generator, max_tries: int
) -> tuple[int, int] | None:
    """Top-left position where ``fp`` covers only free pixels, uniform over such positions
    while rejection succeeds (see the module), else uniform over fully free bboxes."""
    big_h, big_w = room.mask.shape
    h, w = fp.shape
    if h > big_h or w > big_w or h == 0:
        return None
    first = int(fp.argmax())
    ay, ax = divmod(first, w)
    tries = 0
    for _ in range(4 * max_tries // _BATCH + 1):
        q = rng.integers(0, room.mask.size, size=_BATCH)
        for flat in q[room.free_at(q)]:
            py, px = divmod(int(flat), big_w)
            py -= ay
            px -= ax
            if 0 <= py <= big_h - h and 0 <= px <= big_w - w and room.fits(fp, py, px):
                return py, px
            tries += 1
            if tries >= max_tries:
                return _place_bbox(h, w, room, rng)
    return _place_bbox(h, w, room, rng)


_RING = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))


class _Interior:
    """Where copies may go with ``placement="homogeneous"``: the interior of single-class
    regions of host classes, measured once per event by one distance transform.

    ``depth`` is each pixel's distance to the nearest pixel that has an 8-neighbour of another
    class, or to the image border; it never exceeds the distance to the nearest pixel of another
    class, so a footprint whose pixels all lie within ``r < depth`` of a centre pixel covers
    only that pixel's class. Positions are drawn uniformly among the centres deep enough for the
    copy (``depth > r + margin``) in a host class other than the copy's own, then checked
    exactly against the working mask (copies placed earlier in the event are not covered)."""

    def __init__(self, mask: np.ndarray, hosts: np.ndarray, config: CreateConfig) -> None:
        self.original = mask.copy()
        edges = cv2.compare(cv2.dilate(mask, _RING), cv2.erode(mask, _RING), cv2.CMP_EQ)
        edges[[0, -1], :] = 0
        edges[:, [0, -1]] = 0
        depth = cv2.distanceTransform(edges, cv2.DIST_L2, 3)
        pool = np.flatnonzero(cv2.LUT(mask, hosts.view(np.uint8)).view(bool).ravel())
        self.pool_depth = depth.ravel()[pool]
        deep = self.pool_depth >= 1.0
        self.pool, self.pool_depth = pool[deep], self.pool_depth[deep]
        self.pool_class = mask.ravel()[self.pool]
        self.deepest = float(self.pool_depth.max(initial=0.0))
        self.margin = config.margin
        self.exact = not config.allow_overlap
        # a move lands on host pixels of the pre-event mask too, never where a source left
        self.original_too = config.move and self.exact

    def place(
        self,
        fp: np.ndarray,
        cls: int,
        work: np.ndarray,
        rng: np.random.Generator,
        max_tries: int,
    ) -> tuple[int, int] | None:
        """Top-left position of ``fp`` (a copy of class ``cls``) in a host interior."""
        h, w = fp.shape
        ys, xs = np.nonzero(fp)
        ay, ax = h // 2, w // 2
        reach = float(np.sqrt(((ys - ay) ** 2 + (xs - ax) ** 2).max(initial=0)))
        ok = (self.pool_depth > reach + self.margin) & (self.pool_class != cls)
        centres = self.pool[ok]
        if centres.size == 0:
            return None
        big_h, big_w = work.shape
        target = work if self.exact else self.original
        for _ in range(max_tries):
            cy, cx = divmod(int(centres[rng.integers(centres.size)]), big_w)
            py, px = cy - ay, cx - ax
            if not (0 <= py <= big_h - h and 0 <= px <= big_w - w):
                continue
            host = self.original[cy, cx]
            if bool((target[py : py + h, px : px + w][fp] == host).all()) and (
                not self.original_too
                or bool((self.original[py : py + h, px : px + w][fp] == host).all())
            ):
                return py, px
        return None


def _place_bbox(h: int, w: int, room: _Room, rng: np.random.Generator) -> tuple[int, int] | None:
    """Top-left position, uniform among those where the whole ``h`` x ``w`` bbox is free."""
    if room.none_free():
        return None
    free = room.free_map().view(np.uint8)
    big_h, big_w = free.shape
    # erosion by an h x w box anchored at its top-left: 1 where the whole bbox there is free
    fits = cv2.erode(free, np.ones((h, w), np.uint8), anchor=(0, 0), borderValue=0)
    fits = fits[: big_h - h + 1, : big_w - w + 1]
    count = cv2.countNonZero(fits)
    if count == 0:
        return None
    return _nth_set(fits, int(rng.integers(count)))


def _nth_set(image: np.ndarray, n: int) -> tuple[int, int]:
    """``(row, column)`` of the ``n``-th set pixel of a 0/1 uint8 image in raster order,
    found from per-row counts (listing every set pixel costs far more on large images)."""
    ends = np.cumsum(cv2.reduce(image, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel())
    row = int(np.searchsorted(ends, n, side="right"))
    before = int(ends[row - 1]) if row else 0
    return row, int(np.flatnonzero(image[row])[n - before])


_REDRAWS = 3
"""Homogeneous placement: how many other sources are tried when a copy fits in no interior
(ChangeAnywhere moves a *smaller* instance; a copy too large for every region is replaced)."""


def _draw_transform(config: CreateConfig, rng: np.random.Generator) -> tuple[float, float, bool]:
    """A copy's scale, rotation angle (degrees) and flip, drawn in this order."""
    lo, hi = config.scale
    scale = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
    flip = bool(rng.random() < 0.5) if config.flip else False
    if config.rotation == "90":
        angle = 90.0 * int(rng.integers(4))
    elif config.rotation == "any":
        angle = float(rng.uniform(0.0, 360.0))
    else:
        angle = 0.0
    return scale, angle, flip


def _sources(
    state: State, config: CreateConfig, background: int, ignore: int, below_id: int | None
) -> np.ndarray:
    """Indices of the eligible sources: shape-bank entries, or rows of the object table (whole
    objects only, unless ``config.clipped``)."""
    bank = config.shape_bank
    within = config.within_classes if config.placement == "within" else ()
    never = (background, ignore, *within)
    if bank is not None:
        ok = (bank.areas >= config.min_area) & ~member(bank.classes, never)
        if config.max_area is not None:
            ok &= bank.areas <= config.max_area
        if config.classes is not None:
            ok &= member(bank.classes, config.classes)
        return np.flatnonzero(ok)
    table = state.objects()
    cand = table.eligible(
        min_area=config.min_area,
        classes=config.classes,
        exclude=never,
        max_area=config.max_area,
        below_id=below_id,
    )
    if not config.clipped and cand.size:
        cand = cand[_inside(table.rows[cand], state.shape)]
    return cand


def _erase_source(
    mask: np.ndarray,
    layer: InstanceLayer,
    rows: np.ndarray,
    i: int,
    background: int,
    ignore: int,
    step: int,
) -> tuple[InstanceLayer, EventRecord]:
    """Remove a moved source (table row ``i``) where it was, filled with its surrounding
    class; the layer and the source's ``remove`` record."""
    obj_id, cls, area = (int(v) for v in rows[i, [0, 1, 6]])
    layer, fill, fill_id = erase_object(
        mask,
        layer,
        rows,
        i,
        fill="surrounding",
        ring=DEFAULT_RING,
        background=background,
        ignore=ignore,
    )
    record = EventRecord(
        step=step,
        event="remove",
        source_id=obj_id,
        new_id=fill_id,
        class_before=cls,
        class_after=fill,
        area=area,
    )
    return layer, record


def create_objects(
    state: State,
    config: CreateConfig,
    rng: np.random.Generator,
    *,
    background: int = 0,
    ignore: int = 255,
    step: int = 0,
    below_id: int | None = None,
    tally: EventTally | None = None,
) -> tuple[State, list[EventRecord]]:
    """Paste transformed copies of chosen objects; returns the new state and one record per
    created object (objects that fit nowhere are skipped). No eligible source or no room for
    any copy: the input is returned unchanged with an empty log. ``below_id`` restricts the
    eligible objects to ids below it (the process uses it to spare objects born in the same
    step); ``tally``, when given, counts what was tried and why copies were not placed."""
    tally = tally if tally is not None else EventTally()
    table = state.objects()
    bank = config.shape_bank
    cand = _sources(state, config, background, ignore, below_id)
    free = _free_classes(config, background, ignore)
    interior = None
    if config.placement == "homogeneous" and cand.size:
        interior = _Interior(state.mask, free, config)
        areas = bank.areas[cand] if bank is not None else table.areas[cand]
        # a copy of area a needs a disc of radius >= sqrt(a / pi) inside one region
        cand = cand[areas * config.scale[0] ** 2 < math.pi * interior.deepest**2]
        if cand.size == 0:
            tally.note("create", reason=NO_ROOM)
            return state, []
    picked = choose(cand.size, config.count, config.rate, rng, replace=not config.move)
    if picked.size == 0:
        tally.note("create", reason=NO_SOURCE if cand.size == 0 else None)
        return state, []
    mask = state.mask.copy()
    room = _Room(mask, config, free)
    layer = state.layer
    next_id = state.next_id
    rows = table.rows.copy() if config.move else table.rows
    new_rows: list[tuple[int, ...]] = []
    touched: set[int] = set()
    gone: list[int] = []  # table rows of moved sources
    records: list[EventRecord] = []
    track_cover = config.allow_overlap or config.placement != "free"
    redraws = _REDRAWS if interior is not None else 0
    for p in picked:
        pos = None
        for attempt in range(redraws + 1):
            c = int(cand[p] if attempt == 0 else cand[rng.integers(cand.size)])
            if config.move and (c in gone or int(rows[c, 0]) in touched):
                continue  # edited earlier in the event: its shape is no longer the source's
            if bank is None:
                src_id, cls, y0, x0, y1, x1 = table.rows[c, :6].tolist()
                src_fp = state.layer.footprint(src_id, (y0, x0, y1, x1))
                bank_index = None
            else:
                src_id, cls, y0, x0 = -1, int(bank.classes[c]), 0, 0
                src_fp = bank.footprints[c]
                bank_index = c
            scale, angle, flip = _draw_transform(config, rng)
            moved = scale != 1.0 or angle != 0.0 or flip
            fp = transform_shape(src_fp, scale=scale, angle=angle, flip=flip) if moved else src_fp
            if interior is not None:
                pos = interior.place(fp, cls, mask, rng, config.max_tries) if fp.size else None
            else:
                pos = _place(fp, room, rng, config.max_tries)
            if pos is not None:
                break
        if pos is None:
            continue
        py, px = pos
        h, w = fp.shape
        m_crop = mask[py : py + h, px : px + w]
        if track_cover:
            covered = layer.window((py, px, py + h, px + w))[fp]
            touched.update(int(v) for v in np.unique(covered) if v)
            before = int(np.argmax(np.bincount(m_crop[fp], minlength=256)))
        else:
            before = background
        new_id = next_id
        next_id += 1
        m_crop[fp] = cls
        layer = layer.edited(py, px, fp, new_id)
        room.occupy(fp, py, px)
        area = int(np.count_nonzero(fp))
        if moved:
            (sy, sx), _ = shape_moments(src_fp)
            (ty, tx), _ = shape_moments(fp)
            offset = (round(py + ty - y0 - sy), round(px + tx - x0 - sx))
        else:
            offset = (py - y0, px - x0)
        new_rows.append((new_id, cls, py, px, py + h, px + w, area))
        records.append(
            EventRecord(
                step=step,
                event="create",
                source_id=src_id,
                new_id=new_id,
                class_before=before,
                class_after=cls,
                scale=scale,
                angle=angle,
                flip=flip,
                offset=offset,
                area=area,
                bank_index=bank_index,
            )
        )
        if config.move:
            layer, record = _erase_source(mask, layer, rows, c, background, ignore, step)
            gone.append(c)
            touched.update({record.new_id} - {0})
            records.append(record)
    placed = len(new_rows)
    short = None
    if placed < picked.size:
        short = NO_ROOM if interior is None and room.none_free() else NO_FIT
    tally.note("create", tried=int(picked.size), done=placed, reason=short)
    if not records:
        return state, []
    kept = np.delete(rows, gone, axis=0) if gone else rows
    new_table = ObjectTable(np.concatenate([kept, np.array(new_rows, np.int64)]))
    if touched:
        new_table = new_table.refreshed(layer, sorted(touched))
    return State.from_layer(read_only(mask), layer, next_id, new_table), records
