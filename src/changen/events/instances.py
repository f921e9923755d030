"""The instance map of a state, built only when someone asks for it.

Events edit the pixels of a few objects; they never need the int32 id of every pixel. An
:class:`InstanceLayer` therefore holds where the objects came from — its *base*: a given
instance map (:class:`GivenBase`), or the traced components of the first mask of a chain
(:class:`TracedBase`, one flood fill per object, on demand) — and the edits made since, in
order: a footprint, its position and the id its pixels now carry (0 = none). The ids of a
window, the footprint of one object and the whole map are the base with the edits replayed on
top. Layers are immutable; an edit returns a new layer sharing the base. After
:data:`MAX_EDITS` edits the map is built once and becomes the base of the next layer, so
replays stay short on long chains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from changen.events.labelling import flood_footprint

MAX_EDITS = 256
"""Edits kept before a layer folds them into a new base."""

Box = tuple[int, int, int, int]


@dataclass(frozen=True, eq=False)
class Edit:
    """Pixels ``footprint`` (bool) at ``(y0, x0)`` now carry instance id ``value``."""

    y0: int
    x0: int
    footprint: np.ndarray
    value: int


def _overlap(
    box: Box, y0: int, x0: int, shape: tuple[int, ...]
) -> tuple[slice, slice, slice, slice] | None:
    """Slices of ``box`` (window) and of a ``shape`` array at ``(y0, x0)`` where they overlap."""
    wy0, wx0, wy1, wx1 = box
    oy0, ox0 = max(wy0, y0), max(wx0, x0)
    oy1, ox1 = min(wy1, y0 + shape[0]), min(wx1, x0 + shape[1])
    if oy0 >= oy1 or ox0 >= ox1:
        return None
    return (
        slice(oy0 - wy0, oy1 - wy0),
        slice(ox0 - wx0, ox1 - wx0),
        slice(oy0 - y0, oy1 - y0),
        slice(ox0 - x0, ox1 - x0),
    )


def _paint(out: np.ndarray, box: Box, y0: int, x0: int, fp: np.ndarray, value: int) -> None:
    """Write ``value`` (an id, or a bool into a bool ``out``) where ``fp`` (at ``(y0, x0)``) is
    set, into ``out`` (the window ``box``)."""
    cut = _overlap(box, y0, x0, fp.shape)
    if cut is not None:
        oy, ox, fy, fx = cut
        np.copyto(out[oy, ox], value, where=fp[fy, fx])


def _hits(boxes: np.ndarray, box: Box) -> np.ndarray:
    """Indices of the ``(n, 4)`` boxes ``(y0, x0, y1, x1)`` that intersect ``box``."""
    y0, x0, y1, x1 = box
    hit = (boxes[:, 0] < y1) & (boxes[:, 2] > y0) & (boxes[:, 1] < x1) & (boxes[:, 3] > x0)
    return hit.nonzero()[0]


class GivenBase:
    """A complete instance map (int32, 0 = none), as a source gave it or a layer folded it."""

    def __init__(self, instances: np.ndarray) -> None:
        self.instances = instances

    @property
    def shape(self) -> tuple[int, int]:
        return self.instances.shape[0], self.instances.shape[1]

    def window(self, box: Box) -> np.ndarray:
        y0, x0, y1, x1 = box
        return self.instances[y0:y1, x0:x1].astype(np.int32)

    def footprint(self, obj_id: int, box: Box) -> np.ndarray:
        y0, x0, y1, x1 = box
        return self.instances[y0:y1, x0:x1] == obj_id

    def full(self) -> np.ndarray:
        return self.instances


class TracedBase:
    """Components of a mask known by id, seed pixel and bbox; their pixels are flood-filled
    from the seed on first use (and kept: the base is shared by every later layer)."""

    def __init__(
        self,
        mask: np.ndarray,
        ids: np.ndarray,
        seeds: np.ndarray,
        boxes: np.ndarray,
        connectivity: int,
    ) -> None:
        self.mask, self.ids, self.seeds, self.boxes = mask, ids, seeds, boxes
        self.connectivity = connectivity
        self._pixels: dict[int, np.ndarray] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape[0], self.mask.shape[1]

    def pixels(self, k: int) -> np.ndarray:
        """Bool footprint of component ``k`` (index into ``ids``) over its bbox."""
        fp = self._pixels.get(k)
        if fp is None:
            y0, x0, y1, x1 = self.boxes[k].tolist()
            fp = flood_footprint(self.mask, int(self.seeds[k]), (y0, x0, y1, x1), self.connectivity)
            fp.flags.writeable = False
            self._pixels[k] = fp
        return fp

    def window(self, box: Box) -> np.ndarray:
        out = np.zeros((box[2] - box[0], box[3] - box[1]), np.int32)
        for k in _hits(self.boxes, box).tolist():
            y0, x0 = self.boxes[k, :2].tolist()
            _paint(out, box, y0, x0, self.pixels(k), self.ids[k])
        return out

    def footprint(self, obj_id: int, box: Box) -> np.ndarray:
        k = int(self.ids.searchsorted(obj_id))
        if k == len(self.ids) or self.ids[k] != obj_id:
            return np.zeros((box[2] - box[0], box[3] - box[1]), bool)
        own = self.boxes[k].tolist()
        if own == list(box):
            return self.pixels(k).copy()
        out = np.zeros((box[2] - box[0], box[3] - box[1]), bool)
        _paint(out, box, own[0], own[1], self.pixels(k), True)
        return out

    def full(self) -> np.ndarray:
        return self.window((0, 0, *self.shape))


class InstanceLayer:
    """A base (:class:`GivenBase` or :class:`TracedBase`) and the edits made on top of it."""

    __slots__ = ("_full", "base", "boxes", "edits")

    def __init__(
        self,
        base: GivenBase | TracedBase,
        edits: tuple[Edit, ...] = (),
        boxes: np.ndarray | None = None,
    ) -> None:
        self.base = base
        self.edits = edits
        self.boxes = np.zeros((0, 4), np.int64) if boxes is None else boxes
        self._full: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.base.shape

    def edited(self, y0: int, x0: int, footprint: np.ndarray, value: int) -> InstanceLayer:
        """This layer with the pixels ``footprint`` at ``(y0, x0)`` set to id ``value`` (the
        footprint becomes read-only: the layer keeps it)."""
        footprint.flags.writeable = False
        layer = self
        if len(self.edits) >= MAX_EDITS:
            layer = InstanceLayer(GivenBase(self.full()))
        h, w = footprint.shape
        box = np.array([[y0, x0, y0 + h, x0 + w]], np.int64)
        return InstanceLayer(
            layer.base,
            (*layer.edits, Edit(y0, x0, footprint, int(value))),
            np.concatenate([layer.boxes, box]),
        )

    def window(self, box: Box) -> np.ndarray:
        """int32 ids of the window ``(y0, x0, y1, x1)``."""
        out = self.base.window(box)
        for e in (self.edits[k] for k in _hits(self.boxes, box).tolist()):
            _paint(out, box, e.y0, e.x0, e.footprint, e.value)
        return out

    def footprint(self, obj_id: int, box: Box) -> np.ndarray:
        """Bool map of the pixels of ``obj_id`` inside the window ``box`` (a new array)."""
        out = self.base.footprint(obj_id, box)
        if self.edits:
            for e in (self.edits[k] for k in _hits(self.boxes, box).tolist()):
                _paint(out, box, e.y0, e.x0, e.footprint, e.value == obj_id)
        return out

    def full(self) -> np.ndarray:
        """The whole int32 instance map (built once, read-only)."""
        if self._full is None:
            full = self.base.full()
            if self.edits:
                full = full.copy()
                self.paint_edits(full, 0)
            else:
                full = full.view()
            full.flags.writeable = False
            self._full = full
        return self._full

    def extends(self, older: InstanceLayer) -> bool:
        """Whether this layer is ``older`` with more edits on top (so ``older``'s map plus
        :meth:`paint_edits` from ``len(older.edits)`` gives this one's)."""
        n = len(older.edits)
        return (
            self.base is older.base
            and len(self.edits) >= n
            and all(a is b for a, b in zip(self.edits[:n], older.edits, strict=True))
        )

    def paint_edits(self, instances: np.ndarray, start: int) -> None:
        """Replay the edits from index ``start`` on a full instance map, in place."""
        box = (0, 0, *self.shape)
        for e in self.edits[start:]:
            _paint(instances, box, e.y0, e.x0, e.footprint, e.value)
