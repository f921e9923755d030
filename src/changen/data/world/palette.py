"""Colours of the sample world's materials (RGB, 0..255, before shading and texture).

Values are eyeballed from 0.3–0.5 m aerial imagery (LEVIR-CD, LoveDA-like scenes).
"""

from __future__ import annotations

import numpy as np

from changen.data.world.layout import RGB

ROOFS: tuple[RGB, ...] = (
    (72, 72, 78),
    (108, 106, 104),
    (160, 158, 152),
    (206, 204, 198),
    (152, 80, 60),
    (120, 90, 72),
    (88, 102, 120),
    (94, 112, 94),
    (182, 124, 92),
    (60, 62, 70),
)
SOILS: tuple[RGB, ...] = ((196, 178, 150), (210, 198, 174), (166, 140, 112), (128, 114, 98))
CROPS: dict[str, RGB] = {
    "green": (86, 124, 56),
    "young": (120, 140, 84),
    "yellow": (194, 178, 114),
    "ploughed": (128, 102, 80),
    "stubble": (180, 164, 124),
}
WATERS: tuple[RGB, ...] = ((36, 56, 62), (30, 46, 68), (56, 70, 56))
PAVED: dict[str, RGB] = {"asphalt": (98, 98, 100), "concrete": (174, 172, 166)}
ROADS: dict[str, RGB] = {
    "asphalt": (104, 104, 106),
    "concrete": (182, 179, 172),
    "dirt": (172, 152, 122),
}
TREES: tuple[RGB, ...] = ((50, 76, 40), (64, 82, 44), (42, 64, 42), (72, 86, 50))
CARS: tuple[RGB, ...] = (
    (232, 232, 232),
    (28, 28, 30),
    (160, 162, 166),
    (150, 30, 30),
    (40, 60, 120),
    (210, 210, 214),
)
#: (base, alternate) rangeland colours of a dry and of a green biome; scenes mix the two.
GROUND_DRY: tuple[RGB, RGB] = ((152, 142, 114), (128, 122, 96))
GROUND_GREEN: tuple[RGB, RGB] = ((110, 126, 80), (90, 108, 64))


def jitter(rng: np.random.Generator, color: RGB, amount: float = 0.06) -> RGB:
    """The colour with a random brightness change and a smaller per-channel one."""
    gain = rng.normal(1.0, amount) * rng.normal(1.0, amount / 5, 3)
    c = np.clip(np.asarray(color) * gain, 0, 255)
    return float(c[0]), float(c[1]), float(c[2])


def pick(rng: np.random.Generator, colors: tuple[RGB, ...], amount: float = 0.06) -> RGB:
    return jitter(rng, colors[int(rng.integers(len(colors)))], amount)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)
