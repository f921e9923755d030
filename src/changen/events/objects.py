"""Objects of a mask and the state the change events edit.

An *object* is either one instance of a given instance map (xView2 polygons, SAM masks) or,
when the source has none, one connected component of one class (4- or 8-connectivity).
Background and ignore pixels are never part of an object.

A :class:`State` is a mask, an :class:`ObjectTable` (id, class, bbox, area of every object)
and an :class:`~changen.events.instances.InstanceLayer`. The table is built from the objects'
outlines (:mod:`changen.events.labelling`), with no label map; events choose objects from the
table, recover the pixels of the few they edit by flood fill from a seed pixel, and record what
they wrote in the layer. The full int32 instance map is built only when someone reads
``State.instances`` (or the given instance map is used as it is, when the source had one), so
a chain of events costs one labelling of its first mask plus the edited pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage

from changen.errors import ConfigError, DataError
from changen.events.instances import GivenBase, InstanceLayer, TracedBase
from changen.events.labelling import SEED, X1, Y0, label_mask

# Columns of ObjectTable.rows.
_ID, _CLS, _Y0, _X0, _Y1, _X1, _AREA = range(7)


@dataclass(frozen=True, eq=False)
class MaskObject:
    """One object: instance id, class, bbox ``(y0, x0, y1, x1)`` (end exclusive), pixel count,
    centroid ``(y, x)``, orientation of the major axis (degrees from the x axis,
    counter-clockwise on screen, in (-90, 90]) and its footprint (bool array of the bbox)."""

    id: int
    class_id: int
    bbox: tuple[int, int, int, int]
    area: int
    centroid: tuple[float, float]
    orientation: float
    footprint: np.ndarray = field(repr=False)

    @property
    def height(self) -> int:
        return self.bbox[2] - self.bbox[0]

    @property
    def width(self) -> int:
        return self.bbox[3] - self.bbox[1]


def shape_moments(footprint: np.ndarray) -> tuple[tuple[float, float], float]:
    """Centroid ``(y, x)`` (in footprint coordinates) and major-axis orientation in degrees."""
    m = cv2.moments(footprint.view(np.uint8), binaryImage=True)
    if m["m00"] == 0:
        return (0.0, 0.0), 0.0
    cy, cx = m["m01"] / m["m00"], m["m10"] / m["m00"]
    # Image y points down: negate to report counter-clockwise angles as seen on screen.
    theta = -0.5 * math.degrees(math.atan2(2.0 * m["mu11"], m["mu20"] - m["mu02"]))
    if theta <= -90.0:
        theta += 180.0
    return (cy, cx), theta + 0.0


class ObjectTable:
    """Vectorised object index: one row ``(id, class, y0, x0, y1, x1, area)`` per object.

    Rows are sorted by id; ids are unique and new ids are always larger than existing ones.
    Instances are the pixels ``instances == id`` inside the bbox.
    """

    __slots__ = ("rows",)

    def __init__(self, rows: np.ndarray | None = None) -> None:
        self.rows = np.zeros((0, 7), np.int64) if rows is None else rows

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @property
    def ids(self) -> np.ndarray:
        return self.rows[:, _ID]

    @property
    def classes(self) -> np.ndarray:
        return self.rows[:, _CLS]

    @property
    def areas(self) -> np.ndarray:
        return self.rows[:, _AREA]

    def bbox(self, i: int) -> tuple[int, int, int, int]:
        r = self.rows[i]
        return int(r[_Y0]), int(r[_X0]), int(r[_Y1]), int(r[_X1])

    def index_of(self, obj_id: int) -> int:
        """Row index of ``obj_id`` (``-1`` when absent)."""
        i = int(np.searchsorted(self.rows[:, _ID], obj_id))
        return i if i < len(self) and self.rows[i, _ID] == obj_id else -1

    def eligible(
        self,
        *,
        min_area: int,
        classes: Iterable[int] | None,
        exclude: Iterable[int] = (),
        max_area: int | None = None,
        below_id: int | None = None,
    ) -> np.ndarray:
        """Row indices of objects with ``area >= min_area`` (and ``<= max_area``) whose class is
        in ``classes`` (all when None) and not in ``exclude``, and whose id is below
        ``below_id`` when given (objects born later are not eligible)."""
        ok = self.rows[:, _AREA] >= min_area
        if below_id is not None:
            ok &= self.rows[:, _ID] < below_id
        if max_area is not None:
            ok &= self.rows[:, _AREA] <= max_area
        cls = self.rows[:, _CLS]
        if classes is not None:
            ok &= member(cls, classes)
        ex = tuple(exclude)
        if ex:
            ok &= ~member(cls, ex)
        return ok.nonzero()[0]

    def footprint(self, instances: np.ndarray, i: int) -> np.ndarray:
        """Footprint of row ``i`` in a full instance map (bool, bbox-sized)."""
        y0, x0, y1, x1 = self.bbox(i)
        return instances[y0:y1, x0:x1] == self.rows[i, _ID]

    def materialise(self, i: int, footprint: np.ndarray) -> MaskObject:
        """The full :class:`MaskObject` of row ``i`` with its footprint (centroid, orientation)."""
        y0, x0, y1, x1 = self.bbox(i)
        (cy, cx), theta = shape_moments(footprint)
        return MaskObject(
            id=int(self.rows[i, _ID]),
            class_id=int(self.rows[i, _CLS]),
            bbox=(y0, x0, y1, x1),
            area=int(self.rows[i, _AREA]),
            centroid=(y0 + cy, x0 + cx),
            orientation=theta,
            footprint=footprint,
        )

    def copy(self) -> ObjectTable:
        return ObjectTable(self.rows.copy())

    def refreshed(self, layer: InstanceLayer, ids: Iterable[int]) -> ObjectTable:
        """Table with the bbox and area of ``ids`` recomputed from ``layer`` after they lost
        pixels (their old bbox still contains them); objects left without pixels are dropped."""
        rows = self.rows.copy()
        gone = []
        for obj_id in ids:
            i = self.index_of(obj_id)
            if i < 0:
                continue
            y0, x0, y1, x1 = self.bbox(i)
            fp = layer.footprint(obj_id, (y0, x0, y1, x1))
            area = int(np.count_nonzero(fp))
            if area == 0:
                gone.append(i)
                continue
            ys, xs = np.flatnonzero(fp.any(axis=1)), np.flatnonzero(fp.any(axis=0))
            rows[i, 2:] = (y0 + ys[0], x0 + xs[0], y0 + ys[-1] + 1, x0 + xs[-1] + 1, area)
        return ObjectTable(np.delete(rows, gone, axis=0) if gone else rows)


_FEW = 8
"""Up to this many ids, :func:`member` compares with each (``np.isin`` costs more on them)."""


def member(values: np.ndarray, ids: Iterable[int]) -> np.ndarray:
    """Bool array: which ``values`` are among ``ids`` (``np.isin``, faster for a few ids)."""
    wanted = tuple(int(v) for v in ids)
    if len(wanted) > _FEW:
        return np.isin(values, np.array(wanted, np.int64))
    out = np.zeros(values.shape, bool)
    for v in wanted:
        out |= values == v
    return out


def check_count(event: str, count: tuple[int, int], rate: float | None) -> None:
    """Validate an event's ``count`` range (inclusive) and optional per-object ``rate``."""
    if len(count) != 2 or not 0 <= count[0] <= count[1]:
        raise ConfigError(f"{event} count must be a range lo:hi with 0 <= lo <= hi, got {count}")
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise ConfigError(f"{event} rate must be within [0, 1], got {rate}")


def choose(
    n: int,
    count: tuple[int, int],
    rate: float | None,
    rng: np.random.Generator,
    *,
    replace: bool,
) -> np.ndarray:
    """Indices of the chosen candidates among ``n``: each with probability ``rate`` when set,
    else ``count`` (drawn uniformly from the inclusive range) of them. Without ``replace``
    the count is capped at ``n``; with it, candidates repeat only when the count exceeds ``n``."""
    if n == 0:
        return np.zeros(0, np.int64)
    if rate is not None:
        return np.flatnonzero(rng.random(n) < rate)
    k = int(rng.integers(count[0], count[1] + 1))
    if not replace:
        k = min(k, n)
    return rng.choice(n, size=k, replace=k > n)


def read_only(array: np.ndarray) -> np.ndarray:
    """``array``, no longer writable: a state's arrays never change once it exists."""
    array.flags.writeable = False
    return array


def _validate(
    mask: np.ndarray, instances: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """A private C-contiguous uint8 copy of ``mask`` and an int32 copy of ``instances``."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        shape = getattr(mask, "shape", None)
        raise DataError(f"mask must be a 2-D (H, W) class-id array, got shape {shape}")
    if mask.dtype != np.uint8:
        if mask.dtype == bool or (
            np.issubdtype(mask.dtype, np.integer)
            and (mask.size == 0 or (mask.min() >= 0 and mask.max() <= 255))
        ):
            mask = mask.astype(np.uint8, order="C")
        else:
            raise DataError(
                f"mask dtype {mask.dtype} is not uint8 class ids 0..255; remap the mask to uint8"
            )
    else:
        mask = np.array(mask, order="C")
    if instances is None:
        return mask, None
    if instances.shape != mask.shape:
        raise DataError(
            f"instance map shape {instances.shape} differs from mask shape {mask.shape}; "
            f"give an instance map of the mask's size"
        )
    if not np.issubdtype(instances.dtype, np.integer) or (instances.size and instances.min() < 0):
        raise DataError(
            f"instance map must hold non-negative integer ids (0 = none), got dtype "
            f"{instances.dtype}; relabel it"
        )
    if instances.size and instances.max() > np.iinfo(np.int32).max - 1:
        raise DataError("instance ids exceed int32; relabel the instance map with smaller ids")
    return mask, instances.astype(np.int32, copy=True)


def _plain(mask: object) -> bool:
    """Whether ``mask`` is already a C-contiguous 2-D uint8 array (valid as it is)."""
    return (
        isinstance(mask, np.ndarray)
        and mask.ndim == 2
        and mask.dtype == np.uint8
        and mask.flags.c_contiguous
    )


def table_from_instances(mask: np.ndarray, instances: np.ndarray) -> ObjectTable:
    """Object table of a given instance map; each instance's class is its most frequent id."""
    rows = []
    for i, sl in enumerate(ndimage.find_objects(instances)):
        if sl is None:
            continue
        obj_id = i + 1
        fp = instances[sl] == obj_id
        area = int(np.count_nonzero(fp))
        cls = int(np.argmax(np.bincount(mask[sl][fp], minlength=256)))
        rows.append((obj_id, cls, sl[0].start, sl[1].start, sl[0].stop, sl[1].stop, area))
    if not rows:
        return ObjectTable()
    return ObjectTable(np.array(rows, np.int64))


class State:
    """A mask (uint8 HW), its objects and the next free instance id.

    ``instances`` (int32 HW, 0 = none) is the instance map, built on first access from
    ``layer`` (see the module). ``table`` is the object index the events maintain; it is built
    from the instance map when absent, so a state may be constructed by hand from a mask and an
    instance map, which must be 0 on ignore pixels (:meth:`from_mask` ensures it).

    A state does not change: events return a new state and never modify their input, and the
    arrays of states made by :meth:`from_mask` and by events are read-only (the instance map is
    derived from them lazily; copy an array to edit it).
    """

    def __init__(
        self,
        mask: np.ndarray,
        instances: np.ndarray,
        next_id: int,
        table: ObjectTable | None = None,
    ) -> None:
        self.mask = mask
        self.layer = InstanceLayer(GivenBase(instances))
        self.next_id = next_id
        self.table = table

    @classmethod
    def from_layer(
        cls, mask: np.ndarray, layer: InstanceLayer, next_id: int, table: ObjectTable
    ) -> State:
        """A state whose instances are ``layer``'s (what events return)."""
        state = cls.__new__(cls)
        state.mask, state.layer, state.next_id, state.table = mask, layer, next_id, table
        return state

    @classmethod
    def from_mask(
        cls,
        mask: np.ndarray,
        instances: np.ndarray | None = None,
        *,
        connectivity: int = 8,
        background: int = 0,
        ignore: int = 255,
    ) -> State:
        """State of a semantic mask; objects are the given instances or, when None, the
        connected components of each class. Instance ids on ignore pixels are dropped."""
        if instances is None and _plain(mask):
            # label the caller's array, then copy it: the labelling's scratch image is freed
            # before the copy is made, so the two never need fresh memory at once
            classes, comp = label_mask(mask, connectivity, background, ignore)
            mask = read_only(mask.copy())
        else:
            mask, inst = _validate(mask, instances)
            read_only(mask)
            if inst is not None:
                inst[mask == ignore] = 0
                return cls(mask, read_only(inst), int(inst.max(initial=0)) + 1)
            classes, comp = label_mask(mask, connectivity, background, ignore)
        ids = np.arange(1, len(comp) + 1, dtype=np.int64)
        base = TracedBase(mask, ids, comp[:, SEED], comp[:, Y0 : X1 + 1], connectivity)
        rows = np.empty((len(ids), 7), np.int64)
        rows[:, _ID] = ids
        rows[:, _CLS] = classes
        rows[:, _Y0:] = comp[:, Y0:]
        table = ObjectTable(rows)
        return cls.from_layer(mask, InstanceLayer(base), len(ids) + 1, table)

    @classmethod
    def from_instances(
        cls, instances: np.ndarray, *, class_id: int = 1, background: int = 0
    ) -> State:
        """State of a class-agnostic instance map (e.g. SAM masks): every instance becomes an
        object of class ``class_id`` on a ``background`` mask."""
        mask = np.where(np.asarray(instances) > 0, class_id, background).astype(np.uint8)
        return cls.from_mask(mask, instances, background=background)

    @property
    def instances(self) -> np.ndarray:
        """The int32 instance map (0 = none), built on first access; read-only."""
        return self.layer.full()

    def objects(self) -> ObjectTable:
        """The object table (built from the instance map on first use)."""
        if self.table is None:
            self.table = table_from_instances(self.mask, self.instances)
        return self.table

    def footprint(self, i: int) -> np.ndarray:
        """Bool footprint (bbox-sized) of row ``i`` of the object table."""
        table = self.objects()
        return self.layer.footprint(int(table.ids[i]), table.bbox(i))

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape[0], self.mask.shape[1]

    def copy(self) -> State:
        """The same state with a writable copy of the mask (the layer is shared: it is
        immutable)."""
        return State.from_layer(self.mask.copy(), self.layer, self.next_id, self.objects().copy())

    def __repr__(self) -> str:
        n = "?" if self.table is None else len(self.table)
        return f"State(shape={self.shape}, objects={n}, next_id={self.next_id})"

    def check(self) -> None:
        """Raise :class:`DataError` unless the object table matches the instance map exactly
        (ids, tight bboxes, areas, one class per object) and ids are below ``next_id``; for
        tests and debugging (it visits every object)."""
        table = self.objects()
        present = np.unique(self.instances)
        present = present[present > 0]
        if not np.array_equal(present, table.ids):
            raise DataError(
                f"object table ids {table.ids.tolist()} differ from the instance "
                f"map's ids {present.tolist()}"
            )
        if present.size and present[-1] >= self.next_id:
            raise DataError(f"instance id {present[-1]} is not below next_id {self.next_id}")
        for i in range(len(table)):
            obj_id, cls, y0, x0, y1, x1, area = (int(v) for v in table.rows[i])
            whole = self.instances == obj_id
            ys, xs = np.nonzero(whole)
            tight = (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
            if (y0, x0, y1, x1) != tight or area != ys.size:
                raise DataError(
                    f"object {obj_id}: table says bbox {(y0, x0, y1, x1)} area "
                    f"{area}, instance map has bbox {tight} area {ys.size}"
                )
            classes = np.unique(self.mask[whole])
            if classes.tolist() != [cls]:
                raise DataError(
                    f"object {obj_id}: table class {cls}, mask classes {classes.tolist()}"
                )


def extract_objects(
    mask: np.ndarray,
    instances: np.ndarray | None = None,
    *,
    connectivity: int = 8,
    min_area: int = 64,
    background: int = 0,
    ignore: int = 255,
    classes: Iterable[int] | None = None,
) -> list[MaskObject]:
    """The objects of a mask with at least ``min_area`` pixels, sorted by id.

    Objects come from ``instances`` when given, else from connected components of each class.
    Background and ignore pixels never belong to an object; ``classes`` keeps only those ids.
    """
    state = State.from_mask(
        mask, instances, connectivity=connectivity, background=background, ignore=ignore
    )
    table = state.objects()
    rows = table.eligible(min_area=min_area, classes=classes, exclude=(background, ignore))
    return [table.materialise(int(i), state.footprint(int(i))) for i in rows]
