"""The change process: events composed into a Markov chain of masks (GPCM's F).

A :class:`ChangeProcess` lists events (:class:`EventSpec`: kind, config, probability) and how
they combine in one step: ``"sequence"`` applies each event in order, each with its
probability; ``"mixture"`` applies one event per step, drawn with probabilities proportional to
``prob``. :func:`simulate` runs ``steps`` steps from a mask and returns a :class:`ChangeChain`
with every intermediate mask and instance map, the per-object event log and change labels
between any two steps. The instance maps of the steps are built only when
:attr:`ChangeChain.instances` is read.

Determinism: every random draw comes from the ``numpy.random.Generator`` passed in, in a fixed
order, so the same input, process and seed give byte-identical masks, instance maps and logs;
no global random state is read or written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from changen.errors import ConfigError
from changen.events.create import CreateConfig, Placement, Rotation, ShapeBank, create_objects
from changen.events.instances import InstanceLayer
from changen.events.labels import binary_change, object_change, semantic_change
from changen.events.objects import State
from changen.events.records import EVENT_KINDS, NO_SOURCE, EventKind, EventRecord, EventTally
from changen.events.remove import Fill, RemoveConfig, remove_objects
from changen.events.transition import (
    OPENEARTHMAP_KERNEL,
    ReclassConfig,
    TransitionKernel,
    reclass_objects,
)
from changen.sample import Taxonomy

EventConfig = CreateConfig | RemoveConfig | ReclassConfig
EventFn = Callable[..., tuple[State, list[EventRecord]]]

_CONFIGS: dict[str, type[EventConfig]] = {
    "create": CreateConfig,
    "remove": RemoveConfig,
    "reclass": ReclassConfig,
}
_APPLY: dict[str, EventFn] = {
    "create": create_objects,
    "remove": remove_objects,
    "reclass": reclass_objects,
}


@dataclass(frozen=True)
class EventSpec:
    """One event of a process: its kind, its config and its probability (per step in
    ``"sequence"`` mode, a relative weight in ``"mixture"`` mode)."""

    kind: EventKind
    config: EventConfig
    prob: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ConfigError(
                f"unknown event {self.kind!r}; choose one of {', '.join(EVENT_KINDS)}"
            )
        if not isinstance(self.config, _CONFIGS[self.kind]):
            raise ConfigError(
                f"event {self.kind!r} needs a {_CONFIGS[self.kind].__name__}, got "
                f"{type(self.config).__name__}"
            )
        if not 0.0 <= self.prob <= 1.0:
            raise ConfigError(f"event {self.kind!r} probability must be in [0, 1], got {self.prob}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "prob": self.prob, "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], shape_bank: ShapeBank | None = None) -> EventSpec:
        kind = d["kind"]
        if kind not in _CONFIGS:
            raise ConfigError(f"unknown event {kind!r}; choose one of {', '.join(EVENT_KINDS)}")
        cfg = (
            CreateConfig.from_dict(d["config"], shape_bank)
            if kind == "create"
            else _CONFIGS[kind].from_dict(d["config"])
        )
        return cls(kind, cfg, float(d.get("prob", 1.0)))


@dataclass(frozen=True)
class ChangeProcess:
    """Events and how they compose (``mode``), for ``steps`` steps; ``connectivity`` defines
    objects when the source has no instance map."""

    events: tuple[EventSpec, ...]
    mode: Literal["sequence", "mixture"] = "sequence"
    steps: int = 1
    connectivity: int = 8

    def __post_init__(self) -> None:
        if not self.events:
            raise ConfigError("a change process needs at least one event")
        if self.mode not in ("sequence", "mixture"):
            raise ConfigError(f"process mode must be sequence or mixture, got {self.mode!r}")
        if self.steps < 1:
            raise ConfigError(f"process steps must be >= 1, got {self.steps}")
        if self.connectivity not in (4, 8):
            raise ConfigError(f"connectivity must be 4 or 8, got {self.connectivity}")
        if self.mode == "mixture" and sum(e.prob for e in self.events) <= 0:
            raise ConfigError("a mixture needs at least one event with a positive probability")

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": [e.to_dict() for e in self.events],
            "mode": self.mode,
            "steps": self.steps,
            "connectivity": self.connectivity,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], shape_bank: ShapeBank | None = None) -> ChangeProcess:
        return cls(
            events=tuple(EventSpec.from_dict(e, shape_bank) for e in d["events"]),
            mode=d.get("mode", "sequence"),
            steps=int(d.get("steps", 1)),
            connectivity=int(d.get("connectivity", 8)),
        )

    @classmethod
    def from_flags(
        cls,
        events: str = "create,remove,reclass",
        *,
        count: tuple[int, int] = (1, 5),
        scale: tuple[float, float] = (1.0, 1.0),
        rotate: Rotation = "none",
        flip: bool = False,
        steps: int = 1,
        mode: Literal["sequence", "mixture"] = "sequence",
        fill: Fill = "background",
        placement: Placement = "free",
        within_classes: tuple[int, ...] = (),
        allow_overlap: bool = False,
        classes: tuple[int, ...] | None = None,
        kernel: TransitionKernel | None = None,
        min_area: int = 64,
        connectivity: int = 8,
    ) -> ChangeProcess:
        """A process from CLI-style flags: a comma-separated event list sharing one count
        range and ``min_area``; ``kernel`` defaults to :data:`OPENEARTHMAP_KERNEL`."""
        specs = []
        for kind in (k.strip() for k in events.split(",") if k.strip()):
            if kind == "create":
                cfg: EventConfig = CreateConfig(
                    count=count,
                    classes=classes,
                    scale=scale,
                    rotation=rotate,
                    flip=flip,
                    placement=placement,
                    within_classes=within_classes,
                    allow_overlap=allow_overlap,
                    min_area=min_area,
                )
            elif kind == "remove":
                cfg = RemoveConfig(count=count, classes=classes, fill=fill, min_area=min_area)
            elif kind == "reclass":
                cfg = ReclassConfig(
                    kernel=kernel or OPENEARTHMAP_KERNEL,
                    count=count,
                    classes=classes,
                    min_area=min_area,
                )
            else:
                raise ConfigError(
                    f"unknown event {kind!r} in {events!r}; choose from {', '.join(EVENT_KINDS)}"
                )
            specs.append(EventSpec(kind, cfg))  # type: ignore[arg-type]
        return cls(tuple(specs), mode=mode, steps=steps, connectivity=connectivity)


def apply_step(
    state: State,
    process: ChangeProcess,
    rng: np.random.Generator,
    *,
    step: int,
    background: int = 0,
    ignore: int = 255,
    tally: EventTally | None = None,
) -> tuple[State, list[EventRecord]]:
    """One step of the chain: the events of ``process`` applied per its mode. Objects created
    during the step are not eligible for the step's later events (an object that appears and
    vanishes between two observations leaves no trace). ``tally`` counts what each event tried
    (see :class:`~changen.events.records.EventTally`)."""
    born = state.next_id
    if process.mode == "mixture":
        w = np.array([e.prob for e in process.events])
        chosen = [process.events[int(rng.choice(len(w), p=w / w.sum()))]]
    else:
        chosen = [e for e in process.events if e.prob >= 1.0 or rng.random() < e.prob]
    log: list[EventRecord] = []
    for spec in chosen:
        extra = {"tally": tally} if spec.kind == "create" and tally is not None else {}
        state, records = _APPLY[spec.kind](
            state,
            spec.config,
            rng,
            background=background,
            ignore=ignore,
            step=step,
            below_id=born,
            **extra,
        )
        if tally is not None and spec.kind != "create":
            tally.note(spec.kind, done=len(records), reason=None if records else NO_SOURCE)
        log.extend(records)
    return state, log


@dataclass
class ChangeChain:
    """A simulated time series: ``masks`` (T+1, H, W) uint8, ``instances`` (T+1, H, W) int32
    and the event ``log``; step ``t`` (1..T) turns ``masks[t-1]`` into ``masks[t]``;
    ``tally`` counts what the events tried (sum it over a run to explain an event that never
    fired: :func:`changen.events.policy.unfired_warnings`).

    ``layers`` are the instance layers of the steps; ``instances`` is built from them on first
    access (one full map, then each step's edits), so a chain whose instance maps nobody reads
    never builds them."""

    masks: np.ndarray
    layers: tuple[InstanceLayer, ...] = field(repr=False)
    log: list[EventRecord] = field(default_factory=list)
    background: int = 0
    ignore: int = 255
    num_classes: int | None = None
    tally: EventTally = field(default_factory=EventTally, repr=False, compare=False)
    _instances: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def instances(self) -> np.ndarray:
        """The (T+1, H, W) int32 instance maps of the steps (built on first access)."""
        if self._instances is None:
            out = np.empty(self.masks.shape, np.int32)
            for t, layer in enumerate(self.layers):
                before = self.layers[t - 1] if t else None
                if before is not None and layer.extends(before):
                    out[t] = out[t - 1]
                    layer.paint_edits(out[t], len(before.edits))
                else:
                    out[t] = layer.full()
            self._instances = out
        return self._instances

    @property
    def steps(self) -> int:
        return int(self.masks.shape[0]) - 1

    def change(self, i: int, j: int) -> np.ndarray:
        """Binary change between steps ``i`` and ``j``: 1 where the class differs, 0 where not,
        :data:`~changen.events.labels.CHANGE_IGNORE` (255) where either mask is ignore."""
        return binary_change(self.masks[i], self.masks[j], self.ignore)

    def object_change(self, i: int, j: int) -> np.ndarray:
        """Object-level change between steps ``i`` and ``j`` (ignore pixels 255, as
        :meth:`change`)."""
        return object_change(
            self.instances[i], self.instances[j], self.masks[i], self.masks[j], self.ignore
        )

    def semantic_change(self, i: int, j: int) -> np.ndarray:
        """From-to change code between steps ``i`` and ``j`` (see :mod:`.labels`); without a
        known ``num_classes`` the largest class id of the chain plus one is used."""
        if self.num_classes is None:
            self.num_classes = _num_classes(self.masks, None, self.ignore)
        return semantic_change(self.masks[i], self.masks[j], self.num_classes, self.ignore)

    def records(self, i: int, j: int) -> list[EventRecord]:
        """The records of the steps between ``i`` and ``j`` (either order)."""
        lo, hi = min(i, j), max(i, j)
        return [r for r in self.log if lo < r.step <= hi]

    def log_dicts(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.log]


def _num_classes(masks: np.ndarray, taxonomy: Taxonomy | None, ignore: int) -> int:
    if taxonomy is not None:
        ids = [i for i in taxonomy.ids if i != ignore]
        return max(ids) + 1 if ids else 1
    present = np.flatnonzero(np.bincount(masks.ravel(), minlength=256))
    present = present[present != ignore]
    return int(present.max()) + 1 if present.size else 1


def _check_against(process: ChangeProcess, taxonomy: Taxonomy) -> None:
    known = set(taxonomy.ids)
    for spec in process.events:
        if isinstance(spec.config, ReclassConfig):
            used = {c for edge in spec.config.kernel.edges for c in edge}
            unknown = sorted(used - known)
            if unknown:
                raise ConfigError(
                    f"transition kernel {spec.config.kernel.name!r} uses class ids {unknown} "
                    f"that taxonomy {taxonomy.name!r} does not define; give a kernel for it"
                )


def simulate(
    mask: np.ndarray,
    process: ChangeProcess,
    rng: np.random.Generator,
    *,
    instances: np.ndarray | None = None,
    taxonomy: Taxonomy | None = None,
) -> ChangeChain:
    """Run ``process`` from ``mask`` (objects from ``instances`` when given); background and
    ignore ids come from ``taxonomy`` (0 and 255 without one)."""
    background = taxonomy.background if taxonomy is not None else 0
    ignore = taxonomy.ignore if taxonomy is not None else 255
    if taxonomy is not None:
        taxonomy.validate(mask)
        _check_against(process, taxonomy)
    state = State.from_mask(
        mask, instances, connectivity=process.connectivity, background=background, ignore=ignore
    )
    masks = np.empty((process.steps + 1, *state.shape), np.uint8)
    masks[0] = state.mask
    layers = [state.layer]
    log: list[EventRecord] = []
    tally = EventTally()
    for t in range(1, process.steps + 1):
        state, records = apply_step(
            state, process, rng, step=t, background=background, ignore=ignore, tally=tally
        )
        masks[t] = state.mask
        layers.append(state.layer)
        log.extend(records)
    num_classes = _num_classes(masks, taxonomy, ignore) if taxonomy is not None else None
    return ChangeChain(masks, tuple(layers), log, background, ignore, num_classes, tally)


def unchanged(
    mask: np.ndarray,
    steps: int,
    *,
    instances: np.ndarray | None = None,
    taxonomy: Taxonomy | None = None,
    connectivity: int = 8,
) -> ChangeChain:
    """A chain of ``steps`` steps in which nothing happens (a hard negative: every mask is
    ``mask``, the log is empty)."""
    background = taxonomy.background if taxonomy is not None else 0
    ignore = taxonomy.ignore if taxonomy is not None else 255
    if taxonomy is not None:
        taxonomy.validate(mask)
    state = State.from_mask(
        mask, instances, connectivity=connectivity, background=background, ignore=ignore
    )
    masks = np.repeat(state.mask[None], steps + 1, axis=0)
    num_classes = _num_classes(masks, taxonomy, ignore) if taxonomy is not None else None
    return ChangeChain(masks, (state.layer,) * (steps + 1), [], background, ignore, num_classes)
