"""A raster of what already stands where, so new objects can be placed without overlaps."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from changen.data.world.geometry import SHIFT, fixed
from changen.data.world.layout import WorldObject

FREE, ROAD, WATER, BUILDING, FIELD, LOT = 0, 1, 2, 3, 4, 5
#: What a new building may not touch, and what a tree crown's centre may not sit on.
BUILDING_BLOCKERS = (ROAD, WATER, BUILDING, FIELD)
TREE_BLOCKERS = (ROAD, WATER, BUILDING, FIELD)
#: Clearance kept around roads (pixels per side) when placing buildings, lots and trees.
ROAD_MARGIN = 2.0
#: Extra growth of claimed buildings so that, once rasterised, two buildings never share a
#: pixel edge or corner (their instances stay separable by connected components).
RASTER_MARGIN = 1.5


class Occupancy:
    """Codes (FREE, ROAD, WATER, BUILDING, FIELD, LOT) painted over the canvas."""

    def __init__(self, height: int, width: int) -> None:
        self.grid = np.zeros((height, width), np.uint8)

    @classmethod
    def of(cls, objects: Iterable[WorldObject], height: int, width: int, gap: float) -> Occupancy:
        """The occupancy of existing objects; buildings and water are grown by ``gap``."""
        occ = cls(height, width)
        codes = {"road": ROAD, "water": WATER, "building": BUILDING, "field": FIELD, "lot": LOT}
        for obj in sorted(objects, key=lambda o: o.layer):
            code = codes.get(obj.kind)
            if code is None:
                continue
            if obj.kind == "road":
                occ.claim_line(np.asarray(obj.line), obj.width + 2 * ROAD_MARGIN, code)
            else:
                grow = {BUILDING: gap + RASTER_MARGIN, WATER: gap}.get(code, 0.0)
                occ.claim([np.asarray(p) for p in obj.footprint()], code, grow)
        return occ

    def _window(self, polygons: Sequence[np.ndarray]) -> tuple[int, int, int, int] | None:
        pts = np.concatenate(polygons)
        h, w = self.grid.shape
        x0, y0 = np.floor(pts.min(0)).astype(int) - 1
        x1, y1 = np.ceil(pts.max(0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            return None
        return int(x0), int(y0), int(x1), int(y1)

    def fits(self, polygons: Sequence[np.ndarray], blockers: Sequence[int]) -> bool:
        """True if the polygons lie (at least partly) on the canvas and touch no blocker."""
        win = self._window(polygons)
        if win is None:
            return False
        x0, y0, x1, y1 = win
        scratch = np.zeros((y1 - y0, x1 - x0), np.uint8)
        for p in polygons:
            cv2.fillPoly(scratch, [fixed(p - (x0, y0))], 1, cv2.LINE_8, SHIFT)
        under = self.grid[y0:y1, x0:x1][scratch > 0]
        lut = np.zeros(256, bool)
        lut[list(blockers)] = True
        return not lut[under].any()

    def claim(self, polygons: Sequence[np.ndarray], code: int, grow: float = 0.0) -> None:
        """Mark the polygons (each grown by ``grow`` pixels) with ``code``."""
        for p in polygons:
            pts = fixed(p)
            cv2.fillPoly(self.grid, [pts], code, cv2.LINE_8, SHIFT)
            if grow > 0:
                cv2.polylines(
                    self.grid, [pts], True, code, max(1, round(2 * grow)), cv2.LINE_8, SHIFT
                )

    def claim_line(self, line: np.ndarray, width: float, code: int) -> None:
        cv2.polylines(
            self.grid, [fixed(line)], False, code, max(1, round(width)), cv2.LINE_8, SHIFT
        )

    def codes_at(self, xy: np.ndarray) -> np.ndarray:
        """Codes under points (N, 2); points off the canvas read as FREE."""
        h, w = self.grid.shape
        xi = np.round(xy[:, 0]).astype(int)
        yi = np.round(xy[:, 1]).astype(int)
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        out = np.zeros(len(xy), np.uint8)
        out[inside] = self.grid[yi[inside], xi[inside]]
        return out
