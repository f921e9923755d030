"""Class-aware seasonal change: vegetation, bare soil and water change colour together, each
group by one draw per image, as they do between seasons (green-up, harvest, drought, turbidity).

Which classes form a group is read from the taxonomy's class names; a taxonomy without such
classes (buildings only) gets no seasonal change. At strength 1 vegetation turns up to 25° of
hue towards yellow (or 10° greener), loses up to 35 % or gains 15 % saturation and ±15 %
brightness; bare soil ±15 % brightness and ±20 % saturation; water ±30 % brightness and ±15°
hue. Each group's region is feathered over about two pixels so no new edge appears.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from changen.sample import Taxonomy
from changen.synthesis.nuisance.photometric import shift_hsv

GROUP_WORDS: dict[str, tuple[str, ...]] = {
    "vegetation": (
        "vegetation", "forest", "tree", "agricultur", "grass", "crop", "farm", "meadow",
        "rangeland", "shrub", "park",
    ),
    "bare": ("barren", "bare", "soil", "sand", "desert"),
    "water": ("water", "river", "lake", "sea"),
}  # fmt: skip


def season_groups(taxonomy: Taxonomy) -> dict[str, tuple[int, ...]]:
    """Class ids of each seasonal group whose names occur in ``taxonomy``."""
    groups: dict[str, tuple[int, ...]] = {}
    for group, words in GROUP_WORDS.items():
        ids = tuple(
            c.id
            for c in taxonomy.classes
            if c.id not in (taxonomy.background, taxonomy.ignore)
            and any(w in c.name.lower() for w in words)
        )
        if ids:
            groups[group] = ids
    return groups


def _draw(group: str, rng: np.random.Generator, s: float) -> tuple[float, float, float]:
    """(hue degrees, saturation factor, value factor) of one group."""
    if group == "vegetation":
        return (
            rng.uniform(-25.0, 10.0) * s,
            float(np.exp(rng.uniform(np.log(0.65), np.log(1.15)) * s)),
            float(np.exp(rng.uniform(-0.15, 0.15) * s)),
        )
    if group == "bare":
        return (
            0.0,
            float(np.exp(rng.uniform(-0.2, 0.2) * s)),
            float(np.exp(rng.uniform(-0.15, 0.15) * s)),
        )
    return rng.uniform(-15.0, 15.0) * s, 1.0, float(np.exp(rng.uniform(-0.3, 0.3) * s))


def seasonal_change(
    image: np.ndarray,
    mask: np.ndarray,
    groups: dict[str, tuple[int, ...]],
    rng: np.random.Generator,
    strength: float,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Each group's pixels (by ``mask``, the post-event classes) shifted by one draw."""
    out = image
    params: dict[str, Any] = {}
    for group in GROUP_WORDS:
        if group not in groups:
            continue
        hue, sat, val = _draw(group, rng, strength)
        region = np.isin(mask, groups[group]).astype(np.float32)
        if not region.any():
            continue
        alpha = cv2.GaussianBlur(region, (0, 0), 1.5)[..., None]
        shifted = shift_hsv(out, hue, sat, val)
        out = out * (1.0 - alpha) + shifted * alpha
        params[group] = [round(hue, 3), round(sat, 4), round(val, 4)]
    return out.astype(np.float32), params
