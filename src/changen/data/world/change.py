"""True change pairs: one layout edited between two dates, rendered twice with nuisances.

**Frames.** Both semantic masks and the change mask are in the frame of the t1 image (the
true geometry of the world). The t2 image alone is displaced by the registration shift
``meta["shift"] = (dy, dx)``: ``t2_image[y, x]`` shows the ground at ``(y + dy, x + dx)`` of
that frame. The layout is rendered on a canvas padded by ``max_shift`` so the displaced view
still shows real ground. A detector that is robust to mis-registration must therefore predict
``change_mask`` although the t2 pixels are off by up to ``max_shift`` pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, replace

import cv2
import numpy as np

from changen.data.world.cars import place_cars
from changen.data.world.config import ChangeConfig, WorldConfig
from changen.data.world.generate import make_layout
from changen.data.world.geometry import Box, as_polygon
from changen.data.world.layout import Layout, WorldObject
from changen.data.world.objects import (
    area_color,
    crop_pattern,
    new_bare,
    new_building,
    new_lot,
    new_trees,
)
from changen.data.world.occupancy import BUILDING, LOT, ROAD, WATER, Occupancy
from changen.data.world.render import Look, random_look, rasterize_labels, render_layout
from changen.sample import ChangeSample
from changen.taxonomies import OPENEARTHMAP

#: Which kinds an object may be re-classed to (demolition, paving, clearing, sowing, …).
#: A cleared tree cluster becomes one patch of bare soil: the hull of its crowns.
RECLASS: dict[str, tuple[str, ...]] = {
    "building": ("bare", "lot"),
    "field": ("bare", "lot"),
    "bare": ("field", "lot"),
    "lot": ("bare",),
    "tree": ("bare",),
    "water": ("bare",),
}
_RECLASS_WEIGHT = {
    "building": 3.0,
    "field": 2.0,
    "bare": 2.0,
    "tree": 1.0,
    "lot": 1.0,
    "water": 0.3,
}
_REMOVE_WEIGHT = {"building": 3.0, "tree": 2.0, "lot": 1.0, "bare": 1.0, "field": 1.0, "water": 0.3}
_ADD_KINDS = ("building", "tree", "lot", "bare")
_ADD_WEIGHT = (0.55, 0.15, 0.1, 0.2)
_MAX_EXTRA_EDITS = 20


def _crop(a: np.ndarray, view: tuple[int, int, int, int], dy: int = 0, dx: int = 0) -> np.ndarray:
    y0, x0, h, w = view
    return np.ascontiguousarray(a[y0 + dy : y0 + dy + h, x0 + dx : x0 + dx + w])


def _visible(layout: Layout, ids: set[int]) -> set[int]:
    """Which of these object ids show at least one pixel inside the view."""
    _, inst = rasterize_labels(layout)
    return ids & set(np.unique(_crop(inst, layout.view)).tolist())


def _crowns_hull(circles: tuple[tuple[float, float, float, float], ...]) -> np.ndarray:
    """The convex hull of tree crowns (each approximated by 12 points on its rim)."""
    c = np.asarray(circles)
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    rim = c[:, None, :2] + c[:, None, 2:3] * np.stack([np.cos(t), np.sin(t)], 1)[None]
    return cv2.convexHull(rim.reshape(-1, 2).astype(np.float32))[:, 0, :].astype(np.float64)


def _pick(
    rng: np.random.Generator, pool: list[WorldObject], weight: dict[str, float]
) -> WorldObject:
    p = np.array([weight[o.kind] for o in pool])
    return pool[int(rng.choice(len(pool), p=p / p.sum()))]


def _reclassed(rng: np.random.Generator, obj: WorldObject, kind: str) -> WorldObject:
    """The same footprint and id, as another kind of area."""
    polygons = obj.footprint() or (as_polygon(_crowns_hull(obj.circles)),)
    first = np.asarray(polygons[0])
    edge = first[1] - first[0]
    angle = float(np.arctan2(edge[1], edge[0]))
    style, pattern = "", (0.0, 0.0, 0.0)
    if kind == "field":
        style, pattern = crop_pattern(rng, angle)
    elif kind == "lot":
        style = "asphalt" if rng.random() < 0.6 else "concrete"
    return WorldObject(
        kind, obj.id, area_color(rng, kind, style), polygons=polygons, style=style, pattern=pattern
    )


def _new_object(
    rng: np.random.Generator,
    layout: Layout,
    objects: list[WorldObject],
    occ: Occupancy,
    config: WorldConfig,
) -> WorldObject | None:
    """One new object at a random place inside the view, or ``None`` if it does not fit."""
    y0, x0, h, w = layout.view
    cx, cy = x0 + rng.uniform(0, w), y0 + rng.uniform(0, h)
    oid = max(layout.next_id(), max((o.id for o in objects), default=0) + 1)  # never reused
    kind = str(rng.choice(_ADD_KINDS, p=_ADD_WEIGHT))
    built = [o for o in objects if o.kind == "building"]
    angle = (
        built[int(rng.integers(len(built)))].boxes[0].angle
        if built
        else float(rng.uniform(0, np.pi))
    )
    if kind == "building":
        return new_building(
            rng,
            config,
            oid,
            cx,
            cy,
            angle + np.pi / 2 * int(rng.integers(2)),
            occ,
            layout.view,
            blockers=(ROAD, WATER, BUILDING),
        )
    if kind == "tree":
        return new_trees(rng, oid, cx, cy, int(1 + rng.geometric(0.2)), occ)
    if kind == "lot":
        box = Box(cx, cy, rng.uniform(20, 50), rng.uniform(16, 36), angle)
        if not occ.fits([box.corners()], (ROAD, WATER, BUILDING)):
            return None
        occ.claim([box.corners()], LOT)
        return new_lot(rng, oid, box)
    return new_bare(rng, oid, cx, cy, rng.uniform(8, 25))


def edit_layout(
    rng: np.random.Generator, layout: Layout, config: WorldConfig, change: ChangeConfig
) -> tuple[Layout, list[dict[str, object]]]:
    """The t2 layout (objects added, removed, re-classed) and the list of edits made.

    Counts are drawn per 256² pixels of view; edits that end up invisible are harmless, and
    extra additions are made until at least one label pixel in the view changes.
    """
    area = layout.view[2] * layout.view[3] / 256**2
    objects = list(layout.objects)
    edits: list[dict[str, object]] = []
    editable = _visible(layout, {o.id for o in layout.labelled()})

    def candidates(kinds: Mapping[str, object]) -> list[WorldObject]:
        return [o for o in objects if o.kind in kinds and o.id in editable]

    for _ in range(_scaled(rng, change.remove, area)):
        pool = candidates(_REMOVE_WEIGHT)
        if not pool:
            break
        obj = _pick(rng, pool, _REMOVE_WEIGHT)
        objects.remove(obj)
        editable.discard(obj.id)
        edits.append({"op": "remove", "id": obj.id, "kind": obj.kind, "class": obj.class_id})
    for _ in range(_scaled(rng, change.reclass, area)):
        pool = candidates(RECLASS)
        if not pool:
            break
        obj = _pick(rng, pool, _RECLASS_WEIGHT)
        kind = str(rng.choice(RECLASS[obj.kind]))
        new = _reclassed(rng, obj, kind)
        objects[objects.index(obj)] = new
        editable.discard(obj.id)
        edits.append(
            {
                "op": "reclass",
                "id": obj.id,
                "kind": kind,
                "from_kind": obj.kind,
                "class": new.class_id,
                "from_class": obj.class_id,
            }
        )
    occ = Occupancy.of(objects, layout.height, layout.width, config.building_gap)

    def add() -> None:
        obj = _new_object(rng, layout, objects, occ, config)
        if obj is not None:
            objects.append(obj)
            edits.append({"op": "add", "id": obj.id, "kind": obj.kind, "class": obj.class_id})

    n_add = _scaled(rng, change.add, area)
    for _ in range(10 * n_add):
        if sum(e["op"] == "add" for e in edits) >= n_add:
            break
        add()
    t1_mask = _crop(rasterize_labels(layout)[0], layout.view)
    for _ in range(_MAX_EXTRA_EDITS):
        t2_mask = _crop(rasterize_labels(layout.with_objects(tuple(objects)))[0], layout.view)
        if (t1_mask != t2_mask).any():
            break
        add()
    return layout.with_objects(tuple(objects)), edits


def _scaled(rng: np.random.Generator, bounds: tuple[int, int], area: float) -> int:
    return int(rng.uniform(bounds[0], bounds[1] + 1) * area)


def _nuisance_world(
    rng: np.random.Generator, layout: Layout, change: ChangeConfig, config: WorldConfig
) -> Layout:
    """Label-preserving differences: re-sown fields and a new set of cars."""
    kept: list[WorldObject] = []
    for obj in layout.objects:
        if obj.kind == "car":
            continue
        if obj.kind == "field" and rng.random() < change.recrop_probability:
            style, pattern = crop_pattern(rng, obj.pattern[0])
            obj = replace(obj, style=style, pattern=pattern, color=area_color(rng, "field", style))
        kept.append(obj)
    if config.cars:
        occ = Occupancy.of(kept, layout.height, layout.width, config.building_gap)
        kept.extend(place_cars(rng, kept, occ, layout.urbanity))
    return layout.with_objects(tuple(kept))


def _nuisance_look(rng: np.random.Generator, look: Look, change: ChangeConfig) -> Look:
    """The t2 acquisition: other sun, radiometry and season."""
    gain = rng.uniform(*change.gain) * rng.normal(1.0, change.white_balance, 3)
    red, green, blue = (float(a * g) for a, g in zip(look.gain, gain, strict=True))
    return replace(
        look,
        sun_azimuth=float(look.sun_azimuth + rng.normal(0.0, change.sun_jitter)),
        shadow_length=float(rng.uniform(0.7, 1.4)),
        season=float(look.season + rng.uniform(-change.season, change.season)),
        gain=(red, green, blue),
        gamma=float(look.gamma * rng.uniform(*change.gamma)),
        blur=float(rng.uniform(0.45, 0.8)),
    )


def render_change_pair(
    rng: np.random.Generator,
    config: WorldConfig = WorldConfig(),
    change: ChangeConfig = ChangeConfig(),
    name: str = "world_pair",
) -> ChangeSample:
    """A bitemporal pair of one random world with its exact change mask (0/1).

    ``meta`` lists the ``edits`` (add / remove / reclass with instance id, kind and class), the
    registration ``shift`` (dy, dx) of the t2 image (see the module docstring for frames) and
    both ``looks``.
    """
    pad = change.max_shift
    t1_layout = make_layout(rng, config, pad)
    t2_layout, edits = edit_layout(rng, t1_layout, config, change)
    t2_layout = _nuisance_world(rng, t2_layout, change, config)
    t1_look = random_look(rng, config.texture, config.sensor_noise)
    t2_look = _nuisance_look(rng, t1_look, change)
    dy, dx = (int(v) for v in rng.integers(-pad, pad + 1, 2))
    t1_image, t1_mask, _ = render_layout(t1_layout, t1_look, rng)
    t2_image, t2_mask, _ = render_layout(t2_layout, t2_look, rng)
    view = t1_layout.view
    t1_mask, t2_mask = _crop(t1_mask, view), _crop(t2_mask, view)
    meta = {
        "generator": "changen.data.world",
        "edits": edits,
        "shift": [dy, dx],
        "looks": [asdict(t1_look), asdict(t2_look)],
    }
    return ChangeSample(
        _crop(t1_image, view),
        _crop(t2_image, view, dy, dx),
        (t1_mask != t2_mask).astype(np.uint8),
        t1_mask,
        t2_mask,
        taxonomy=OPENEARTHMAP,
        name=name,
        source="changen.data.world",
        meta=meta,
    )
