"""Turn a :class:`Layout` into pixels: an RGB image, an OpenEarthMap mask and instance ids.

Objects are painted in layer order into a colour map, an intrinsic shading map (roof faces,
crown relief, field rows, water depth), a cast-shadow map and a material map; texture noise is
modulated per material, then the acquisition (:class:`Look`: sun, season, gain, gamma, blur,
sensor noise) is applied. Labels come from the same polygons, so they match pixel for pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from changen.data.world.geometry import SHIFT, Box, fixed, shadow_hull
from changen.data.world.layout import GROUND_CLASS, Layout, WorldObject
from changen.data.world.texture import make_textures, uniform_noise

MATERIALS = ("ground", "bare", "field", "water", "lot", "road", "tree", "building", "car")
_MAT = {name: i for i, name in enumerate(MATERIALS)}
#: Per material: coarse mottling, fine grain, bush speckles, vegetation (season) weight.
_COARSE = np.array([0.10, 0.16, 0.05, 0.04, 0.05, 0.04, 0.10, 0.02, 0.0], np.float32)
_FINE = np.array([0.06, 0.05, 0.05, 0.012, 0.035, 0.035, 0.22, 0.03, 0.02], np.float32)
_SHRUB = np.array([0.45, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], np.float32)
_VEG = np.array([1.0, 0.2, 0.7, 0.0, 0.0, 0.0, 0.6, 0.0, 0.0], np.float32)
#: Colour gain per unit of season on vegetation: drier (> 0) and greener (< 0, per unit of -season).
_DRY = np.array([0.2, 0.05, -0.2], np.float32)
_LUSH = np.array([-0.15, 0.06, -0.1], np.float32)
_SKYLIGHT = np.array([2.0, 5.0, 14.0], np.float32)


@dataclass(frozen=True)
class Look:
    """How a layout is imaged: sun, shadows, season, radiometry and sensor.

    ``sun_azimuth`` is the direction *towards* the sun in image coordinates, in degrees
    (0 = +x, 90 = +y, i.e. down the image); shadows fall the opposite way, ``shadow_length``
    pixels per pixel of height. ``season`` tints vegetation: > 0 drier, < 0 greener.
    """

    sun_azimuth: float = 110.0
    shadow_length: float = 1.0
    shadow_depth: float = 0.5
    season: float = 0.0
    gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gamma: float = 1.0
    blur: float = 0.6
    texture: float = 1.0
    sensor_noise: float = 2.0

    def sun(self) -> np.ndarray:
        a = np.deg2rad(self.sun_azimuth)
        return np.array([np.cos(a), np.sin(a)])


def _rgb(values: np.ndarray) -> tuple[float, float, float]:
    r, g, b = (float(v) for v in values)
    return r, g, b


def random_look(rng: np.random.Generator, texture: float = 1.0, sensor_noise: float = 2.0) -> Look:
    """A plausible acquisition: morning-to-noon sun, mild radiometric variation."""
    return Look(
        sun_azimuth=float(rng.uniform(40.0, 140.0)),
        shadow_length=float(rng.uniform(0.7, 1.4)),
        shadow_depth=float(rng.uniform(0.3, 0.45)),
        season=float(rng.normal(0.0, 0.3)),
        gain=_rgb(rng.normal(1.0, 0.05) * rng.normal(1.0, 0.02, 3)),
        gamma=float(rng.uniform(0.92, 1.08)),
        blur=float(rng.uniform(0.45, 0.8)),
        texture=texture,
        sensor_noise=sensor_noise,
    )


class _Canvas:
    """The maps objects are painted into; image maps exist only when an image is wanted."""

    def __init__(self, layout: Layout, look: Look | None) -> None:
        h, w = layout.height, layout.width
        self.mask = np.full((h, w), GROUND_CLASS, np.uint8)
        self.inst = np.zeros((h, w), np.int32)
        self.look = look
        if look is None:
            return
        self.tex = make_textures(layout.texture_seed, h, w)
        base, alt = (np.asarray(c, np.float32) for c in layout.ground)
        mix = np.clip(self.tex.patch * np.float32(0.4) + np.float32(0.5), 0.0, 1.0)
        self.color = mix[..., None] * (alt - base)
        self.color += base
        self.shade = np.ones((h, w), np.float32)
        self.shadow = np.ones((h, w), np.float32)
        self.mat = np.zeros((h, w), np.uint8)

    def label(self, obj: WorldObject, polygons: list[np.ndarray]) -> None:
        class_id = _class_id(obj)
        for p in polygons:
            pts = [fixed(p)]
            cv2.fillPoly(self.mask, pts, class_id, cv2.LINE_8, SHIFT)
            cv2.fillPoly(self.inst, pts, obj.id, cv2.LINE_8, SHIFT)

    def body(
        self,
        obj: WorldObject,
        polygon: np.ndarray,
        shade: float = 1.0,
        color: tuple[float, float, float] | None = None,
    ) -> None:
        """Paint a polygon's colour, shading and material (clearing shadows beneath it)."""
        pts = [fixed(polygon)]
        cv2.fillPoly(self.color, pts, color or obj.color, cv2.LINE_8, SHIFT)
        cv2.fillPoly(self.shade, pts, shade, cv2.LINE_8, SHIFT)
        cv2.fillPoly(self.shadow, pts, 1.0, cv2.LINE_8, SHIFT)
        cv2.fillPoly(self.mat, pts, _MAT[obj.kind], cv2.LINE_8, SHIFT)

    def cast(self, corners: np.ndarray, height: float, look: Look) -> None:
        """The shadow of a prism of this base and height, on whatever is below."""
        offset = -look.sun() * height * look.shadow_length
        cv2.fillPoly(
            self.shadow, [fixed(shadow_hull(corners, offset))], look.shadow_depth, cv2.LINE_8, SHIFT
        )

    def roi(self, polygons: list[np.ndarray], grow: float = 0.0) -> tuple[slice, slice] | None:
        pts = np.concatenate(polygons)
        h, w = self.mask.shape
        x0, y0 = np.maximum(np.floor(pts.min(0) - grow).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(pts.max(0) + grow).astype(int) + 1, (w, h))
        if x1 <= x0 or y1 <= y0:
            return None
        return slice(y0, y1), slice(x0, x1)


def _class_id(obj: WorldObject) -> int:
    """The mask class of an object that is labelled (every kind but ``car``)."""
    class_id = obj.class_id
    assert class_id is not None, f"{obj.kind!r} objects are not painted into the mask"
    return class_id


def _area(cv: _Canvas, obj: WorldObject) -> None:
    polys = [np.asarray(p) for p in obj.footprint()]
    cv.label(obj, polys)
    if cv.look is None:
        return
    win = cv.roi(polys)
    under = cv.color[win].copy() if win is not None and obj.kind == "bare" else None
    for p in polys:
        cv.body(obj, p)
    if win is None:
        return
    inside = cv.inst[win] == obj.id
    if obj.kind == "field" and obj.pattern[2] > 0:
        angle, period, amplitude = obj.pattern
        ys, xs = np.ogrid[win[0], win[1]]
        phase = (xs * np.cos(angle) + ys * np.sin(angle)) * (2 * np.pi / period)
        rows = (1.0 + amplitude * np.sin(phase)).astype(np.float32)
        cv.shade[win][inside] = rows[inside]
    elif obj.kind == "water":
        depth = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 3)
        cv.shade[win][inside] = 1.25 - 0.4 * np.minimum(depth[inside] / 10.0, 1.0)
    elif under is not None:
        edge = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 3)[inside]
        alpha = (0.45 + 0.55 * np.minimum(edge / 4.0, 1.0))[:, None]
        cv.color[win][inside] = under[inside] * (1.0 - alpha) + cv.color[win][inside] * alpha


def _road(cv: _Canvas, obj: WorldObject) -> None:
    line = [fixed(np.asarray(obj.line))]
    width = max(1, round(obj.width))
    cv2.polylines(cv.mask, line, False, _class_id(obj), width, cv2.LINE_8, SHIFT)
    cv2.polylines(cv.inst, line, False, obj.id, width, cv2.LINE_8, SHIFT)
    if cv.look is None:
        return
    for target, value in ((cv.shade, 1.0), (cv.shadow, 1.0), (cv.mat, _MAT["road"])):
        cv2.polylines(target, line, False, value, width, cv2.LINE_8, SHIFT)
    if obj.style == "dirt":
        cv2.polylines(cv.color, line, False, obj.color, width, cv2.LINE_8, SHIFT)
        return
    edge = tuple(min(c * 1.25, 255.0) for c in obj.color)
    cv2.polylines(cv.color, line, False, edge, width, cv2.LINE_8, SHIFT)
    cv2.polylines(cv.color, line, False, obj.color, max(1, width - 2), cv2.LINE_8, SHIFT)


def _discs(target: np.ndarray, xy: np.ndarray, r: np.ndarray, value: np.ndarray | float) -> None:
    """Filled circles (centres (N, 2), radii (N,)) painted in order with their values."""
    values = np.broadcast_to(np.asarray(value, np.float64), r.shape).tolist()
    for (x, y), radius, v in zip(fixed(xy).tolist(), fixed(r).tolist(), values, strict=True):
        cv2.circle(target, (x, y), radius, v, -1, cv2.LINE_8, SHIFT)


def _trees(cv: _Canvas, obj: WorldObject) -> None:
    c = np.asarray(obj.circles)
    look = cv.look
    offset = -look.sun() * obj.height * look.shadow_length if look else np.zeros(2)
    reach = c[:, 2].max() + np.abs(offset).max() + 1
    win = cv.roi([c[:, :2]], grow=reach)
    if win is None:
        return
    origin = np.array([win[1].start, win[0].start], np.float64)
    level = np.zeros(cv.mask[win].shape, np.float32)
    shadow = np.zeros_like(level)
    xy, r, tone = c[:, :2] - origin, c[:, 2], c[:, 3]
    _discs(shadow, xy, r, 1.0)
    crown = shadow > 0  # the footprint: full crowns only, whatever the sun
    if look is not None:
        shadow[:] = 0.0
        _discs(shadow, xy + offset, r, 1.0)
        lit = look.sun()[None, :] * r[:, None]
        centres = np.stack([xy, xy + 0.25 * lit, xy + 0.4 * lit], axis=1).reshape(-1, 2)
        radii = np.stack([r, 0.7 * r, 0.38 * r], axis=1).reshape(-1)
        values = (tone[:, None] * [0.6, 0.8, 1.0]).reshape(-1)
        _discs(level, centres, radii, values)
    cv.mask[win][crown] = _class_id(obj)
    cv.inst[win][crown] = obj.id
    if look is None:
        return
    cv.shadow[win][(shadow > 0) & ~crown] = look.shadow_depth
    cv.shadow[win][crown] = 1.0
    cv.shade[win][crown] = level[crown]
    cv.color[win][crown] = obj.color
    cv.mat[win][crown] = _MAT["tree"]


def _roof_faces(box: Box, style: str) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Roof planes as (polygon, outward horizontal normal or None for flat)."""
    u, v = box.axes()
    c = np.array([box.cx, box.cy])
    lu, wv = u * box.length / 2, v * box.width / 2
    if style == "gable":
        return [
            (np.stack([c - lu, c + lu, c + lu + wv, c - lu + wv]), v),
            (np.stack([c - lu, c + lu, c + lu - wv, c - lu - wv]), -v),
        ]
    if style == "hip":
        ridge = u * max(box.length / 2 - box.width / 2, 0.0)
        return [
            (np.stack([c - lu + wv, c + lu + wv, c + ridge, c - ridge]), v),
            (np.stack([c - lu - wv, c + lu - wv, c + ridge, c - ridge]), -v),
            (np.stack([c + lu + wv, c + lu - wv, c + ridge]), u),
            (np.stack([c - lu + wv, c - lu - wv, c - ridge]), -u),
        ]
    return [(box.corners(), None)]


def _building(cv: _Canvas, obj: WorldObject) -> None:
    corners = [b.corners() for b in obj.boxes]
    if obj.class_id is not None:
        cv.label(obj, corners)
    look = cv.look
    if look is None:
        return
    for p in corners:
        cv.cast(p, obj.height, look)
    sun = look.sun()
    for box in obj.boxes:
        for face, normal in _roof_faces(box, obj.style):
            if normal is None:
                cv.body(obj, face, 0.8)
                cv.body(obj, box.corners(grow=-1.2), 0.95)
            else:
                cv.body(obj, face, float(0.76 + 0.24 * normal @ sun))
    if obj.kind == "car":
        box = obj.boxes[0]
        glass = Box(box.cx, box.cy, box.length * 0.4, box.width * 0.8, box.angle)
        cv.body(obj, glass.corners(), 0.5)


_PAINTERS = {
    "bare": _area,
    "field": _area,
    "water": _area,
    "lot": _area,
    "road": _road,
    "tree": _trees,
    "building": _building,
    "car": _building,
}


def rasterize_labels(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """The canvas-sized class mask (uint8) and instance map (int32) of a layout."""
    cv = _Canvas(layout, None)
    for obj in layout.ordered():
        if obj.class_id is not None:
            _PAINTERS[obj.kind](cv, obj)
    return cv.mask, cv.inst


def render_layout(
    layout: Layout, look: Look, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canvas-sized RGB uint8 image, class mask and instance map; ``rng`` draws sensor noise."""
    cv = _Canvas(layout, look)
    for obj in layout.ordered():
        _PAINTERS[obj.kind](cv, obj)
    tex, mat = cv.tex, cv.mat
    lum = 1.0 + look.texture * (
        _COARSE[mat] * tex.coarse + _FINE[mat] * tex.fine - _SHRUB[mat] * tex.shrub
    )
    lum *= cv.shade
    lum *= cv.shadow
    image = cv.color * lum[..., None]
    if look.season:
        shift = _DRY if look.season > 0 else _LUSH
        tint = 1.0 + np.float32(abs(look.season)) * _VEG[:, None] * shift
        image *= tint[mat]
    image += (1.0 - cv.shadow)[..., None] * _SKYLIGHT
    if look.blur > 0:
        image = cv2.GaussianBlur(image, (0, 0), look.blur)
    image = np.clip(image * (np.asarray(look.gain, np.float32) / 255.0), 0.0, 1.0)
    if look.gamma != 1.0:
        image **= np.float32(look.gamma)
    image *= 255.0
    if look.sensor_noise > 0:
        image += uniform_noise(rng, image.shape) * np.float32(look.sensor_noise)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), cv.mask, cv.inst
