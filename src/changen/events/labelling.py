"""Objects of a mask without a label map: run linking and border tracing, pixels on demand.

Events edit one to five objects per call, so building a full int32 label map of every object
(and its per-pixel statistics) costs more than the events themselves. Instead the objects are
found from their outlines: the whole foreground at once when no two classes touch (one dilation
tells), else each class on its own. The foreground first goes to ``cv2.findContoursLinkRuns``,
which links the horizontal runs of set pixels into one cycle of run ends per component (and
one per hole); without holes each cycle gives its component's bbox, seed (the start of its
first run: the top-left pixel in raster order) and pixel count (see :func:`_run_rows`), about
twice as fast as tracing borders. Otherwise (a hole, or OpenCV older than 4.9) the borders are
traced with ``cv2.findContours`` (``RETR_CCOMP``: outer borders of the 8-connected components,
then the borders of their holes). Every outer border is one component: its bbox is the bbox of
the border points, its first point a seed, and its pixel count follows from Pick's theorem — a
traced region holds ``shoelace area + steps / 2 + 1`` pixels, a hole ``shoelace area - steps /
2 + 1``. Both ways check the counts against the set pixels. The border tracer cannot follow
4-connectivity; that, and a failed check, fall back to ``cv2.connectedComponentsWithStats``.

The pixels of one component are recovered exactly by :func:`flood_footprint`: a flood fill of
equal values from its seed, inside its bbox, with the same connectivity.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

SEED, Y0, X0, Y1, X1, AREA = range(6)
"""Columns of component rows: flat index of the seed pixel, bbox (end exclusive), pixel count."""

_SCAN_LIMIT = 16
"""Above this many candidate class ids, find the present ones with a histogram."""

_RUNS = hasattr(cv2, "findContoursLinkRuns")
"""Whether OpenCV links runs (4.9 and later); else only the border tracer is used."""


def compare_scalar(
    src: np.ndarray, value: int, op: int, dst: np.ndarray | None = None
) -> np.ndarray:
    """``cv2.compare(src, value, op)`` with a scalar ``value``: uint8, 255 where it holds."""
    # OpenCV accepts a scalar second operand; its stubs list only arrays.
    return cv2.compare(src, value, op, dst=dst)  # type: ignore[call-overload]


def object_classes(mask: np.ndarray, background: int, ignore: int) -> tuple[list[int], int]:
    """The class ids present in ``mask`` other than ``background`` and ``ignore`` (every id of
    the value range when it is short: absent ones cost one comparison each, else those a
    histogram finds), and the largest value of ``mask``."""
    if mask.size == 0:
        return [], 0
    lo, hi = (int(v) for v in cv2.minMaxLoc(mask)[:2])
    top = hi
    if ignore in (lo, hi):
        valid = compare_scalar(mask, ignore, cv2.CMP_NE)
        if cv2.countNonZero(valid) == 0:
            return [], top
        lo, hi = (int(v) for v in cv2.minMaxLoc(mask, mask=valid)[:2])
    ids = [c for c in range(lo, hi + 1) if c not in (background, ignore)]
    if len(ids) > _SCAN_LIMIT:
        hist = cv2.calcHist([mask], [0], None, [256], [0, 256]).ravel()
        ids = [c for c in ids if hist[c] > 0]
    return ids, top


def label_mask(
    mask: np.ndarray, connectivity: int = 8, background: int = 0, ignore: int = 255
) -> tuple[np.ndarray, np.ndarray]:
    """Class ids ``(n,)`` and rows ``(n, 6)`` (see :data:`SEED`...) of the connected components of
    every class of ``mask`` but ``background`` and ``ignore``, sorted by class, then seed.

    With 8-connectivity, when no two classes touch (buildings, cars: the common case), the
    components of the classes are those of the foreground, found once; otherwise (land cover)
    each class is traced on its own."""
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    classes, top = object_classes(mask, background, ignore)
    if connectivity == 8 and classes:
        fg = _foreground(mask, classes, background, top)
        if len(classes) == 1 or not _classes_touch(mask, fg):
            rows = _foreground_rows(fg)
            if rows is not None:
                return _by_class(mask.ravel()[rows[:, SEED]].astype(np.int64), rows)
    found = _per_class(mask, classes, connectivity)
    if not found:
        return np.zeros(0, np.int64), np.zeros((0, 6), np.int64)
    return _by_class(
        np.concatenate([np.full(len(r), c, np.int64) for c, r in found]),
        np.concatenate([r for _, r in found]),
    )


def _foreground_rows(fg: np.ndarray) -> np.ndarray | None:
    """Rows of the 8-connected components of a foreground map, from linked runs or, when a
    component has a hole, traced borders; None when the traced areas do not add up either."""
    rows = _run_rows(fg, cv2.countNonZero(fg)) if _RUNS else None
    if rows is None:
        trace = _Trace.of(fg, 0)
        rows, _ = _trace_rows(trace.contours, trace.parents, fg.shape[1])
        if int(rows[:, AREA].sum()) != trace.count:
            return None
    return rows


def _per_class(
    mask: np.ndarray, classes: list[int], connectivity: int
) -> list[tuple[int, np.ndarray]]:
    """Each class and the rows of its components, one trace per class (the rows of all traces
    computed in one vectorised pass), or OpenCV's statistics (4-connectivity, failed check)."""
    if not classes:
        return []
    binary = np.empty_like(mask)
    if connectivity == 4:
        return [
            (c, stats_rows(compare_scalar(mask, c, cv2.CMP_EQ, dst=binary), 4)) for c in classes
        ]
    traces = [_Trace.of(compare_scalar(mask, c, cv2.CMP_EQ, dst=binary), c) for c in classes]
    sizes = [len(t.contours) for t in traces]
    offsets = np.cumsum([0, *sizes[:-1]]).tolist()
    parents = np.concatenate(
        [np.where(t.parents >= 0, t.parents + k, -1) for t, k in zip(traces, offsets, strict=True)]
    )
    contours = [c for t in traces for c in t.contours]
    rows, outer = _trace_rows(contours, parents, mask.shape[1])
    owner = np.repeat(np.arange(len(traces)), sizes)[outer]
    good = np.bincount(owner, rows[:, AREA], len(traces)) == [t.count for t in traces]
    return [
        (t.class_id, rows[owner == k] if good[k] else stats_rows(mask == t.class_id, 8))
        for k, t in enumerate(traces)
    ]


def _by_class(classes: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((rows[:, SEED], classes))
    return classes[order], rows[order]


def _foreground(mask: np.ndarray, classes: list[int], background: int, top: int) -> np.ndarray:
    """uint8 map, non-zero on the pixels of ``classes``: the mask itself when those are all
    its non-zero pixels (background 0, no ignore pixel: ``top``, the mask's largest value, is
    the last class), saving a full-size temporary."""
    if len(classes) == 1:
        return compare_scalar(mask, classes[0], cv2.CMP_EQ)
    consecutive = classes == list(range(1, classes[-1] + 1))
    if background == 0 and consecutive and top == classes[-1]:
        return mask
    lut = np.zeros(256, np.uint8)
    lut[classes] = 255
    return cv2.LUT(mask, lut)


_NEIGHBOURS = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))


def _classes_touch(mask: np.ndarray, fg: np.ndarray) -> bool:
    """Whether a foreground pixel has an 8-neighbour of another foreground class: then some
    pixel sees a larger class id next to it (non-foreground pixels count as 0)."""
    v = mask if fg is mask else cv2.bitwise_and(mask, fg)
    # the 3x3 maximum is never below the pixel: their largest difference says whether above
    return cv2.norm(cv2.dilate(v, _NEIGHBOURS), v, cv2.NORM_INF, mask=fg) > 0


def component_rows(binary: np.ndarray, connectivity: int = 8) -> np.ndarray:
    """Rows ``(n, 6)`` (see :data:`SEED`...) of the components of a binary uint8 image
    (non-zero = set), sorted by seed."""
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    if connectivity == 8:
        trace = _Trace.of(binary, 1)
        rows, _ = _trace_rows(trace.contours, trace.parents, binary.shape[1])
        if int(rows[:, AREA].sum()) == trace.count:
            return rows[np.argsort(rows[:, SEED], kind="stable")]
    return stats_rows(binary, connectivity)


def stats_rows(binary: np.ndarray, connectivity: int) -> np.ndarray:
    """Component rows of a binary (bool or uint8) image from OpenCV's per-pixel statistics
    (slower; any connectivity). The seed is the component's first pixel in raster order."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(
        binary.view(np.uint8), connectivity=connectivity, ltype=cv2.CV_32S
    )
    width = binary.shape[1]
    rows = np.empty((len(stats) - 1, 6), np.int64)
    for k in range(1, len(stats)):
        x, y, w, h, area = (int(v) for v in stats[k])
        sx = x + int(np.argmax(labels[y, x : x + w] == k))
        rows[k - 1] = (y * width + sx, y, x, y + h, x + w, area)
    return rows[np.argsort(rows[:, SEED], kind="stable")]


def flood_footprint(
    image: np.ndarray, seed: int, bbox: tuple[int, int, int, int], connectivity: int
) -> np.ndarray:
    """Bool footprint (bbox-sized) of the pixels connected to the flat index ``seed`` that hold
    its value: the component it seeds, when ``bbox`` is that component's bbox."""
    y0, x0, y1, x1 = bbox
    sy, sx = divmod(int(seed), image.shape[1])
    filled = np.zeros((y1 - y0 + 2, x1 - x0 + 2), np.uint8)
    flags = connectivity | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
    crop = image[y0:y1, x0:x1].copy()  # OpenCV wants a writable image, even to read it
    cv2.floodFill(crop, filled, (sx - x0, sy - y0), 0, 0, 0, flags)
    return filled[1:-1, 1:-1].view(bool)


class _Trace:
    """The borders of one class (or binary image) as ``cv2.findContours`` returns them."""

    __slots__ = ("class_id", "contours", "count", "parents")

    def __init__(
        self, class_id: int, contours: Sequence[np.ndarray], parents: np.ndarray, count: int
    ) -> None:
        self.class_id, self.contours, self.parents = class_id, contours, parents
        self.count = count

    @classmethod
    def of(cls, binary: np.ndarray, class_id: int) -> _Trace:
        contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        if hierarchy is None:
            return cls(class_id, (), np.zeros(0, np.int64), 0)
        return cls(class_id, contours, hierarchy[0, :, 3], cv2.countNonZero(binary))


def _trace_rows(
    contours: Sequence[np.ndarray], parents: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the components whose outer borders are among ``contours`` (``parents``: the
    index of each hole's outer border, -1 for outer borders), and the indices of those borders.

    ``CHAIN_APPROX_SIMPLE`` keeps only the ends of straight runs; the number of unit steps
    between two kept points is their chessboard distance, so Pick's theorem still applies."""
    if not contours:
        return np.zeros((0, 6), np.int64), np.zeros(0, np.int64)
    lengths = np.fromiter(map(len, contours), np.int64, len(contours))
    starts = np.zeros(len(contours), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    pts = np.concatenate(contours).reshape(-1, 2)
    x, y = pts[:, 0].astype(np.int64), pts[:, 1].astype(np.int64)
    x_next, y_next = _next_point(x, starts, lengths), _next_point(y, starts, lengths)
    twice = np.abs(np.add.reduceat(x * y_next - x_next * y, starts))
    dx, dy = np.abs(x_next - x), np.abs(y_next - y)
    steps = np.add.reduceat(np.maximum(dx, dy, out=dx), starts)
    outer = np.flatnonzero(parents < 0)
    area = (twice + steps) // 2 + 1
    if outer.size < len(contours):
        holes = np.flatnonzero(parents >= 0)
        np.subtract.at(area, parents[holes], (twice[holes] - steps[holes]) // 2 + 1)
    first = starts[outer]
    rows = np.column_stack(
        [
            y[first] * width + x[first],
            np.minimum.reduceat(y, starts)[outer],
            np.minimum.reduceat(x, starts)[outer],
            np.maximum.reduceat(y, starts)[outer] + 1,
            np.maximum.reduceat(x, starts)[outer] + 1,
            area[outer],
        ]
    )
    return rows, outer


def _next_point(v: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each contour's coordinates shifted by one point, the last followed by the first."""
    out = np.empty_like(v)
    out[:-1] = v[1:]
    out[starts + lengths - 1] = v[starts]
    return out


def _run_rows(binary: np.ndarray, count: int) -> np.ndarray | None:
    """Rows of the components of a binary uint8 image with ``count`` set pixels, from
    ``cv2.findContoursLinkRuns``; None when a component has a hole (or the areas do not add up
    to ``count``): then the border tracer decides (:func:`_foreground_rows`).

    That function links the horizontal runs of set pixels of successive rows (8-connected) into
    one cycle of run ends per outer border and per hole, outer cycles first, each starting at
    the start of its first run in raster order (an outer cycle: its component's seed). Along a
    cycle a point reached downwards ends a run and one reached upwards starts one; points
    reached along a row alternate, and a cycle's first point is a start. A cycle's run ends
    ``e`` and starts ``s`` give ``sum(e + 1) - sum(s)``: its component's pixel count when the
    component has no hole (all its run ends are then on that one cycle), minus the hole's pixel
    count for a hole's cycle."""
    contours, _ = cv2.findContoursLinkRuns(binary)
    if not contours:
        return np.zeros((0, 6), np.int64) if count == 0 else None
    lengths = np.fromiter(map(len, contours), np.intp, len(contours))
    starts = lengths.cumsum() - lengths
    pts = np.concatenate(contours).reshape(-1, 2)
    x, y = pts[:, 0], pts[:, 1]
    dy = np.empty_like(y)
    np.subtract(y[1:], y[:-1], out=dy[1:])
    dy[starts] = -1  # a cycle's first point starts a run, as a point reached upwards does
    contrib = x * dy + (dy > 0)  # reached downwards: an end, e + 1; upwards: a start, -s
    flat = (dy == 0).nonzero()[0]
    if flat.size:
        contrib[flat] = _along_rows(x, dy, flat)
    area = np.add.reduceat(contrib, starts, dtype=np.int64)
    if area.min() <= 0 or int(area.sum()) != count:
        return None
    rows = np.empty((len(starts), 6), np.int64)
    rows[:, Y0] = y[starts]
    rows[:, SEED] = rows[:, Y0] * binary.shape[1] + x[starts]
    rows[:, X0] = np.minimum.reduceat(x, starts)
    rows[:, Y1 : X1 + 1] = np.maximum.reduceat(pts[:, ::-1], starts) + 1
    rows[:, AREA] = area
    return rows


def _along_rows(x: np.ndarray, dy: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Terms ``e + 1`` (run end) or ``-s`` (run start) of the points ``flat`` of the cycles,
    those reached along a row (never a cycle's first point): ends and starts alternate along
    such a chain of points, which follows a start (reached upwards) or an end (downwards)."""
    before = dy[flat - 1]
    is_end = before < 0
    chained = before == 0
    if chained.any():
        index = np.arange(flat.size)
        head = np.maximum.accumulate(np.where(chained, 0, index))
        is_end = is_end[head] ^ ((index - head) & 1).astype(bool)
    xs = x[flat]
    return np.where(is_end, xs + 1, -xs)
