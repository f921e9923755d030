"""Remove events: chosen objects disappear (demolished buildings, cleared fields).

The removed pixels become the background id (``fill="background"``, as Changen), or the class
that surrounds the object (``fill="surrounding"``, ChangeAnywhere's disappearance rule): the
most frequent class in a ring of ``ring`` pixels around the object, not counting ignore pixels
or the object's own class, with the background id when the ring holds nothing else. Filled
pixels join the instance that holds most of that class in the ring, so a cleared house plot
becomes part of the neighbouring field.

:class:`RemoveConfig` defaults to ``"background"``; the user-facing defaults (CLI flags, the
GAN trainer's process) take :func:`default_fill` of the taxonomy, because in land-cover
taxonomies the background id is often a class that never occurs in real scenes (OpenEarthMap's
0 is "unknown").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from changen.errors import ConfigError
from changen.events.instances import InstanceLayer
from changen.events.objects import ObjectTable, State, check_count, choose, read_only
from changen.events.records import EventRecord
from changen.sample import Taxonomy

Fill = Literal["background", "surrounding"]
DEFAULT_RING = 5
"""Width in pixels of the band that decides the surrounding class (:class:`RemoveConfig`,
and the place a moved object leaves, :mod:`changen.events.create`)."""


def default_fill(taxonomy: Taxonomy) -> Fill:
    """``"surrounding"`` for taxonomies of more than two classes (land cover), else
    ``"background"`` (binary building masks, where both give the background)."""
    return "surrounding" if taxonomy.num_classes > 2 else "background"


@dataclass(frozen=True)
class RemoveConfig:
    """Remove event: ``count`` objects (inclusive range; or each eligible object with
    probability ``rate``) of ``classes`` (all foreground when None) with at least ``min_area``
    pixels are removed and filled per ``fill`` (see the module); ``ring`` is the width in pixels
    of the neighbourhood that decides the surrounding class."""

    count: tuple[int, int] = (1, 5)
    rate: float | None = None
    classes: tuple[int, ...] | None = None
    fill: Fill = "background"
    ring: int = DEFAULT_RING
    min_area: int = 64

    def __post_init__(self) -> None:
        check_count("remove", self.count, self.rate)
        if self.fill not in ("background", "surrounding"):
            raise ConfigError(f"remove fill must be background or surrounding, got {self.fill!r}")
        if self.ring < 1 or self.min_area < 0:
            raise ConfigError("remove ring must be >= 1 and min_area >= 0")

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": list(self.count),
            "rate": self.rate,
            "classes": None if self.classes is None else list(self.classes),
            "fill": self.fill,
            "ring": self.ring,
            "min_area": self.min_area,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RemoveConfig:
        classes = d.get("classes")
        count = d.get("count", (1, 5))
        return cls(
            count=(int(count[0]), int(count[1])),
            rate=None if d.get("rate") is None else float(d["rate"]),
            classes=None if classes is None else tuple(int(c) for c in classes),
            fill=d.get("fill", "background"),
            ring=int(d.get("ring", DEFAULT_RING)),
            min_area=int(d.get("min_area", 64)),
        )


def surrounding_class(
    mask: np.ndarray,
    bbox: tuple[int, int, int, int],
    footprint: np.ndarray,
    *,
    ring: int,
    exclude: tuple[int, ...],
    background: int,
) -> tuple[int, tuple[int, int, int, int], np.ndarray]:
    """Majority class in a ``ring``-pixel band around a footprint, ignoring ``exclude`` ids
    (``background`` when the band holds nothing else). Also returns the padded window and the
    band (bool, window-sized) so callers can look at the band's instances."""
    big_h, big_w = mask.shape
    y0, x0, y1, x1 = bbox
    wy0, wx0 = max(y0 - ring, 0), max(x0 - ring, 0)
    wy1, wx1 = min(y1 + ring, big_h), min(x1 + ring, big_w)
    pad = np.zeros((wy1 - wy0, wx1 - wx0), np.uint8)
    pad[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0] = footprint
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring + 1, 2 * ring + 1))
    band = cv2.dilate(pad, kernel).view(bool) & ~pad.view(bool)
    votes = np.bincount(mask[wy0:wy1, wx0:wx1][band], minlength=256)
    votes[list(exclude)] = 0
    cls = int(np.argmax(votes)) if votes.any() else background
    return cls, (wy0, wx0, wy1, wx1), band


def remove_objects(
    state: State,
    config: RemoveConfig,
    rng: np.random.Generator,
    *,
    background: int = 0,
    ignore: int = 255,
    step: int = 0,
    below_id: int | None = None,
) -> tuple[State, list[EventRecord]]:
    """Remove chosen objects; returns the new state and one record per removed object. No
    eligible object: the input is returned unchanged with an empty log. ``below_id`` restricts the
    eligible objects to ids below it (the process uses it to spare objects born in the same
    step)."""
    table = state.objects()
    cand = table.eligible(
        min_area=config.min_area,
        classes=config.classes,
        exclude=(background, ignore),
        below_id=below_id,
    )
    picked = choose(cand.size, config.count, config.rate, rng, replace=False)
    if picked.size == 0:
        return state, []
    mask = state.mask.copy()
    layer = state.layer
    rows = table.rows.copy()
    removed: list[int] = []
    records: list[EventRecord] = []
    for p in picked:
        i = int(cand[p])
        obj_id, cls, area = (int(v) for v in rows[i, [0, 1, 6]])
        layer, fill, fill_id = erase_object(
            mask,
            layer,
            rows,
            i,
            fill=config.fill,
            ring=config.ring,
            background=background,
            ignore=ignore,
        )
        removed.append(i)
        records.append(
            EventRecord(
                step=step,
                event="remove",
                source_id=obj_id,
                new_id=fill_id,
                class_before=cls,
                class_after=fill,
                area=area,
            )
        )
    gone = np.zeros(len(rows), bool)
    gone[removed] = True
    table = ObjectTable(rows[~gone])
    return State.from_layer(read_only(mask), layer, state.next_id, table), records


def erase_object(
    mask: np.ndarray,
    layer: InstanceLayer,
    rows: np.ndarray,
    i: int,
    *,
    fill: Fill,
    ring: int,
    background: int,
    ignore: int,
) -> tuple[InstanceLayer, int, int]:
    """Erase the object of table row ``i``: its pixels become the ``fill`` class (see the
    module) in the working ``mask`` (edited in place) and, in the returned layer, the id of
    the instance they join, whose row in ``rows`` (edited in place) grows by them. Returns the
    layer, the class filled in and that instance id (0: none). The caller drops row ``i``."""
    obj_id, cls, y0, x0, y1, x1, area = rows[i].tolist()
    fp = layer.footprint(obj_id, (y0, x0, y1, x1))
    cls_fill, fill_id = background, 0
    if fill == "surrounding":
        cls_fill, win, band = surrounding_class(
            mask, (y0, x0, y1, x1), fp, ring=ring, exclude=(ignore, cls), background=background
        )
        if cls_fill != background:
            fill_id = _majority_instance(mask, layer, win, band, cls_fill)
    mask[y0:y1, x0:x1][fp] = cls_fill
    layer = layer.edited(y0, x0, fp, fill_id)
    if fill_id:
        j = int(np.searchsorted(rows[:, 0], fill_id))
        if j < len(rows) and rows[j, 0] == fill_id:
            rows[j, 2:4] = np.minimum(rows[j, 2:4], (y0, x0))
            rows[j, 4:6] = np.maximum(rows[j, 4:6], (y1, x1))
            rows[j, 6] += area
    return layer, cls_fill, fill_id


def _majority_instance(
    mask: np.ndarray,
    layer: InstanceLayer,
    win: tuple[int, int, int, int],
    band: np.ndarray,
    cls: int,
) -> int:
    """The most frequent instance id (0 = none) among the band's pixels of class ``cls``."""
    wy0, wx0, wy1, wx1 = win
    sel = band & (mask[wy0:wy1, wx0:wx1] == cls)
    ids, counts = np.unique(layer.window(win)[sel], return_counts=True)
    return int(ids[np.argmax(counts)]) if ids.size else 0
