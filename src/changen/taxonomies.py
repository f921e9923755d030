"""Built-in taxonomies of the datasets changen reads, in a plain dict (:data:`TAXONOMIES`).

SECOND's class order differs between repositories, so both orders are provided under explicit
names: ``second_ding`` (the order of Ding et al.'s Bi-SRNet/SCanNet code: water first) and
``second_paper`` (the order of the SECOND paper's class list: low vegetation first). Both use
the official RGB colours, so RGB-coded labels decode identically; only the integer ids differ.

Wherever a taxonomy is named (``--taxonomy``, ``taxonomy=``), :func:`get_taxonomy` also takes
the path of a JSON file describing one (:func:`load_taxonomy`), for datasets no built-in fits.
"""

from __future__ import annotations

import json
from pathlib import Path

from changen.sample import ClassInfo, Taxonomy


def _taxonomy(
    name: str,
    classes: list[tuple[int, str, tuple[int, int, int]]],
    background: int = 0,
    ignore: int = 255,
) -> Taxonomy:
    return Taxonomy(name, tuple(ClassInfo(i, n, c) for i, n, c in classes), background, ignore)


BINARY_BUILDING = _taxonomy(
    "binary_building", [(0, "background", (0, 0, 0)), (1, "building", (255, 255, 255))]
)

XVIEW2_DAMAGE = _taxonomy(
    "xview2_damage",
    [
        (0, "background", (0, 0, 0)),
        (1, "no-damage", (255, 255, 255)),
        (2, "minor-damage", (0, 200, 0)),
        (3, "major-damage", (255, 165, 0)),
        (4, "destroyed", (220, 20, 20)),
        (5, "un-classified", (120, 120, 200)),
    ],
)

OPENEARTHMAP = _taxonomy(
    "openearthmap",
    [
        (0, "unknown", (0, 0, 0)),
        (1, "bareland", (128, 0, 0)),
        (2, "rangeland", (0, 255, 36)),
        (3, "developed", (148, 148, 148)),
        (4, "road", (255, 255, 255)),
        (5, "tree", (34, 97, 38)),
        (6, "water", (0, 69, 255)),
        (7, "agriculture", (75, 181, 73)),
        (8, "building", (222, 31, 7)),
    ],
)

LOVEDA = _taxonomy(
    "loveda",
    [
        (0, "no-data", (0, 0, 0)),
        (1, "background", (255, 255, 255)),
        (2, "building", (255, 0, 0)),
        (3, "road", (255, 255, 0)),
        (4, "water", (0, 0, 255)),
        (5, "barren", (159, 129, 183)),
        (6, "forest", (0, 255, 0)),
        (7, "agriculture", (255, 195, 128)),
    ],
    background=1,
    ignore=0,
)

_SECOND_COLORS = {
    "unchanged": (255, 255, 255),
    "water": (0, 0, 255),
    "ground": (128, 128, 128),
    "low vegetation": (0, 128, 0),
    "tree": (0, 255, 0),
    "building": (128, 0, 0),
    "playground": (255, 0, 0),
}


def _second(name: str, order: list[str]) -> Taxonomy:
    return _taxonomy(name, [(i, n, _SECOND_COLORS[n]) for i, n in enumerate(order)])


SECOND_DING = _second(
    "second_ding",
    ["unchanged", "water", "ground", "low vegetation", "tree", "building", "playground"],
)
SECOND_PAPER = _second(
    "second_paper",
    ["unchanged", "low vegetation", "ground", "tree", "water", "building", "playground"],
)

TAXONOMIES: dict[str, Taxonomy] = {
    t.name: t
    for t in (BINARY_BUILDING, XVIEW2_DAMAGE, OPENEARTHMAP, LOVEDA, SECOND_DING, SECOND_PAPER)
}


OBJECT_CLASSES: dict[str, tuple[int, ...]] = {
    "binary_building": (1,),
    "xview2_damage": (1, 2, 3, 4, 5),
    "openearthmap": (8,),
    "loveda": (2,),
    "second_ding": (5,),
    "second_paper": (5,),
}
"""Ids of the object classes (discrete instances such as buildings, as opposed to land cover
that tiles the scene) of the built-in taxonomies, by taxonomy name."""


def object_classes(taxonomy: Taxonomy) -> tuple[int, ...]:
    """The object class ids of ``taxonomy``: :data:`OBJECT_CLASSES` for a built-in name, else
    its only foreground class (binary object data), else the classes named like "building"."""
    if taxonomy.name in OBJECT_CLASSES:
        return OBJECT_CLASSES[taxonomy.name]
    foreground = taxonomy.foreground_ids
    if len(foreground) == 1:
        return tuple(foreground)
    names = taxonomy.names
    return tuple(i for i in foreground if "building" in names[i].lower())


def get_taxonomy(name: str) -> Taxonomy:
    """A built-in taxonomy by name, or the taxonomy of a JSON file (:func:`load_taxonomy`),
    with an error listing the known names."""
    from changen.errors import ConfigError

    if name in TAXONOMIES:
        return TAXONOMIES[name]
    if name.lower().endswith(".json") and Path(name).is_file():
        return load_taxonomy(Path(name))
    raise ConfigError(
        f"unknown taxonomy {name!r}; choose one of: {', '.join(TAXONOMIES)}, or give a "
        f"taxonomy JSON file"
    )


def load_taxonomy(path: Path) -> Taxonomy:
    """A taxonomy JSON file: ``{"classes": [{"id": 0, "name": "background", "color": [0, 0,
    0]}, …]}`` with optional ``name`` (default: the file stem), ``background`` (0) and
    ``ignore`` (255), as :meth:`Taxonomy.to_dict` writes it."""
    from changen.errors import ConfigError

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return Taxonomy.from_dict({"name": path.stem, "background": 0, "ignore": 255, **doc})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(
            f"{path}: not a taxonomy ({type(e).__name__}: {e}); write JSON like "
            f'{{"classes": [{{"id": 0, "name": "background", "color": [0, 0, 0]}}, …]}}'
        ) from None
