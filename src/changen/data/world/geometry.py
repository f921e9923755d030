"""Small planar-geometry helpers for the sample world: rotated boxes, blobs, polylines."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Point = tuple[float, float]
Polygon = tuple[Point, ...]

#: Fractional bits of the fixed-point coordinates handed to OpenCV drawing (``shift``).
SHIFT = 4
_SCALE = 1 << SHIFT


_CORNER_SIGNS = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


@dataclass(frozen=True)
class Box:
    """A rotated rectangle: centre, ``length`` along ``angle`` (radians), ``width`` across."""

    cx: float
    cy: float
    length: float
    width: float
    angle: float

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors along (u) and across (v) the box."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        return np.array([c, s]), np.array([-s, c])

    def corners(self, grow: float = 0.0) -> np.ndarray:
        """The four corners (4, 2) in order around the box, optionally grown by ``grow``."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        local = _CORNER_SIGNS * (self.length / 2 + grow, self.width / 2 + grow)
        return local @ np.array([[c, s], [-s, c]]) + (self.cx, self.cy)

    def polygon(self) -> Polygon:
        return as_polygon(self.corners())


def as_polygon(points: np.ndarray) -> Polygon:
    """Freeze an (N, 2) array into a tuple of (x, y) float pairs."""
    return tuple((float(x), float(y)) for x, y in points)


def fixed(points: np.ndarray | Polygon) -> np.ndarray:
    """Points as the int32 fixed-point array OpenCV draws with ``shift=SHIFT``."""
    return np.round(np.asarray(points, np.float64) * _SCALE).astype(np.int32)


def blob(
    rng: np.random.Generator,
    cx: float,
    cy: float,
    radius: float,
    roughness: float = 0.18,
    aspect: float = 1.0,
    n: int = 48,
) -> np.ndarray:
    """A smooth random closed outline (n, 2): a circle with a few low radial harmonics."""
    theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    k = np.arange(2, 6)[:, None]
    amp = rng.normal(0.0, roughness, (4, 1)) / k
    phase = rng.uniform(0, 2 * np.pi, (4, 1))
    r = radius * (1.0 + (amp * np.cos(k * theta + phase)).sum(0))
    rot = rng.uniform(0, np.pi)
    x, y = r * np.cos(theta) * aspect, r * np.sin(theta) / aspect
    c, s = np.cos(rot), np.sin(rot)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def smooth_polyline(points: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Chaikin corner cutting: rounds the bends of an open polyline, keeping its end points."""
    for _ in range(rounds):
        a, b = points[:-1], points[1:]
        cut = np.empty((2 * len(a), 2))
        cut[0::2] = 0.75 * a + 0.25 * b
        cut[1::2] = 0.25 * a + 0.75 * b
        points = np.concatenate([points[:1], cut, points[-1:]])
    return points


def along(points: np.ndarray, step: float, start: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Positions (N, 2) and unit tangents (N, 2) every ``step`` along a polyline."""
    seg = np.diff(points, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    s = np.arange(start, cum[-1], step)
    idx = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    t = (s - cum[idx]) / np.maximum(seg_len[idx], 1e-9)
    pos = points[idx] + seg[idx] * t[:, None]
    tangent = seg[idx] / np.maximum(seg_len[idx], 1e-9)[:, None]
    return pos, tangent


def shadow_hull(corners: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The shadow of a vertical prism on flat ground: hull of its base and the shifted base."""
    pts = np.concatenate([corners, corners + offset]).astype(np.float32)
    return cv2.convexHull(pts)[:, 0, :].astype(np.float64)
