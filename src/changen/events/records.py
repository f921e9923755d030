"""What an event did, one record per object: the per-object event log of a change process; and
a tally of what events tried, so that a run can say why an event never fired."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

EventKind = Literal["create", "remove", "reclass"]
EVENT_KINDS: tuple[str, ...] = ("create", "remove", "reclass")


@dataclass(frozen=True)
class EventRecord:
    """One object's change in one step of a change process.

    ``source_id`` is the instance id the event acted on (for ``create``: the copied object;
    ``-1`` when the shape came from a shape bank, whose entry is ``bank_index``; for a re-classed
    background region: 0). ``new_id`` is
    the instance id the pixels carry afterwards (0 when they became unlabelled background).
    ``class_before``/``class_after`` are the class ids of the edited pixels before and after
    (for ``create``, ``class_before`` is the class most of the covered pixels had). ``scale``,
    ``angle`` (degrees, counter-clockwise on screen), ``flip`` (left-right, applied before the
    rotation) describe the copy's transform; ``offset`` is the (dy, dx) displacement of the
    centroid, rounded to whole pixels (for a bank shape, which has no source position, the
    centroid itself); ``area`` is the number of edited pixels.
    """

    step: int
    event: EventKind
    source_id: int
    new_id: int
    class_before: int
    class_after: int
    scale: float = 1.0
    angle: float = 0.0
    flip: bool = False
    offset: tuple[int, int] = (0, 0)
    area: int = 0
    bank_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (the offset becomes a list)."""
        d = asdict(self)
        d["offset"] = list(self.offset)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EventRecord:
        bank = d.get("bank_index")
        return cls(
            step=int(d["step"]),
            event=d["event"],
            source_id=int(d["source_id"]),
            new_id=int(d["new_id"]),
            class_before=int(d["class_before"]),
            class_after=int(d["class_after"]),
            scale=float(d.get("scale", 1.0)),
            angle=float(d.get("angle", 0.0)),
            flip=bool(d.get("flip", False)),
            offset=(int(d["offset"][0]), int(d["offset"][1])) if "offset" in d else (0, 0),
            area=int(d.get("area", 0)),
            bank_index=None if bank is None else int(bank),
        )


NO_SOURCE, NO_ROOM, NO_FIT = "no_source", "no_room", "no_fit"
"""Why an event edited nothing: no eligible object to act on (or copy); no pixel a copy may
cover at all; a chosen copy that fits nowhere."""


@dataclass
class EventTally:
    """What the events of a run tried, by event kind: ``runs`` (calls), ``tried`` (objects
    chosen), ``done`` (records written) and ``reasons`` (``(kind, reason)`` → how often, see
    :data:`NO_SOURCE`...). Counting never draws from the generator, so it leaves every result
    unchanged; :meth:`update` sums the tallies of many chains."""

    runs: Counter[str] = field(default_factory=Counter)
    tried: Counter[str] = field(default_factory=Counter)
    done: Counter[str] = field(default_factory=Counter)
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)

    def note(self, kind: str, *, tried: int = 0, done: int = 0, reason: str | None = None) -> None:
        """One call of event ``kind``: objects chosen, records written, why it fell short."""
        self.runs[kind] += 1
        self.tried[kind] += tried
        self.done[kind] += done
        if reason is not None:
            self.reasons[kind, reason] += 1

    def update(self, other: EventTally) -> None:
        """Add ``other``'s counts to this tally."""
        self.runs.update(other.runs)
        self.tried.update(other.tried)
        self.done.update(other.done)
        self.reasons.update(other.reasons)
