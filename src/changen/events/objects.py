"""Objects of a mask and the state the change events edit.

An *object* is either one instance of a given instance map (xView2 polygons, SAM masks) or,
when the source has none, one connected component of one class (4- or 8-connectivity).
Background and ignore pixels are never part of an object. :class:`State` holds a mask, its
instance map and a small table of the objects (id, class, bbox, area) that the events keep up to
date, so a chain of events never has to re-label the whole image.

Labelling costs one ``cv2.connectedComponents`` and one ``cv2.findContours`` over the
foreground; classes that touch each other are split locally, per class, inside the component
they share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage

from changen.errors import ConfigError, DataError

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
            ok &= np.isin(cls, np.fromiter(classes, np.int64))
        ex = np.fromiter(exclude, np.int64)
        if ex.size:
            ok &= ~np.isin(cls, ex)
        return np.flatnonzero(ok)

    def footprint(self, instances: np.ndarray, i: int) -> np.ndarray:
        y0, x0, y1, x1 = self.bbox(i)
        return instances[y0:y1, x0:x1] == self.rows[i, _ID]

    def materialise(self, instances: np.ndarray, i: int) -> MaskObject:
        """The full :class:`MaskObject` of row ``i`` (footprint, centroid, orientation)."""
        y0, x0, y1, x1 = self.bbox(i)
        fp = self.footprint(instances, i)
        (cy, cx), theta = shape_moments(fp)
        return MaskObject(
            id=int(self.rows[i, _ID]),
            class_id=int(self.rows[i, _CLS]),
            bbox=(y0, x0, y1, x1),
            area=int(self.rows[i, _AREA]),
            centroid=(y0 + cy, x0 + cx),
            orientation=theta,
            footprint=fp,
        )

    def copy(self) -> ObjectTable:
        return ObjectTable(self.rows.copy())

    def refreshed(self, instances: np.ndarray, ids: Iterable[int]) -> ObjectTable:
        """Table with the bbox and area of ``ids`` recomputed from ``instances`` after they lost
        pixels (their old bbox still contains them); objects left without pixels are dropped."""
        rows = self.rows.copy()
        gone = []
        for obj_id in ids:
            i = self.index_of(obj_id)
            if i < 0:
                continue
            y0, x0, y1, x1 = self.bbox(i)
            fp = instances[y0:y1, x0:x1] == obj_id
            area = int(np.count_nonzero(fp))
            if area == 0:
                gone.append(i)
                continue
            ys, xs = np.flatnonzero(fp.any(axis=1)), np.flatnonzero(fp.any(axis=0))
            rows[i, 2:] = (y0 + ys[0], x0 + xs[0], y0 + ys[-1] + 1, x0 + xs[-1] + 1, area)
        return ObjectTable(np.delete(rows, gone, axis=0) if gone else rows)


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


def _validate(
    mask: np.ndarray, instances: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        shape = getattr(mask, "shape", None)
        raise DataError(f"mask must be a 2-D (H, W) class-id array, got shape {shape}")
    if mask.dtype != np.uint8:
        if mask.dtype == bool or (
            np.issubdtype(mask.dtype, np.integer)
            and (mask.size == 0 or (mask.min() >= 0 and mask.max() <= 255))
        ):
            mask = mask.astype(np.uint8)
        else:
            raise DataError(
                f"mask dtype {mask.dtype} is not uint8 class ids 0..255; remap the mask to uint8"
            )
    if instances is None:
        return np.ascontiguousarray(mask), None
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
    return np.ascontiguousarray(mask), instances.astype(np.int32, copy=True)


def _foreground(mask: np.ndarray, background: int, ignore: int) -> np.ndarray:
    """uint8 map, non-zero where pixels are neither background nor ignore: the mask itself when
    the background is 0 and no ignore pixel is present (saves a full-size temporary)."""
    if background == 0 and cv2.minMaxLoc(mask)[1] < ignore:
        return mask
    if background == 0 and ignore == 255:
        return cv2.inRange(mask, 1, 254)
    lut = np.full(256, 255, np.uint8)
    lut[[background, ignore]] = 0
    return cv2.LUT(mask, lut)


_SMALL = 1 << 16
"""Images up to this many pixels are labelled with OpenCV's statistics in one call."""


def components(binary: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of a binary uint8 image (non-zero = set).

    Returns the int32 label map (0 = unset, 1..n) and an ``(n, 7)`` int64 array of rows
    ``(label, seed_flat, y0, x0, y1, x1, area)`` sorted by label, where ``seed_flat`` is the
    flat index of one pixel of the component. Large images take their bboxes and areas from the
    border tracer (several times faster than OpenCV's per-pixel statistics), with the
    statistics as the fallback.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    if connectivity == 8 and binary.size > _SMALL:
        n, labels = cv2.connectedComponents(binary, connectivity=8, ltype=cv2.CV_32S)
        if n <= 1:
            return labels, np.zeros((0, 7), np.int64)
        rows = _rows_from_contours(binary, labels, n)
        if rows is not None:
            return labels, rows
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        binary, connectivity=connectivity, ltype=cv2.CV_32S
    )
    return labels, _rows_from_stats(labels, stats)


def _rows_from_contours(binary: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray | None:
    """Rows from the border tracer: bboxes from the outer borders, areas by Pick's theorem
    (pixels of a traced region = shoelace area + steps / 2 + 1, holes subtracted), checked
    against the foreground pixel count."""
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return None
    parent = hierarchy[0, :, 3]
    outer = np.flatnonzero(parent < 0)
    if outer.size != n - 1:
        return None
    lengths = np.fromiter((len(c) for c in contours), np.int64, len(contours))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pts = np.concatenate(contours).reshape(-1, 2).astype(np.int64)
    nxt = np.arange(1, len(pts) + 1)
    nxt[starts + lengths - 1] = starts
    x, y = pts[:, 0], pts[:, 1]
    twice = np.abs(np.add.reduceat(x * y[nxt] - x[nxt] * y, starts))
    steps = np.where(lengths > 1, lengths, 0)
    filled = (twice + steps) // 2 + 1
    area = np.zeros(len(contours), np.int64)
    area[outer] = filled[outer]
    holes = np.flatnonzero(parent >= 0)
    np.subtract.at(area, parent[holes], (twice[holes] - steps[holes]) // 2 + 1)
    area = area[outer]
    if int(area.sum()) != cv2.countNonZero(binary):
        return None
    lo = np.minimum.reduceat(pts, starts)[outer]
    hi = np.maximum.reduceat(pts, starts)[outer] + 1
    seed_x, seed_y = x[starts[outer]], y[starts[outer]]
    ids = labels[seed_y, seed_x].astype(np.int64)
    if np.unique(ids).size != n - 1:
        return None
    rows = np.column_stack(
        [ids, seed_y * labels.shape[1] + seed_x, lo[:, 1], lo[:, 0], hi[:, 1], hi[:, 0], area]
    )
    return rows[np.argsort(ids)]


def _rows_from_stats(labels: np.ndarray, stats: np.ndarray) -> np.ndarray:
    w_img = labels.shape[1]
    rows = np.empty((len(stats) - 1, 7), np.int64)
    for k in range(1, len(stats)):
        x, y, w, h, area = (int(v) for v in stats[k])
        sx = x + int(np.argmax(labels[y, x : x + w] == k))
        rows[k - 1] = (k, y * w_img + sx, y, x, y + h, x + w, area)
    return rows


def _cross_class_labels(
    mask: np.ndarray,
    fg: np.ndarray,
    labels: np.ndarray,
    connectivity: int,
    background: int,
    ignore: int,
) -> np.ndarray:
    """Labels of foreground components that hold more than one class."""
    lo, hi, _, _ = cv2.minMaxLoc(mask, mask=fg)
    if lo == hi:
        return np.zeros(0, np.int32)
    if fg is mask:
        v = mask  # background 0, no ignore: the classes themselves
    elif background == 0 and ignore == 255:
        v = cv2.threshold(mask, 254, 0, cv2.THRESH_TOZERO_INV)[1]
    else:
        rank = np.zeros(256, np.uint8)  # foreground classes -> 1..254, others -> 0
        fg_ids = [c for c in range(256) if c not in (background, ignore)]
        rank[fg_ids] = np.arange(1, len(fg_ids) + 1)
        v = cv2.LUT(mask, rank)
    kernel = cv2.getStructuringElement(
        cv2.MORPH_RECT if connectivity == 8 else cv2.MORPH_CROSS, (3, 3)
    )
    cross = cv2.dilate(v, kernel)
    cv2.compare(cross, v, cv2.CMP_GT, dst=cross)  # a larger class next door...
    cv2.bitwise_and(cross, fg, dst=cross)  # ...of a foreground pixel
    if cv2.countNonZero(cross) == 0:
        return np.zeros(0, np.int32)
    return np.unique(labels[cross > 0])


def _label_semantic(
    mask: np.ndarray, connectivity: int, background: int, ignore: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Instance map, table rows and next id of a semantic mask (components per class).

    Foreground components holding one class are kept as they are; components where classes
    touch are split per class, inside their bbox when they are few, else by labelling each
    class over the whole image (land-cover masks)."""
    fg = _foreground(mask, background, ignore)
    labels, comp = components(fg, connectivity)
    if comp.shape[0] == 0:
        return labels, np.zeros((0, 7), np.int64), 1
    split = _cross_class_labels(mask, fg, labels, connectivity, background, ignore)
    rows = np.column_stack([comp[:, 0], mask.ravel()[comp[:, 1]].astype(np.int64), comp[:, 2:]])
    if split.size == 0:
        return labels, rows, int(comp[-1, 0]) + 1
    spans = comp[split - 1]
    if int(((spans[:, 4] - spans[:, 2]) * (spans[:, 5] - spans[:, 3])).sum()) > mask.size // 4:
        return _label_per_class(mask, connectivity, background, ignore)
    parts = [rows[~np.isin(comp[:, 0], split)]]
    next_id = int(comp[-1, 0]) + 1
    for k, y0, x0, y1, x1 in spans[:, [0, 2, 3, 4, 5]].tolist():
        lab_crop = labels[y0:y1, x0:x1]
        m_crop = mask[y0:y1, x0:x1]
        member = lab_crop == k
        for c in np.unique(m_crop[member]).tolist():
            part = (member & (m_crop == c)).view(np.uint8)
            n, sub, stats, _ = cv2.connectedComponentsWithStats(
                part, connectivity=connectivity, ltype=cv2.CV_32S
            )
            cv2.add(sub, next_id - 1, dst=sub, mask=part)
            np.copyto(lab_crop, sub, where=part.view(bool))
            st = stats[1:].astype(np.int64)
            parts.append(
                np.column_stack(
                    [
                        np.arange(next_id, next_id + n - 1),
                        np.full(n - 1, c, np.int64),
                        st[:, 1] + y0,
                        st[:, 0] + x0,
                        st[:, 1] + st[:, 3] + y0,
                        st[:, 0] + st[:, 2] + x0,
                        st[:, 4],
                    ]
                )
            )
            next_id += n - 1
    return labels, np.concatenate(parts), next_id


def _offset_rows(sub_rows: np.ndarray, cls: int, id_offset: int, y0: int, x0: int) -> np.ndarray:
    """Table rows of components labelled in a crop at ``(y0, x0)``, ids shifted."""
    return np.column_stack(
        [
            sub_rows[:, 0] + id_offset,
            np.full(len(sub_rows), cls, np.int64),
            sub_rows[:, 2:6] + (y0, x0, y0, x0),
            sub_rows[:, 6],
        ]
    )


def _label_per_class(
    mask: np.ndarray, connectivity: int, background: int, ignore: int
) -> tuple[np.ndarray, np.ndarray, int]:
    hist = cv2.calcHist([mask], [0], None, [256], [0, 256]).ravel()
    classes = [c for c in np.flatnonzero(hist).tolist() if c not in (background, ignore)]
    instances = np.zeros(mask.shape, np.int32)
    parts = [np.zeros((0, 7), np.int64)]
    next_id = 1
    for c in classes:
        binary = cv2.compare(mask, c, cv2.CMP_EQ)
        labels, comp = components(binary, connectivity)
        cv2.add(labels, next_id - 1, dst=labels, mask=binary)
        cv2.add(instances, labels, dst=instances)
        parts.append(_offset_rows(comp, c, next_id - 1, 0, 0))
        next_id += comp.shape[0]
    return instances, np.concatenate(parts), next_id


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


@dataclass
class State:
    """A mask (uint8 HW), its instance map (int32 HW, 0 = none) and the next free instance id.

    Events take a state and return a new one; they never modify their input. ``table`` is the
    object index the events maintain; it is built from the instance map when absent, so a state
    may be constructed by hand. Instances must be 0 on ignore pixels (:meth:`from_mask` ensures
    it).
    """

    mask: np.ndarray
    instances: np.ndarray
    next_id: int
    table: ObjectTable | None = field(default=None, repr=False, compare=False)

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
        mask, inst = _validate(mask, instances)
        if inst is None:
            labels, rows, next_id = _label_semantic(mask, connectivity, background, ignore)
            return cls(mask.copy(), labels, next_id, ObjectTable(rows))
        inst[mask == ignore] = 0
        return cls(mask.copy(), inst, int(inst.max(initial=0)) + 1)

    @classmethod
    def from_instances(
        cls, instances: np.ndarray, *, class_id: int = 1, background: int = 0
    ) -> State:
        """State of a class-agnostic instance map (e.g. SAM masks): every instance becomes an
        object of class ``class_id`` on a ``background`` mask."""
        mask = np.where(np.asarray(instances) > 0, class_id, background).astype(np.uint8)
        return cls.from_mask(mask, instances, background=background)

    def objects(self) -> ObjectTable:
        """The object table (built from the instance map on first use)."""
        if self.table is None:
            self.table = table_from_instances(self.mask, self.instances)
        return self.table

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape[0], self.mask.shape[1]

    def copy(self) -> State:
        return State(self.mask.copy(), self.instances.copy(), self.next_id, self.objects().copy())

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
    return [table.materialise(state.instances, int(i)) for i in rows]
