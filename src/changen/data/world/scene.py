"""Single-temporal sample-world scenes as :class:`changen.sample.Scene`."""

from __future__ import annotations

import numpy as np

from changen.data.world.config import WorldConfig
from changen.data.world.generate import make_layout
from changen.data.world.render import random_look, render_layout
from changen.sample import Scene
from changen.taxonomies import OPENEARTHMAP


def render_scene(
    rng: np.random.Generator, config: WorldConfig = WorldConfig(), name: str = "world"
) -> Scene:
    """A random aerial-looking scene with its OpenEarthMap mask and instance map.

    The image is uint8 RGB; the mask holds OpenEarthMap ids (2 rangeland where nothing else
    stands); instances are int32, one id per building, tree cluster, water body, field, lot,
    bare patch and road (0 = none). Everything is drawn from ``rng``.
    """
    layout = make_layout(rng, config)
    look = random_look(rng, config.texture, config.sensor_noise)
    image, mask, instances = render_layout(layout, look, rng)
    meta = {
        "generator": "changen.data.world",
        "urbanity": round(layout.urbanity, 3),
        "objects": layout.counts(),
        "sun_azimuth": round(look.sun_azimuth, 1),
    }
    return Scene(
        image,
        mask,
        instances,
        taxonomy=OPENEARTHMAP,
        name=name,
        source="changen.data.world",
        meta=meta,
    )
