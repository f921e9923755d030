"""Seeded generation of a scene layout.

Order: roads (some branching off others), water, fields in a rotated grid, bare soil, paved
lots beside roads, buildings in rows along roads then in free neighbourhoods, tree clusters and
hedgerows, and finally cars. Each scene draws an *urbanity* that trades fields and woods for
buildings and lots.
"""

from __future__ import annotations

import numpy as np

from changen.data.world import palette
from changen.data.world.cars import place_cars
from changen.data.world.config import WorldConfig
from changen.data.world.geometry import Box, along, as_polygon, blob, smooth_polyline
from changen.data.world.layout import Layout, WorldObject
from changen.data.world.objects import (
    crop_pattern,
    new_area,
    new_bare,
    new_building,
    new_lot,
    new_trees,
)
from changen.data.world.occupancy import BUILDING, FIELD, LOT, ROAD, ROAD_MARGIN, WATER, Occupancy

_ROAD_STYLES = ("asphalt", "concrete", "dirt")
_ROAD_WIDTHS = {"asphalt": (7.0, 12.0), "concrete": (6.0, 10.0), "dirt": (4.0, 6.5)}


def _count(rng: np.random.Generator, bounds: tuple[int, int], scale: float, weight: float) -> int:
    """A count between the bounds, pulled up by ``weight`` in [0, 1], scaled and rounded."""
    lo, hi = bounds
    x = min(lo + (hi - lo) * weight * rng.uniform(0.6, 1.2), hi) * scale
    return int(x) + int(rng.random() < x - int(x))


class _Builder:
    """Accumulates objects with fresh instance ids while keeping the occupancy up to date."""

    def __init__(
        self,
        rng: np.random.Generator,
        config: WorldConfig,
        height: int,
        width: int,
        view: tuple[int, int, int, int],
    ) -> None:
        self.rng, self.config, self.h, self.w, self.view = rng, config, height, width, view
        self.occ = Occupancy(height, width)
        self.objects: list[WorldObject] = []

    @property
    def next_id(self) -> int:
        return len(self.objects) + 1

    def add(self, obj: WorldObject | None) -> WorldObject | None:
        if obj is not None:
            self.objects.append(obj)
        return obj

    def roads(self) -> list[WorldObject]:
        return [o for o in self.objects if o.kind == "road"]

    def road(self, rural: float) -> None:
        rng, diag = self.rng, float(np.hypot(self.h, self.w))
        existing = self.roads()
        if existing and rng.random() < 0.5:
            base = existing[int(rng.integers(len(existing)))]
            pos, tan = along(np.asarray(base.line), 2.0)
            i = int(rng.integers(len(pos) // 4, max(len(pos) * 3 // 4, len(pos) // 4 + 1)))
            normal = np.array([-tan[i, 1], tan[i, 0]]) * rng.choice([-1.0, 1.0])
            start, t = pos[i], np.linspace(0.0, diag, 4)[:, None]
        else:
            start = rng.uniform(0.15, 0.85, 2) * (self.w, self.h)
            angle = rng.uniform(0, np.pi)
            if rng.random() < 0.5:
                angle = np.round(angle / (np.pi / 2)) * np.pi / 2 + rng.normal(0, 0.05)
            normal = np.array([np.cos(angle), np.sin(angle)])
            t = np.linspace(-diag, diag, 5)[:, None]
        pts = start + t * normal
        bend = rng.uniform(0, 0.12) * diag if rng.random() < 0.5 else 0.0
        pts[1:-1] += rng.normal(0, bend, (len(pts) - 2, 1)) * (-normal[1], normal[0])
        style = str(rng.choice(_ROAD_STYLES, p=(0.6 - 0.3 * rural, 0.25, 0.15 + 0.3 * rural)))
        width = float(rng.uniform(*_ROAD_WIDTHS[style]))
        line = smooth_polyline(pts, 3)
        self.add(
            WorldObject(
                "road",
                self.next_id,
                palette.jitter(rng, palette.ROADS[style]),
                line=as_polygon(line),
                width=width,
                style=style,
            )
        )
        self.occ.claim_line(line, width + 2 * ROAD_MARGIN, ROAD)

    def water(self, size: int) -> None:
        rng = self.rng
        for _ in range(10):
            c = rng.uniform(0, 1, 2) * (self.w, self.h)
            r = rng.uniform(16, 50) * min(1.0, size / 200)
            poly = blob(rng, c[0], c[1], r, 0.15, rng.uniform(1.0, 1.8))
            if self.occ.fits([poly], (ROAD,)):
                self.add(new_area(rng, "water", self.next_id, poly))
                self.occ.claim([poly], WATER, self.config.building_gap)
                return

    def fields(self, n: int) -> None:
        """``n`` adjacent cells of a rotated grid of fields, separated by grass margins."""
        rng, roads = self.rng, self.roads()
        if roads and rng.random() < 0.7:
            line = np.asarray(roads[0].line)
            d = line[len(line) // 2 + 1] - line[len(line) // 2]
            angle = float(np.arctan2(d[1], d[0]))
        else:
            angle = float(rng.uniform(0, np.pi))
        a, b = rng.uniform(50, 110), rng.uniform(35, 80)
        u, v = np.array([np.cos(angle), np.sin(angle)]), np.array([-np.sin(angle), np.cos(angle)])
        reach = int(np.hypot(self.h, self.w) / min(a, b)) + 1
        ij = np.stack(np.meshgrid(np.arange(-reach, reach), np.arange(-reach, reach)), -1)
        ij = ij.reshape(-1, 2).astype(float)
        origin = np.array([self.w, self.h]) / 2 + rng.uniform(0, 1, 2) * (a, b)
        centres = origin + ij[:, :1] * a * u + ij[:, 1:] * b * v
        on = (
            (centres[:, 0] > -a / 4)
            & (centres[:, 0] < self.w + a / 4)
            & (centres[:, 1] > -b / 4)
            & (centres[:, 1] < self.h + b / 4)
        )
        centres = centres[on]
        focus = rng.uniform(0, 1, 2) * (self.w, self.h)
        order = np.argsort(np.hypot(*(centres - focus).T) + rng.uniform(0, a, len(centres)))
        for c in centres[order[:n]]:
            margin = rng.uniform(2.0, 5.0)
            box = Box(float(c[0]), float(c[1]), a - margin, b - margin, angle)
            crop, pattern = crop_pattern(rng, angle)
            self.add(new_area(rng, "field", self.next_id, box.corners(), crop, pattern))
            self.occ.claim([box.corners()], FIELD)
            if rng.random() < 0.3:
                self.hedgerow(box)

    def hedgerow(self, box: Box) -> None:
        corners = box.corners(grow=2.0)
        k = int(self.rng.integers(4))
        edge = np.stack([corners[k], corners[(k + 1) % 4]])
        r = self.rng.uniform(2.5, 4.0)
        pos, _ = along(edge, r * 1.4)
        pos = pos + self.rng.normal(0, r * 0.3, pos.shape)
        if len(pos) == 0:
            return
        circles = tuple(
            (
                float(x),
                float(y),
                float(r * self.rng.uniform(0.8, 1.25)),
                float(self.rng.uniform(0.82, 1.12)),
            )
            for x, y in pos
        )
        self.add(
            WorldObject(
                "tree",
                self.next_id,
                palette.pick(self.rng, palette.TREES, 0.08),
                circles=circles,
                height=float(r * 0.9),
            )
        )

    def lot(self) -> None:
        rng, roads = self.rng, self.roads()
        length, depth = rng.uniform(24, 60), rng.uniform(18, 44)
        if roads:
            road = roads[int(rng.integers(len(roads)))]
            pos, tan = along(np.asarray(road.line), 2.0)
            i = int(rng.integers(len(pos)))
            normal = np.array([-tan[i, 1], tan[i, 0]]) * rng.choice([-1.0, 1.0])
            c = pos[i] + normal * (road.width / 2 + ROAD_MARGIN + 1 + depth / 2)
            angle = float(np.arctan2(tan[i, 1], tan[i, 0]))
        else:
            c, angle = rng.uniform(0, 1, 2) * (self.w, self.h), float(rng.uniform(0, np.pi))
        box = Box(float(c[0]), float(c[1]), length, depth, angle)
        if self.occ.fits([box.corners()], (ROAD, WATER, BUILDING)):
            self.add(new_lot(rng, self.next_id, box))
            self.occ.claim([box.corners()], LOT)

    def buildings_along_roads(self, n: int, keep: float, driveways: float) -> int:
        rng, placed = self.rng, 0
        lo, hi = self.config.building_size
        for road in rng.permutation(np.array(self.roads(), dtype=object)):
            pos, tan = along(np.asarray(road.line), 1.0)
            normal = np.stack([-tan[:, 1], tan[:, 0]], 1)
            frontage = rng.uniform(lo, lo + 0.6 * (hi - lo))
            setback = rng.uniform(3.0, 10.0)
            s = rng.uniform(0, frontage)
            while s < len(pos) and placed < n:
                i = int(s)
                angle = float(np.arctan2(tan[i, 1], tan[i, 0]) + rng.normal(0, 0.03))
                for side in (-1.0, 1.0):
                    if placed >= n or rng.random() > keep:
                        continue
                    f = frontage * rng.uniform(0.85, 1.15)
                    depth = f * 0.8
                    c = pos[i] + normal[i] * side * (road.width / 2 + setback + depth / 2)
                    house = self.add(
                        new_building(
                            rng,
                            self.config,
                            self.next_id,
                            c[0],
                            c[1],
                            angle,
                            self.occ,
                            self.view,
                            f,
                        )
                    )
                    if house is None:
                        continue
                    placed += 1
                    if rng.random() < driveways:
                        mid = (
                            pos[i]
                            + normal[i] * side * (road.width + setback) / 2
                            + tan[i] * rng.uniform(-f / 3, f / 3)
                        )
                        box = Box(
                            float(mid[0]),
                            float(mid[1]),
                            setback + 2.0,
                            rng.uniform(3.5, 5.0),
                            angle + np.pi / 2,
                        )
                        self.add(new_lot(rng, self.next_id, box, "concrete"))
                s += frontage * 1.15 + self.config.building_gap + rng.uniform(1, 6)
        return placed

    def free_buildings(self, n: int) -> None:
        rng = self.rng
        placed: list[WorldObject] = []
        roads = self.roads()
        grid_angle = float(rng.uniform(0, np.pi / 2))
        if roads:
            line = np.asarray(roads[0].line)
            d = line[len(line) // 2 + 1] - line[len(line) // 2]
            grid_angle = float(np.arctan2(d[1], d[0]))
        for _ in range(30 * n):
            if len(placed) >= n:
                return
            if placed and rng.random() < 0.7:
                anchor = placed[int(rng.integers(len(placed)))].boxes[0]
                c = np.array([anchor.cx, anchor.cy]) + rng.normal(0, 25, 2)
            else:
                c = rng.uniform(0, 1, 2) * (self.w, self.h)
            angle = grid_angle + np.pi / 2 * int(rng.integers(2)) + rng.normal(0, 0.04)
            if rng.random() < 0.15:
                angle = rng.uniform(0, np.pi)
            b = self.add(
                new_building(
                    rng, self.config, self.next_id, c[0], c[1], float(angle), self.occ, self.view
                )
            )
            if b is not None:
                placed.append(b)

    def trees(self, density: float) -> None:
        rng = self.rng
        target = density * self.h * self.w / (np.pi * 4.5**2)
        crowns = 0
        for _ in range(400):
            if crowns >= target:
                return
            n = int(min(1 + rng.geometric(0.08), 80))
            c = rng.uniform(0, 1, 2) * (self.w, self.h)
            t = self.add(new_trees(rng, self.next_id, c[0], c[1], n, self.occ))
            crowns += len(t.circles) if t is not None else n


def make_layout(
    rng: np.random.Generator, config: WorldConfig = WorldConfig(), pad: int = 0
) -> Layout:
    """A random scene layout on a ``size + 2·pad`` square canvas whose view is the centre."""
    size = config.size
    h = w = size + 2 * pad
    view = (pad, pad, size, size)
    area, side = (size / 256) ** 2, size / 256
    urban = float(rng.beta(1.4, 1.4))
    biome = float(rng.uniform())
    ground = (
        palette.jitter(rng, palette.mix(palette.GROUND_DRY[0], palette.GROUND_GREEN[0], biome)),
        palette.jitter(rng, palette.mix(palette.GROUND_DRY[1], palette.GROUND_GREEN[1], biome)),
    )
    b = _Builder(rng, config, h, w, view)
    for _ in range(_count(rng, config.roads, side, 0.35 + 0.65 * urban)):
        b.road(1.0 - urban)
    expected_water = config.water_probability * area * (1.3 - 0.6 * urban)
    for _ in range(int(expected_water) + int(rng.random() < expected_water % 1)):
        b.water(size)
    b.fields(_count(rng, config.fields, area, 1.0 - urban))
    for _ in range(_count(rng, config.bare_patches, area, float(rng.uniform()))):
        c = rng.uniform(0, 1, 2) * (w, h)
        b.add(new_bare(rng, b.next_id, c[0], c[1], rng.uniform(10, 35) * min(1.0, size / 160)))
    for _ in range(_count(rng, config.lots, area, urban)):
        b.lot()
    n_build = _count(rng, config.buildings, area, urban)
    n_build -= b.buildings_along_roads(n_build, 0.45 + 0.5 * urban, 0.2 + 0.6 * urban)
    b.free_buildings(n_build)
    b.trees(config.tree_density * rng.uniform(0.3, 1.8) * (1.3 - 0.6 * urban))
    objects = tuple(b.objects)
    if config.cars:
        objects += place_cars(rng, objects, b.occ, urban)
    return Layout(h, w, view, ground, objects, int(rng.integers(2**63)), urban)
