"""Create events: copies of existing object shapes appear elsewhere (new buildings, new fields).

Each chosen source object (or shape-bank shape) is transformed — scale, rotation (none,
multiples of 90°, or any angle), left-right flip — and placed at a position drawn uniformly
among the positions where its whole footprint lands on free pixels: background pixels
(``placement="free"``), or pixels of ``within_classes`` ("into a homogeneous region",
ChangeAnywhere's appearance rule). The copy keeps its source's class id. Ignore pixels are never
written; created objects do not overlap existing foreground or each other unless
``allow_overlap``.

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
from changen.events.objects import ObjectTable, State, check_count, choose, read_only, shape_moments
from changen.events.records import EventRecord

Rotation = Literal["none", "90", "any"]
Placement = Literal["free", "within"]

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
    ) -> ShapeBank:
        """Collect the objects of ``masks`` (at least ``min_area`` pixels, optionally only some
        classes); ``max_per_mask`` keeps a random subset of each mask's objects (needs ``rng``)."""
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
    lands on another class)."""

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

    def __post_init__(self) -> None:
        check_count("create", self.count, self.rate)
        lo, hi = self.scale
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ConfigError(
                f"create scale must be a range lo:hi with 0 < lo <= hi, got {self.scale}"
            )
        if self.rotation not in ("none", "90", "any"):
            raise ConfigError(f"create rotation must be none, 90 or any, got {self.rotation!r}")
        if self.placement not in ("free", "within"):
            raise ConfigError(f"create placement must be free or within, got {self.placement!r}")
        if self.placement == "within" and not self.within_classes:
            raise ConfigError(
                "create placement 'within' needs within_classes (class ids to place into)"
            )
        if self.margin < 0 or self.min_area < 0 or self.max_tries < 1:
            raise ConfigError("create margin and min_area must be >= 0 and max_tries >= 1")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; a shape bank is recorded by its size only (pass it back to
        :meth:`from_dict`)."""
        return {
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
        }

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
    rows, cols = np.flatnonzero(fp.any(axis=1)), np.flatnonzero(fp.any(axis=0))
    if rows.size == 0:
        return np.zeros((0, 0), bool)
    return fp[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _free_classes(config: CreateConfig, background: int, ignore: int) -> np.ndarray:
    """Bool lookup table: which class ids a copy may cover."""
    lut = np.zeros(256, bool)
    if config.placement == "within":
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
        free pixels."""
        h, w = fp.shape
        if self.map is not None:
            return bool(self.map[py : py + h, px : px + w][fp].all())
        return bool(self.free[self.mask[py : py + h, px : px + w][fp]].all())

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
    first = int(np.argmax(fp.ravel()))
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


def _place_bbox(h: int, w: int, room: _Room, rng: np.random.Generator) -> tuple[int, int] | None:
    """Top-left position, uniform among those where the whole ``h`` x ``w`` bbox is free."""
    if room.none_free():
        return None
    free = room.free_map().view(np.uint8)
    big_h, big_w = free.shape
    ny, nx = big_h - h + 1, big_w - w + 1
    # erosion by an h x w box anchored at its top-left: 1 where the whole bbox there is free
    fits = cv2.erode(free, np.ones((h, w), np.uint8), anchor=(0, 0), borderValue=0)
    ok = np.flatnonzero(fits[:ny, :nx])
    if ok.size == 0:
        return None
    return divmod(int(ok[rng.integers(ok.size)]), nx)


def create_objects(
    state: State,
    config: CreateConfig,
    rng: np.random.Generator,
    *,
    background: int = 0,
    ignore: int = 255,
    step: int = 0,
    below_id: int | None = None,
) -> tuple[State, list[EventRecord]]:
    """Paste transformed copies of chosen objects; returns the new state and one record per
    created object (objects that fit nowhere are skipped). No eligible source or no room for
    any copy: the input is returned unchanged with an empty log. ``below_id`` restricts the
    eligible objects to ids below it (the process uses it to spare objects born in the same
    step)."""
    table = state.objects()
    bank = config.shape_bank
    never = (background, ignore, *(config.within_classes if config.placement == "within" else ()))
    if bank is not None:
        ok = (bank.areas >= config.min_area) & ~np.isin(bank.classes, never)
        if config.max_area is not None:
            ok &= bank.areas <= config.max_area
        if config.classes is not None:
            ok &= np.isin(bank.classes, config.classes)
        cand = np.flatnonzero(ok)
    else:
        cand = table.eligible(
            min_area=config.min_area,
            classes=config.classes,
            exclude=never,
            max_area=config.max_area,
            below_id=below_id,
        )
    picked = choose(cand.size, config.count, config.rate, rng, replace=True)
    if picked.size == 0:
        return state, []
    mask = state.mask.copy()
    room = _Room(mask, config, _free_classes(config, background, ignore))
    layer = state.layer
    next_id = state.next_id
    new_rows: list[tuple[int, ...]] = []
    touched: set[int] = set()
    records: list[EventRecord] = []
    lo, hi = config.scale
    track_cover = config.allow_overlap or config.placement == "within"
    for p in picked:
        c = int(cand[p])
        if bank is None:
            src_id, cls, y0, x0 = (int(v) for v in table.rows[c, :4])
            src_fp = state.footprint(c)
            bank_index = None
        else:
            src_id, cls, y0, x0 = -1, int(bank.classes[c]), 0, 0
            src_fp = bank.footprints[c]
            bank_index = c
        scale = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
        flip = bool(rng.random() < 0.5) if config.flip else False
        if config.rotation == "90":
            angle = 90.0 * int(rng.integers(4))
        elif config.rotation == "any":
            angle = float(rng.uniform(0.0, 360.0))
        else:
            angle = 0.0
        moved = scale != 1.0 or angle != 0.0 or flip
        fp = transform_shape(src_fp, scale=scale, angle=angle, flip=flip) if moved else src_fp
        pos = _place(fp, room, rng, config.max_tries)
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
    if not records:
        return state, []
    new_table = ObjectTable(np.concatenate([table.rows, np.array(new_rows, np.int64)]))
    if touched:
        new_table = new_table.refreshed(layer, sorted(touched))
    return State.from_layer(read_only(mask), layer, next_id, new_table), records
