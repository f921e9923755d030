"""The nuisance model: everything that differs between two acquisitions of an unchanged scene.

Real change pairs differ everywhere (sensor, season, illumination, shadows, registration); a
detector trained on pairs whose unchanged pixels are identical learns that any difference is
change. :class:`Nuisance` sees a synthesised post-event image through another acquisition: it
never touches the masks or change labels (misregistration included: labels keep the t1
geometry, see :mod:`.geometry`), and applies the components of :data:`.config.COMPONENTS` in
order, each drawing from its own child of the sample's generator (turning one component off
does not change what the others draw). With every strength 0 the image is returned unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from changen.sample import Taxonomy
from changen.synthesis.nuisance.config import COMPONENTS, NuisanceConfig
from changen.synthesis.nuisance.geometry import misregister
from changen.synthesis.nuisance.photometric import global_change, local_change
from changen.synthesis.nuisance.seasonal import season_groups, seasonal_change
from changen.synthesis.nuisance.sensor import sensor_effects, to_uint8
from changen.synthesis.nuisance.shadows import cast_shadows
from changen.synthesis.nuisance.style import DonorBank, transfer_style

Step = Callable[..., tuple[np.ndarray, dict[str, Any]]]
"""A component: ``(image, rng=, strength=)`` → (image, drawn parameters)."""


@dataclass(frozen=True)
class Nuisance:
    """A :class:`NuisanceConfig` with what it needs of the source: the donor scenes' colour
    statistics (style transfer is skipped without them) and the seasonal class groups."""

    config: NuisanceConfig
    donors: DonorBank | None = None
    groups: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @classmethod
    def for_taxonomy(
        cls, config: NuisanceConfig, taxonomy: Taxonomy, donors: DonorBank | None = None
    ) -> Nuisance:
        return cls(config, donors, season_groups(taxonomy))

    def describe(self) -> dict[str, Any]:
        """JSON-ready provenance: the strengths, the donors and the seasonal groups."""
        return {
            **self.config.to_dict(),
            "donors": None if self.donors is None else self.donors.describe(),
            "groups": {k: list(v) for k, v in self.groups.items()},
        }

    def apply(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        rng: np.random.Generator,
        created: np.ndarray | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """``image`` (H, W, 3) uint8 seen through another acquisition, and the drawn
        parameters per component. ``mask`` (H, W) holds the image's classes (seasonal
        groups); ``created`` (H, W) bool the pixels of objects created in this step (shadows)."""
        if not self.config.active:
            return image, {}
        steps: dict[str, Step] = {
            "photometric": global_change,
            "local": local_change,
            "misregistration": misregister,
            "sensor": sensor_effects,
        }
        if created is not None and created.any():
            steps["shadows"] = partial(cast_shadows, created=created)
        if self.groups:
            steps["seasonal"] = partial(seasonal_change, mask=mask, groups=self.groups)
        if self.donors is not None and len(self.donors):
            steps["style"] = partial(transfer_style, bank=self.donors)
        out = image.astype(np.float32) / 255.0
        params: dict[str, Any] = {}
        for name, r in zip(COMPONENTS, rng.spawn(len(COMPONENTS)), strict=True):
            strength = float(getattr(self.config, name))
            if strength > 0 and name in steps:
                out, params[name] = steps[name](out, rng=r, strength=strength)
        return to_uint8(out), params
