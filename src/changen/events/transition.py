"""Re-class events: objects change class along a transition kernel (land-cover conversion).

A :class:`TransitionKernel` lists, for each source class, the allowed target classes with
their probabilities. :func:`reclass_objects` picks eligible objects (class has a kernel row,
area at least ``min_area``) and draws each one's new class from its row. Objects smaller than
``min_area`` are left exactly as they are (torchange 0.0.4 erases them to 0 instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from changen.errors import ConfigError
from changen.events.labelling import AREA, compare_scalar, component_rows, flood_footprint
from changen.events.objects import ObjectTable, State, check_count, choose, read_only
from changen.events.records import EventRecord


@dataclass(frozen=True)
class TransitionKernel:
    """Allowed class transitions ``from -> to`` with probabilities (each row sums to 1).

    Build it with :meth:`from_dict` (``{from: {to: weight}}``, weights normalised per row) or
    :meth:`from_edges` (uniform over each row's targets). Self-transitions are refused: a
    re-class event always changes the class.
    """

    rows: tuple[tuple[int, tuple[tuple[int, float], ...]], ...]
    name: str = ""
    _lookup: dict[int, tuple[np.ndarray, np.ndarray]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        lookup: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for src, targets in self.rows:
            if not 0 <= src <= 255 or any(not 0 <= t <= 255 for t, _ in targets):
                raise ConfigError(f"kernel {self.name!r}: class ids must be 0..255 (row {src})")
            if any(t == src for t, _ in targets):
                raise ConfigError(
                    f"kernel {self.name!r}: row {src} lists itself as a target; drop the "
                    f"self-transition (use a lower rate or count for fewer changes)"
                )
            ids = np.array([t for t, _ in targets], np.int64)
            w = np.array([p for _, p in targets], np.float64)
            if ids.size == 0 or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
                raise ConfigError(
                    f"kernel {self.name!r}: row {src} needs at least one target with a "
                    f"positive, finite probability"
                )
            if src in lookup or np.unique(ids).size != ids.size:
                raise ConfigError(
                    f"kernel {self.name!r}: row {src} is repeated or repeats a target"
                )
            lookup[src] = (ids, w / w.sum())
        object.__setattr__(self, "_lookup", lookup)

    @classmethod
    def from_dict(
        cls, table: Mapping[int, Mapping[int, float]], name: str = ""
    ) -> TransitionKernel:
        """Kernel from ``{from: {to: weight}}``; weights are normalised per row."""
        rows = []
        for s, row in sorted(table.items()):
            total = sum(float(p) for p in row.values())
            norm = total if total > 0 and abs(total - 1.0) > 1e-12 else 1.0
            rows.append((int(s), tuple((int(t), float(p) / norm) for t, p in sorted(row.items()))))
        return cls(tuple(rows), name)

    @classmethod
    def from_edges(cls, edges: Iterable[tuple[int, int]], name: str = "") -> TransitionKernel:
        """Kernel with uniform probabilities over each source's listed targets."""
        table: dict[int, dict[int, float]] = {}
        for s, t in edges:
            table.setdefault(int(s), {})[int(t)] = 1.0
        return cls.from_dict(table, name)

    @property
    def sources(self) -> tuple[int, ...]:
        return tuple(sorted(self._lookup))

    @property
    def edges(self) -> list[tuple[int, int]]:
        return [(s, int(t)) for s in self.sources for t in self._lookup[s][0]]

    def targets(self, source: int) -> tuple[np.ndarray, np.ndarray]:
        """Target ids and their probabilities for ``source`` (empty when it has no row)."""
        return self._lookup.get(int(source), (np.zeros(0, np.int64), np.zeros(0)))

    def probability(self, source: int, target: int) -> float:
        ids, p = self.targets(source)
        hit = np.flatnonzero(ids == target)
        return float(p[hit[0]]) if hit.size else 0.0

    def allows(self, source: int, target: int) -> bool:
        return self.probability(source, target) > 0

    def sample(self, source: int, rng: np.random.Generator) -> int:
        ids, p = self._lookup[int(source)]
        return int(ids[rng.choice(ids.size, p=p)])

    def matrix(self, num_classes: int) -> np.ndarray:
        """Dense ``(num_classes, num_classes)`` transition probabilities (rows without a
        kernel row are zero)."""
        m = np.zeros((num_classes, num_classes))
        for s, (ids, p) in self._lookup.items():
            m[s, ids] = p
        return m

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": {str(s): {str(t): p for t, p in targets} for s, targets in self.rows},
        }

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Any]) -> TransitionKernel:
        table = {int(s): {int(t): float(p) for t, p in row.items()} for s, row in d["rows"].items()}
        return cls.from_dict(table, str(d.get("name", "")))


_BARELAND, _RANGELAND, _DEVELOPED, _ROAD, _TREE, _WATER, _AGRICULTURE, _BUILDING = range(1, 9)

OPENEARTHMAP_KERNEL = TransitionKernel.from_edges(
    [
        *(
            (_BARELAND, t)
            for t in (_RANGELAND, _DEVELOPED, _ROAD, _TREE, _WATER, _AGRICULTURE, _BUILDING)
        ),
        *((_RANGELAND, t) for t in (_BARELAND, _DEVELOPED, _ROAD, _TREE, _AGRICULTURE, _BUILDING)),
        *((_DEVELOPED, t) for t in (_BARELAND, _RANGELAND, _ROAD, _TREE, _BUILDING)),
        *((_ROAD, t) for t in (_BARELAND, _DEVELOPED)),
        *((_TREE, t) for t in (_BARELAND, _RANGELAND, _DEVELOPED, _ROAD, _AGRICULTURE, _BUILDING)),
        *((_WATER, t) for t in (_BARELAND, _RANGELAND, _AGRICULTURE)),
        *((_AGRICULTURE, t) for t in (_BARELAND, _RANGELAND, _DEVELOPED, _ROAD, _TREE, _BUILDING)),
        *((_BUILDING, t) for t in (_BARELAND, _DEVELOPED, _ROAD)),
    ],
    name="openearthmap",
)
"""OpenEarthMap land-cover kernel with 38 foreground transitions (classes 1..8).

Changen2-S9 reports 38 change types over OpenEarthMap's eight classes but our references do not
list them, so this is changen's reconstruction, uniform over each row: construction
(bareland/rangeland/developed/tree/agriculture → building, road, developed), clearing
(tree/rangeland/agriculture → bareland), cultivation (bareland/rangeland/tree/water →
agriculture), regrowth (bareland/developed/agriculture → rangeland/tree), drainage and flooding
(water → bareland/rangeland/agriculture, bareland → water) and demolition (building/road →
bareland/developed). torchange 0.0.4's released kernel also has 38 entries but one is the
agriculture self-loop and none leads to road or building; ours has no self-loop.
"""


@dataclass(frozen=True)
class ReclassConfig:
    """Re-class event: ``count`` objects (inclusive range) or each with probability ``rate``
    change class along ``kernel``. ``classes`` restricts the source classes;
    ``include_background`` also makes background regions (components of the background id,
    at least ``min_area`` pixels) eligible when the kernel has a background row."""

    kernel: TransitionKernel = OPENEARTHMAP_KERNEL
    count: tuple[int, int] = (1, 5)
    rate: float | None = None
    classes: tuple[int, ...] | None = None
    include_background: bool = False
    min_area: int = 64

    def __post_init__(self) -> None:
        check_count("reclass", self.count, self.rate)
        if self.min_area < 0:
            raise ConfigError(f"reclass min_area must be >= 0, got {self.min_area}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel.to_dict(),
            "count": list(self.count),
            "rate": self.rate,
            "classes": None if self.classes is None else list(self.classes),
            "include_background": self.include_background,
            "min_area": self.min_area,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReclassConfig:
        classes = d.get("classes")
        return cls(
            kernel=TransitionKernel.from_json_dict(d["kernel"])
            if "kernel" in d
            else OPENEARTHMAP_KERNEL,
            count=(int(d.get("count", (1, 5))[0]), int(d.get("count", (1, 5))[1])),
            rate=None if d.get("rate") is None else float(d["rate"]),
            classes=None if classes is None else tuple(int(c) for c in classes),
            include_background=bool(d.get("include_background", False)),
            min_area=int(d.get("min_area", 64)),
        )


def _background_rows(mask: np.ndarray, background: int, min_area: int) -> np.ndarray:
    """Rows ``(seed, y0, x0, y1, x1, area)`` of the 8-connected background regions of at
    least ``min_area`` pixels."""
    rows = component_rows(compare_scalar(mask, background, cv2.CMP_EQ), 8)
    return rows[rows[:, AREA] >= min_area]


def reclass_objects(
    state: State,
    config: ReclassConfig,
    rng: np.random.Generator,
    *,
    background: int = 0,
    ignore: int = 255,
    step: int = 0,
    below_id: int | None = None,
) -> tuple[State, list[EventRecord]]:
    """Change the class of chosen objects along the kernel; returns the new state and one
    record per changed object. Instance ids are kept (a background region that becomes a class
    gets a new id; an object that becomes background loses its id). No eligible object: the
    input is returned unchanged with an empty log. ``below_id`` restricts the eligible objects to
    ids below it (the process uses it to spare objects born in the same step)."""
    table = state.objects()
    sources = [s for s in config.kernel.sources if s != ignore]
    fg_sources = [s for s in sources if s != background]
    cand = table.eligible(min_area=config.min_area, classes=fg_sources, below_id=below_id)
    if config.classes is not None:
        cand = cand[np.isin(table.classes[cand], config.classes)]
    bg_rows = np.zeros((0, 6), np.int64)
    if (
        config.include_background
        and background in sources
        and (config.classes is None or background in config.classes)
    ):
        bg_rows = _background_rows(state.mask, background, config.min_area)
    n_fg = cand.size
    picked = choose(n_fg + len(bg_rows), config.count, config.rate, rng, replace=False)
    if picked.size == 0:
        return state, []
    mask = state.mask.copy()
    layer = state.layer
    rows = table.rows.copy()
    drop: list[int] = []
    added: list[tuple[int, ...]] = []
    next_id = state.next_id
    records: list[EventRecord] = []
    for p in picked:
        if p < n_fg:
            i = int(cand[p])
            obj_id, cls, y0, x0, y1, x1, area = (int(v) for v in rows[i])
            fp = layer.footprint(obj_id, (y0, x0, y1, x1))
        else:
            seed, y0, x0, y1, x1, area = (int(v) for v in bg_rows[p - n_fg])
            fp = flood_footprint(state.mask, seed, (y0, x0, y1, x1), 8)
            fp &= mask[y0:y1, x0:x1] == background
            area = int(np.count_nonzero(fp))
            cls, obj_id = background, 0
        target = config.kernel.sample(cls, rng)
        mask[y0:y1, x0:x1][fp] = target
        if obj_id:
            if target == background:
                layer = layer.edited(y0, x0, fp, 0)
                drop.append(i)
                new_id = 0
            else:
                rows[i, 1] = target
                new_id = obj_id
        else:
            new_id = next_id
            next_id += 1
            layer = layer.edited(y0, x0, fp, new_id)
            added.append((new_id, target, y0, x0, y1, x1, area))
        records.append(
            EventRecord(
                step=step,
                event="reclass",
                source_id=obj_id,
                new_id=new_id,
                class_before=cls,
                class_after=target,
                area=area,
            )
        )
    rows = np.delete(rows, drop, axis=0)
    if added:
        rows = np.concatenate([rows, np.array(added, np.int64)])
    return State.from_layer(read_only(mask), layer, next_id, ObjectTable(rows)), records
