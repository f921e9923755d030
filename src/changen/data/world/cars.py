"""Cars on roads and paved lots: image-only clutter that differs between the two dates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from changen.data.world import palette
from changen.data.world.geometry import Box, along
from changen.data.world.layout import WorldObject
from changen.data.world.occupancy import BUILDING, Occupancy


def _car(rng: np.random.Generator, x: float, y: float, angle: float) -> WorldObject:
    box = Box(x, y, rng.uniform(7.0, 9.0), rng.uniform(3.4, 4.2), angle)
    return WorldObject("car", 0, palette.pick(rng, palette.CARS, 0.05), boxes=(box,), height=1.2)


def place_cars(
    rng: np.random.Generator, objects: Sequence[WorldObject], occ: Occupancy, urbanity: float
) -> tuple[WorldObject, ...]:
    """Cars in the lanes of paved roads and in rows on lots, never on a building."""
    h, w = occ.grid.shape
    cars: list[WorldObject] = []
    for obj in objects:
        if obj.kind == "road" and obj.style != "dirt":
            pos, tan = along(np.asarray(obj.line), 1.0)
            inside = (pos[:, 0] >= 0) & (pos[:, 0] < w) & (pos[:, 1] >= 0) & (pos[:, 1] < h)
            idx = np.flatnonzero(inside)
            n = rng.poisson(len(idx) / 45 * (0.2 + urbanity)) if len(idx) else 0
            for i in rng.choice(idx, size=min(n, len(idx)), replace=False) if n else ():
                lane = rng.choice([-1.0, 1.0]) * obj.width * 0.22
                c = pos[i] + np.array([-tan[i, 1], tan[i, 0]]) * lane
                cars.append(_car(rng, c[0], c[1], float(np.arctan2(tan[i, 1], tan[i, 0]))))
        elif obj.kind == "lot" and obj.style == "asphalt":
            p = np.asarray(obj.polygons[0])
            along_edge, across = p[1] - p[0], p[3] - p[0]
            length, depth = float(np.hypot(*along_edge)), float(np.hypot(*across))
            if depth < 14.0:
                continue
            u, v = along_edge / length, across / depth
            angle = float(np.arctan2(v[1], v[0]))
            for s in np.arange(4.0, length - 3.0, 5.0):
                if rng.random() < 0.55:
                    c = p[0] + u * s + v * 5.5
                    cars.append(_car(rng, c[0], c[1], angle))
    if not cars:
        return ()
    centres = np.array([[c.boxes[0].cx, c.boxes[0].cy] for c in cars])
    keep = occ.codes_at(centres) != BUILDING
    return tuple(c for c, k in zip(cars, keep, strict=True) if k)
