"""The vector description of a sample-world scene: objects first, pixels later.

A :class:`Layout` is an immutable list of :class:`WorldObject` (kind, instance id, geometry,
height, colour, style) on a canvas; :mod:`.render` turns it into image, mask and instances.
Change pairs edit the layout, never the pixels, so both dates are exact renderings of one world.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from changen.data.world.geometry import Box, Point, Polygon

RGB = tuple[float, float, float]

#: OpenEarthMap class id painted for each object kind (``None``: image only, e.g. cars).
CLASS_OF_KIND: dict[str, int | None] = {
    "bare": 1,
    "field": 7,
    "water": 6,
    "lot": 3,
    "road": 4,
    "tree": 5,
    "building": 8,
    "car": None,
}
#: Drawing order: higher layers are painted over lower ones.
LAYER_OF_KIND: dict[str, int] = {
    "bare": 0,
    "field": 0,
    "water": 1,
    "lot": 2,
    "road": 3,
    "tree": 4,
    "building": 5,
    "car": 6,
}
#: Class id of open ground that no object covers.
GROUND_CLASS = 2  # rangeland


@dataclass(frozen=True)
class WorldObject:
    """One object of the world.

    Geometry depends on the kind: ``boxes`` (buildings: one box, or two for an L-shape; cars),
    ``polygons`` (fields, lots, bare soil, water, re-classed footprints), ``circles`` (tree
    crowns as ``(x, y, radius, brightness)``) or ``line`` + ``width`` (roads). ``height``
    (pixels) sets the shadow length; ``style`` picks a look (roof type, road surface, crop);
    ``pattern`` holds field rows as ``(angle, period, amplitude)``. ``id`` is the instance id
    (0 for unlabelled clutter such as cars); the class id follows from ``kind``.
    """

    kind: str
    id: int
    color: RGB
    polygons: tuple[Polygon, ...] = ()
    boxes: tuple[Box, ...] = ()
    circles: tuple[tuple[float, float, float, float], ...] = ()
    line: tuple[Point, ...] = ()
    width: float = 0.0
    height: float = 0.0
    style: str = ""
    pattern: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def class_id(self) -> int | None:
        return CLASS_OF_KIND[self.kind]

    @property
    def layer(self) -> int:
        return LAYER_OF_KIND[self.kind]

    def footprint(self) -> tuple[Polygon, ...]:
        """Polygons covering the object's area (boxes' corners for buildings)."""
        return self.polygons + tuple(b.polygon() for b in self.boxes)

    def centre(self) -> Point:
        """A representative point (first box, crown, polygon vertex mean or line middle)."""
        if self.boxes:
            return self.boxes[0].cx, self.boxes[0].cy
        if self.circles:
            return self.circles[0][0], self.circles[0][1]
        if self.polygons:
            pts = self.polygons[0]
            return sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
        return self.line[len(self.line) // 2]


@dataclass(frozen=True)
class Layout:
    """A scene before rendering: canvas size, labelled window, ground colours and objects.

    ``view`` = ``(y0, x0, height, width)`` is the window that labels and images are cut from;
    the canvas may be larger so that a shifted view (registration nuisance) still shows
    rendered ground. ``texture_seed`` fixes the ground texture, which both dates share.
    """

    height: int
    width: int
    view: tuple[int, int, int, int]
    ground: tuple[RGB, RGB]
    objects: tuple[WorldObject, ...]
    texture_seed: int
    urbanity: float = 0.5

    def ordered(self) -> list[WorldObject]:
        """Objects in painting order (by layer, stable within a layer)."""
        return sorted(self.objects, key=lambda o: o.layer)

    def labelled(self) -> list[WorldObject]:
        return [o for o in self.objects if o.class_id is not None]

    def next_id(self) -> int:
        return max((o.id for o in self.objects), default=0) + 1

    def with_objects(self, objects: tuple[WorldObject, ...]) -> Layout:
        return replace(self, objects=objects)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.objects:
            out[o.kind] = out.get(o.kind, 0) + 1
        return out
