"""Factories for single world objects, shared by the scene generator and the change editor."""

from __future__ import annotations

import numpy as np

from changen.data.world import palette
from changen.data.world.config import WorldConfig
from changen.data.world.geometry import Box, as_polygon, blob
from changen.data.world.layout import WorldObject
from changen.data.world.occupancy import (
    BUILDING,
    BUILDING_BLOCKERS,
    RASTER_MARGIN,
    TREE_BLOCKERS,
    Occupancy,
)


def building_boxes(
    rng: np.random.Generator,
    cx: float,
    cy: float,
    frontage: float,
    depth: float,
    angle: float,
    l_shape: bool,
) -> tuple[Box, ...]:
    """A rectangular footprint, or an L: the main box plus a perpendicular wing at one end."""
    main = Box(cx, cy, frontage, depth, angle)
    if not l_shape:
        return (main,)
    u, v = main.axes()
    su, sv = rng.choice([-1.0, 1.0], 2)
    wing_w = frontage * rng.uniform(0.35, 0.55)
    reach = depth / 2 + depth * rng.uniform(0.5, 1.0)
    centre = np.array([cx, cy]) + u * su * (frontage - wing_w) / 2 + v * sv * reach / 2
    return main, Box(float(centre[0]), float(centre[1]), reach, wing_w, angle + np.pi / 2)


def new_building(
    rng: np.random.Generator,
    config: WorldConfig,
    oid: int,
    cx: float,
    cy: float,
    angle: float,
    occ: Occupancy,
    view: tuple[int, int, int, int],
    frontage: float | None = None,
    blockers: tuple[int, ...] = BUILDING_BLOCKERS,
) -> WorldObject | None:
    """A building at (cx, cy) if it fits the occupancy (it then claims it), else ``None``.

    L-shapes must lie wholly inside ``view`` so that cropping never splits one in two.
    """
    lo, hi = config.building_size
    frontage = frontage if frontage is not None else rng.uniform(lo, hi)
    depth = frontage * rng.uniform(0.55, 1.0)
    big = frontage > lo + 0.7 * (hi - lo)
    l_shape = not big and rng.random() < 0.3
    boxes = building_boxes(rng, cx, cy, frontage, max(depth, lo * 0.6), angle, l_shape)
    polys = [b.corners() for b in boxes]
    if l_shape:
        y0, x0, h, w = view
        pts = np.concatenate(polys)
        if (
            pts[:, 0].min() < x0
            or pts[:, 1].min() < y0
            or pts[:, 0].max() > x0 + w - 1
            or pts[:, 1].max() > y0 + h - 1
        ):
            return None
    if not occ.fits(polys, blockers):
        return None
    occ.claim(polys, BUILDING, config.building_gap + RASTER_MARGIN)
    flat = big or rng.random() < 0.15
    roof = "flat" if flat else ("gable" if rng.random() < 0.6 else "hip")
    height = rng.uniform(4.0, 9.0) if flat else rng.uniform(3.5, 7.0)
    return WorldObject(
        "building",
        oid,
        palette.pick(rng, palette.ROOFS),
        boxes=boxes,
        height=float(height),
        style=roof,
    )


def new_trees(
    rng: np.random.Generator,
    oid: int,
    cx: float,
    cy: float,
    n: int,
    occ: Occupancy,
    radius: float | None = None,
) -> WorldObject | None:
    """A cluster of ``n`` crowns around (cx, cy); crowns on roads, water or buildings dropped."""
    r_mean = radius if radius is not None else rng.uniform(3.0, 6.5)
    spread = r_mean * 0.55 * np.sqrt(n)
    xy = rng.normal(0.0, spread, (n, 2)) + np.array([cx, cy])
    r = r_mean * rng.uniform(0.7, 1.3, n)
    blocked = np.isin(occ.codes_at(xy), TREE_BLOCKERS)
    h, w = occ.grid.shape
    inside = (xy[:, 0] > -r) & (xy[:, 1] > -r) & (xy[:, 0] < w + r) & (xy[:, 1] < h + r)
    keep = ~blocked & inside
    if not keep.any():
        return None
    tone = rng.uniform(0.82, 1.12, n)
    circles = tuple(
        (float(x), float(y), float(rr), float(k))
        for (x, y), rr, k in zip(xy[keep], r[keep], tone[keep], strict=True)
    )
    return WorldObject(
        "tree",
        oid,
        palette.pick(rng, palette.TREES, 0.08),
        circles=circles,
        height=float(r_mean * rng.uniform(0.6, 1.1)),
    )


def new_area(
    rng: np.random.Generator,
    kind: str,
    oid: int,
    polygon: np.ndarray,
    style: str = "",
    pattern: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> WorldObject:
    """A flat area object (bare soil, field, water, lot) with a colour fitting its kind."""
    return WorldObject(
        kind,
        oid,
        area_color(rng, kind, style),
        polygons=(as_polygon(polygon),),
        style=style,
        pattern=pattern,
    )


def area_color(rng: np.random.Generator, kind: str, style: str) -> tuple[float, float, float]:
    if kind == "field":
        return palette.jitter(rng, palette.CROPS[style], 0.07)
    if kind == "lot":
        return palette.jitter(rng, palette.PAVED[style], 0.05)
    if kind == "water":
        return palette.pick(rng, palette.WATERS, 0.08)
    return palette.pick(rng, palette.SOILS, 0.06)


def new_bare(
    rng: np.random.Generator, oid: int, cx: float, cy: float, radius: float
) -> WorldObject:
    return new_area(rng, "bare", oid, blob(rng, cx, cy, radius, 0.25, rng.uniform(1.0, 1.6)))


def new_lot(rng: np.random.Generator, oid: int, box: Box, style: str | None = None) -> WorldObject:
    """A paved rectangle (parking lot, yard, driveway): asphalt or concrete."""
    style = style or ("asphalt" if rng.random() < 0.6 else "concrete")
    return new_area(rng, "lot", oid, box.corners(), style=style)


def crop_pattern(rng: np.random.Generator, angle: float) -> tuple[str, tuple[float, float, float]]:
    """A random crop and its row pattern (row angle, period in pixels, amplitude)."""
    crop = str(rng.choice(list(palette.CROPS)))
    rows = angle + (np.pi / 2 if rng.random() < 0.5 else 0.0)
    amplitude = 0.0 if crop == "stubble" and rng.random() < 0.5 else rng.uniform(0.04, 0.14)
    return crop, (float(rows), float(rng.uniform(3.0, 7.0)), float(amplitude))
