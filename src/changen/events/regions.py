"""Which pixels each event record touched, read from the instance maps of two dates.

One rule for every reader (the learning-free synthesizers, previews, the GAN trainer's region
bits): a created object is its new id at t2, a removed one its source id at t1, a re-classed
one its pixels that carry the new class at t2 — under its kept id, or, when it became
background (``new_id == 0``), the pixels of its t1 footprint that have no id at t2.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from changen.errors import DataError
from changen.events.records import EventRecord

if TYPE_CHECKING:
    from changen.events.process import ChangeChain


@dataclass(frozen=True)
class Region:
    """A bool ``footprint`` whose top-left pixel is at ``(y0, x0)`` of the image."""

    y0: int
    x0: int
    footprint: np.ndarray

    @property
    def box(self) -> tuple[slice, slice]:
        h, w = self.footprint.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    def paint(self, target: np.ndarray) -> None:
        """Set the region's pixels of a full-image bool map."""
        target[self.box] |= self.footprint

    def __bool__(self) -> bool:
        return bool(self.footprint.any())


class InstanceIndex:
    """Bounding boxes of every instance of an instance map, from one ``find_objects`` pass."""

    def __init__(self, instances: np.ndarray, name: str = "instances") -> None:
        if not np.issubdtype(instances.dtype, np.integer):
            raise DataError(f"{name} must hold integer instance ids, got {instances.dtype}")
        if instances.size and int(instances.min()) < 0:
            raise DataError(f"{name} holds negative ids; instance ids must be >= 0")
        self.instances = instances
        self._boxes = ndimage.find_objects(instances)

    def region(self, obj_id: int) -> Region | None:
        """The pixels of ``obj_id`` (None when the map does not hold it)."""
        if not 0 < obj_id <= len(self._boxes) or self._boxes[obj_id - 1] is None:
            return None
        ys, xs = self._boxes[obj_id - 1]
        return Region(ys.start, xs.start, self.instances[ys, xs] == obj_id)


def record_region(
    record: EventRecord, t1: InstanceIndex, t2: InstanceIndex, t2_mask: np.ndarray
) -> Region | None:
    """The pixels ``record`` changed (see the module); None when nothing of it is left (e.g.
    a later step undid it)."""
    if record.event == "create":
        return t2.region(record.new_id)
    if record.event == "remove":
        return t1.region(record.source_id)
    region = t2.region(record.new_id) if record.new_id > 0 else t1.region(record.source_id)
    if region is None:
        return None
    keep = t2_mask[region.box] == record.class_after
    if record.new_id == 0:
        keep &= t2.instances[region.box] == 0
    fp = region.footprint & keep
    return Region(region.y0, region.x0, fp) if fp.any() else None


def _index(instances: InstanceIndex | np.ndarray, name: str) -> InstanceIndex:
    return instances if isinstance(instances, InstanceIndex) else InstanceIndex(instances, name)


def event_regions(
    records: Iterable[EventRecord],
    t1_instances: InstanceIndex | np.ndarray,
    t2_instances: InstanceIndex | np.ndarray,
    t2_mask: np.ndarray,
) -> list[tuple[EventRecord, Region]]:
    """Each record with the pixels it changed between two dates (records with none left are
    dropped); the instance maps may be given already indexed."""
    t1 = _index(t1_instances, "t1_instances")
    t2 = _index(t2_instances, "t2_instances")
    found = ((r, record_region(r, t1, t2, t2_mask)) for r in records)
    return [(r, region) for r, region in found if region is not None]


def event_maps(chain: ChangeChain, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bool maps of the pixels created, removed and re-classed between steps ``k-1`` and
    ``k`` of a chain."""
    shape = chain.masks.shape[1:]
    maps = {kind: np.zeros(shape, bool) for kind in ("create", "remove", "reclass")}
    found = event_regions(
        chain.records(k - 1, k), chain.instances[k - 1], chain.instances[k], chain.masks[k]
    )
    for record, region in found:
        region.paint(maps[record.event])
    return maps["create"], maps["remove"], maps["reclass"]
