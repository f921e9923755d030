"""The default change process of a taxonomy, and why a requested event never fired.

One policy for every entry point (``simulate``, ``generate``, the GAN trainer, the Python API):

- events: create and remove, plus reclass when the transition kernel fits the taxonomy
  (:func:`kernel_fits`; the built-in OpenEarthMap kernel by default);
- 1–5 objects per event and step, created objects scaled 0.5–1.5, any rotation, no flip;
- removed objects: :func:`~changen.events.default_fill` (the surrounding class on land cover,
  the background on object masks);
- placement of created objects: on the background for object taxonomies (buildings on empty
  ground, the paper's setting); on land cover, which has no background, into the interior of a
  homogeneous host region (:data:`LAND_COVER_PLACEMENT`: ChangeAnywhere's rule, measured by a
  distance transform; see :mod:`changen.events.create`).

``--events changeanywhere`` (:data:`CHANGEANYWHERE`) names ChangeAnywhere's own process
instead (:func:`changeanywhere_process`): instances *moved* into homogeneous interiors, and
instances filled with their surrounding class.

:func:`unfired_warnings` turns a run's event counts (and, when given, the summed
:class:`~changen.events.records.EventTally` of its chains) into one line per requested event
that never fired, with the reason and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from changen.errors import ConfigError
from changen.events.create import CreateConfig, Placement
from changen.events.process import ChangeProcess, EventSpec
from changen.events.records import NO_FIT, NO_ROOM, NO_SOURCE, EventTally
from changen.events.remove import Fill, RemoveConfig, default_fill
from changen.events.transition import OPENEARTHMAP_KERNEL, TransitionKernel
from changen.sample import Taxonomy
from changen.taxonomies import object_classes

DEFAULT_COUNT = (1, 5)
DEFAULT_SCALE = (0.5, 1.5)
DEFAULT_MIN_AREA = 64
LAND_COVER_PLACEMENT: Placement = "homogeneous"
"""Where created objects land on land-cover masks by default."""
CHANGEANYWHERE = "changeanywhere"
"""The ``events`` name of ChangeAnywhere's process (:func:`changeanywhere_process`)."""


def kernel_fits(kernel: TransitionKernel, taxonomy: Taxonomy) -> bool:
    """True if every class id of the kernel is a class of the taxonomy (and not its ignore)."""
    ids = {c for edge in kernel.edges for c in edge}
    return ids <= set(taxonomy.ids) and taxonomy.ignore not in ids


def host_classes(taxonomy: Taxonomy) -> tuple[int, ...]:
    """The land-cover classes created objects may land in: every class but the background,
    the ignore id and the object classes (a building is not pasted onto a building)."""
    objects = set(object_classes(taxonomy))
    return tuple(i for i in taxonomy.foreground_ids if i not in objects)


def is_land_cover(taxonomy: Taxonomy) -> bool:
    """Whether the masks have land-cover classes (any class but background, ignore and the
    object classes), as opposed to objects on background (buildings, damage levels)."""
    return bool(host_classes(taxonomy))


def default_placement(taxonomy: Taxonomy) -> Placement:
    """``free`` (background only) for object taxonomies, :data:`LAND_COVER_PLACEMENT` else."""
    return LAND_COVER_PLACEMENT if is_land_cover(taxonomy) else "free"


def changeanywhere_process(
    *, steps: int = 1, count: tuple[int, int] = DEFAULT_COUNT, within: tuple[int, ...] = ()
) -> ChangeProcess:
    """ChangeAnywhere's change events (its §2.3), both in every step. Appearance: ``count``
    instances are *moved* — same shape and class, no scaling or rotation — into the interior
    of a single-class region of another class (homogeneous placement; ``within`` restricts the
    host classes), and the place each one leaves takes the class around it. Disappearance:
    ``count`` instances take the class of their surrounding land cover. The change label is the
    XOR of the two masks (:func:`~changen.events.labels.binary_change`)."""
    appear = CreateConfig(count=count, placement="homogeneous", within_classes=within, move=True)
    vanish = RemoveConfig(count=count, fill="surrounding")
    events = (EventSpec("create", appear), EventSpec("remove", vanish))
    return ChangeProcess(events, steps=steps)


def _check_within(hosts: tuple[int, ...], taxonomy: Taxonomy, unlabeled: bool) -> None:
    """``--within`` classes must be classes of the taxonomy (unlabeled masks have none)."""
    unknown = sorted(set(hosts) - set(taxonomy.ids)) if not unlabeled else []
    if unknown:
        raise ConfigError(
            f"--within {','.join(map(str, unknown))}: not classes of taxonomy "
            f"{taxonomy.name!r} (ids {', '.join(map(str, taxonomy.ids))}); choose from those"
        )


def _refuse_fixed(flags: Mapping[str, object]) -> None:
    """``--events changeanywhere`` fixes these choices: any of ``flags`` given is an error."""
    given = ", ".join(name for name, value in flags.items() if value is not None)
    if given:
        raise ConfigError(
            f"--events {CHANGEANYWHERE} fixes {given} (moved instances keep their shape, land "
            f"in homogeneous interiors and leave the surrounding class); drop {given} or give "
            f"--events as a list of events"
        )


def default_process(
    taxonomy: Taxonomy,
    *,
    events: str | None = None,
    steps: int = 1,
    unlabeled: bool = False,
    count: tuple[int, int] | None = None,
    scale: tuple[float, float] | None = None,
    rotate: str | None = None,
    flip: bool | None = None,
    fill: Fill | None = None,
    kernel: TransitionKernel | None = None,
    placement: Placement | None = None,
    within: tuple[int, ...] | None = None,
    min_area: int | None = None,
) -> ChangeProcess:
    """The process of the module's policy, with any of its choices overridden (``None``
    keeps the default; ``min_area`` that of :meth:`ChangeProcess.from_flags`). ``unlabeled``:
    class-agnostic masks (one "object" class on background), which never re-class.
    ``events=CHANGEANYWHERE`` gives :func:`changeanywhere_process`, which takes only
    ``steps``, ``count`` and ``within``."""
    if events is not None and events.strip() == CHANGEANYWHERE:
        fixed = {"--scale": scale, "--rotate": rotate, "--flip": flip, "--fill": fill}
        _refuse_fixed({**fixed, "--kernel": kernel, "--placement": placement, "min_area": min_area})
        _check_within(within or (), taxonomy, unlabeled)
        return changeanywhere_process(
            steps=steps, count=count or DEFAULT_COUNT, within=within or ()
        )
    transition = kernel or OPENEARTHMAP_KERNEL
    fits = not unlabeled and kernel_fits(transition, taxonomy)
    kinds = events or ("create,remove,reclass" if fits else "create,remove")
    if "reclass" in [k.strip() for k in kinds.split(",")] and not fits:
        why = (
            "unlabeled mode has one class (object)"
            if unlabeled
            else f"kernel {transition.name!r} uses classes that taxonomy {taxonomy.name!r} "
            f"lacks; pass --kernel FILE"
        )
        raise ConfigError(f"--events reclass: {why}, or drop reclass from --events")
    where = placement or ("free" if unlabeled else default_placement(taxonomy))
    hosts = within if within is not None else ()
    _check_within(hosts, taxonomy, unlabeled)
    if where == "within" and not hosts:
        hosts = host_classes(taxonomy)
        if not hosts:
            raise ConfigError(
                f"--placement within: taxonomy {taxonomy.name!r} has no land-cover class to "
                f"place objects in; pass --within CLASS,…"
            )
    return ChangeProcess.from_flags(
        events=kinds,
        steps=steps,
        count=count or DEFAULT_COUNT,
        scale=scale or DEFAULT_SCALE,
        rotate=rotate or "any",  # type: ignore[arg-type]  # CreateConfig checks the name
        flip=bool(flip),
        fill=fill or ("background" if unlabeled else default_fill(taxonomy)),
        kernel=transition,
        placement=where,
        within_classes=hosts,
        min_area=DEFAULT_MIN_AREA if min_area is None else min_area,
    )


UNFIRED_REASONS = {
    "create": "no room to place a copy (placement {placement!r}; 'free' needs background "
    "pixels, which land-cover masks lack) or no whole source object (off the mask border) "
    "reaches min_area {min_area} px; try --placement homogeneous (or --placement within "
    "--within CLASS,…)",
    "remove": "no object of the allowed classes reaches min_area {min_area} px; lower min_area "
    "or check the masks' classes",
    "reclass": "no object of the kernel's source classes reaches min_area {min_area} px; check "
    "--kernel against the masks' classes",
}
"""Why an event of each kind may never fire, with the fix (formatted with its config), when no
tally says more."""

_ROOM = {
    "free": "no background (id {background}) pixels to place on in these masks; use "
    "--placement homogeneous (or --placement within --within CLASS,…)",
    "within": "no pixels of the within classes {within} in these masks; choose other "
    "--within classes or --placement homogeneous",
    "homogeneous": "no single-class region of a host class is large enough to hold a copy; "
    "lower --scale or min_area, or use --placement free",
}


def _tallied_reason(kind: str, config: Any, tally: EventTally, background: int) -> str | None:
    """The reason a tally gives for ``kind`` never firing, with the fix; None when it has none."""
    runs, tried = tally.runs[kind], tally.tried[kind]
    if runs == 0:
        return "the process never drew it (mixture weights, or its probability per step)"
    if tally.reasons[kind, NO_SOURCE] == runs:
        return (
            f"no eligible object in {runs} runs (at least min_area {config.min_area} px"
            + (", off the mask border" if kind == "create" else "")
            + "); lower min_area or check the masks' classes"
        )
    if kind != "create":
        return None
    head = f"0 of {tried} attempts placed"
    if tally.reasons[kind, NO_ROOM]:
        within = ",".join(str(c) for c in config.within_classes) or "-"
        room = _ROOM[config.placement].format(background=background, within=within)
        return f"{head}: {room}"
    if tally.reasons[kind, NO_FIT]:
        return f"{head}: no copy fits the room left (lower --scale, or another --placement)"
    return None


def unfired_warnings(
    process: ChangeProcess,
    counts: Mapping[str, int],
    tally: EventTally | None = None,
    *,
    background: int = 0,
) -> list[str]:
    """One line per event of ``process`` that never happened in a run (``counts``: events by
    kind), saying why and the fix: measured by ``tally`` (the sum of the run's
    ``ChangeChain.tally``) when given, else the likely reason. ``background``: the taxonomy's
    background id, named in the advice."""
    lines = []
    for spec in process.events:
        if counts.get(spec.kind, 0) > 0 or spec.prob <= 0:
            continue
        config: Any = spec.config
        text = None if tally is None else _tallied_reason(spec.kind, config, tally, background)
        if text is None:
            text = UNFIRED_REASONS[spec.kind].format(
                min_area=getattr(config, "min_area", 0),
                placement=getattr(config, "placement", ""),
            )
        lines.append(f"warning: {spec.kind} never happened: {text}")
    return lines
