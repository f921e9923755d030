"""The procedural sample world: seeded aerial-looking scenes and true change pairs.

A scene is generated as a vector :class:`Layout` (buildings, roads, trees, water, fields, bare
soil, lots, cars) and then rendered to an RGB image, an OpenEarthMap mask and an instance map.
A change pair edits the layout (objects added, removed or re-classed) and renders both dates
with nuisance variation, so its change mask is exact. It is the embedded default data for the
demo and the tests, not a substitute for real imagery.
"""

from changen.data.world.change import edit_layout, render_change_pair
from changen.data.world.config import ChangeConfig, WorldConfig
from changen.data.world.files import item_rng, write_sample_world
from changen.data.world.generate import make_layout
from changen.data.world.layout import Layout, WorldObject
from changen.data.world.render import Look, random_look, rasterize_labels, render_layout
from changen.data.world.scene import render_scene

__all__ = [
    "ChangeConfig",
    "Layout",
    "Look",
    "WorldConfig",
    "WorldObject",
    "edit_layout",
    "item_rng",
    "make_layout",
    "random_look",
    "rasterize_labels",
    "render_change_pair",
    "render_layout",
    "render_scene",
    "write_sample_world",
]
