"""The data model: scenes, bitemporal change samples, time series and class taxonomies.

Images are uint8 (or uint16) HWC numpy arrays; masks are uint8 class-id maps (background and
ignore ids come from the taxonomy, by convention 0 and 255); instance maps are int32 with 0 for
"no instance". Georeferenced sources carry a :class:`GeoRef` alongside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine

from changen.errors import DataError

CHANGE_IGNORE = 255
"""The ignore value of binary change masks (0 unchanged, 1 changed), whatever the taxonomy's
ignore id: LoveDA's ignore id 0 would read as "unchanged" there."""


@dataclass(frozen=True)
class ClassInfo:
    """One class of a taxonomy: integer id, human name and display colour."""

    id: int
    name: str
    color: tuple[int, int, int]


@dataclass(frozen=True)
class Taxonomy:
    """The classes of a dataset, with its background and ignore ids.

    ``ignore`` pixels are excluded from objects, events and metrics; ``background`` is the id
    that removed objects become by default.
    """

    name: str
    classes: tuple[ClassInfo, ...]
    background: int = 0
    ignore: int = 255

    def __post_init__(self) -> None:
        ids = [c.id for c in self.classes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"taxonomy {self.name!r} repeats class ids: {ids}")
        if any(not 0 <= i <= 255 for i in ids):
            raise ValueError(f"taxonomy {self.name!r} has ids outside 0..255: {ids}")

    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.classes]

    @property
    def names(self) -> dict[int, str]:
        return {c.id: c.name for c in self.classes}

    @property
    def foreground_ids(self) -> list[int]:
        """Class ids that are neither background nor ignore."""
        return [i for i in self.ids if i not in (self.background, self.ignore)]

    @property
    def num_classes(self) -> int:
        """Number of class ids, the ignore id excluded."""
        return sum(1 for i in self.ids if i != self.ignore)

    def id_of(self, name: str) -> int:
        for c in self.classes:
            if c.name == name:
                return c.id
        raise KeyError(f"taxonomy {self.name!r} has no class named {name!r}")

    def palette(self) -> np.ndarray:
        """A (256, 3) uint8 lookup table from class id to colour (unlisted ids are magenta)."""
        lut = np.zeros((256, 3), np.uint8)
        lut[:] = (255, 0, 255)
        for c in self.classes:
            lut[c.id] = c.color
        if self.ignore not in self.ids:
            lut[self.ignore] = (0, 0, 0)
        return lut

    def colorize(self, mask: np.ndarray) -> np.ndarray:
        """Render a class-id mask as an RGB image in the taxonomy's colours."""
        return self.palette()[mask.astype(np.uint8)]

    def decode_rgb(self, rgb: np.ndarray, source: str = "<array>") -> np.ndarray:
        """Map an RGB colour-coded mask to class ids; unknown colours are a :class:`DataError`."""
        if rgb.ndim != 3 or rgb.shape[2] < 3:
            raise DataError(f"{source}: expected an RGB colour-coded mask, got shape {rgb.shape}")
        code = _rgb_code(rgb[..., :3])
        colors = np.array([c.color for c in self.classes], np.int64)
        keys = _rgb_code(colors[None])[0]
        order = np.argsort(keys)
        pos = np.searchsorted(keys[order], code).clip(0, len(keys) - 1)
        known = keys[order][pos] == code
        if not known.all():
            bad = np.unique(code[~known])[:8]
            listed = ", ".join(
                str((int(b >> 16) & 255, int(b >> 8) & 255, int(b) & 255)) for b in bad
            )
            raise DataError(
                f"{source}: mask colours {listed} are not in the {self.name!r} palette; "
                f"pass the taxonomy whose colours the mask uses (or an index-map mask)"
            )
        ids = np.array([c.id for c in self.classes], np.uint8)[order]
        return ids[pos]

    def validate(self, mask: np.ndarray, source: str = "<array>") -> None:
        """Raise :class:`DataError` if the mask holds ids this taxonomy does not define."""
        allowed = np.zeros(256, bool)
        allowed[self.ids] = True
        allowed[self.ignore] = True
        present = np.flatnonzero(np.bincount(mask.ravel(), minlength=256)[:256])
        unknown = [int(i) for i in present if not allowed[i]]
        if unknown:
            raise DataError(
                f"{source}: mask ids {unknown} are not in taxonomy {self.name!r} "
                f"(ids {self.ids}, ignore {self.ignore}); choose the matching taxonomy "
                f"or remap the mask"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "background": self.background,
            "ignore": self.ignore,
            "classes": [{"id": c.id, "name": c.name, "color": list(c.color)} for c in self.classes],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Taxonomy:
        classes = tuple(
            ClassInfo(int(c["id"]), str(c["name"]), tuple(int(v) for v in c["color"]))  # type: ignore[arg-type]
            for c in d["classes"]
        )
        return cls(str(d["name"]), classes, int(d["background"]), int(d["ignore"]))


def _rgb_code(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


@dataclass(frozen=True)
class GeoRef:
    """Where a raster lies on Earth: CRS (any string rasterio accepts), affine transform, nodata."""

    crs: str | None
    transform: Affine = field(default_factory=Affine.identity)
    nodata: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"crs": self.crs, "transform": list(self.transform)[:6], "nodata": self.nodata}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeoRef:
        return cls(d.get("crs"), Affine(*d["transform"]), d.get("nodata"))


def _check_image(image: np.ndarray, what: str, source: str) -> None:
    if image.ndim != 3:
        raise DataError(f"{source}: {what} must be HWC, got shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{source}: {what} must be uint8 or uint16, got {image.dtype}")


def _check_map(arr: np.ndarray | None, shape: tuple[int, ...], what: str, source: str) -> None:
    if arr is None:
        return
    if arr.shape != shape:
        raise DataError(
            f"{source}: {what} is {arr.shape[1::-1] if arr.ndim >= 2 else arr.shape} (w×h) but "
            f"the image is {shape[::-1]}; give a {what} of the image's size"
        )


@dataclass
class Scene:
    """One single-temporal labelled image: image, semantic mask, optional instance map."""

    image: np.ndarray
    mask: np.ndarray | None = None
    instances: np.ndarray | None = None
    georef: GeoRef | None = None
    taxonomy: Taxonomy | None = None
    name: str = ""
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = self.source or self.name or "<scene>"
        _check_image(self.image, "image", where)
        hw = self.image.shape[:2]
        _check_map(self.mask, hw, "mask", where)
        _check_map(self.instances, hw, "instance map", where)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]


@dataclass
class ChangeSample:
    """A bitemporal pair with its change label and, when known, both semantic masks.

    ``change_mask`` is uint8 with 0 = unchanged, 1 = changed and :data:`CHANGE_IGNORE` (255)
    for unlabelled pixels, whatever the taxonomy's ignore id.
    """

    t1_image: np.ndarray
    t2_image: np.ndarray
    change_mask: np.ndarray
    t1_mask: np.ndarray | None = None
    t2_mask: np.ndarray | None = None
    georef: GeoRef | None = None
    taxonomy: Taxonomy | None = None
    name: str = ""
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = self.source or self.name or "<change sample>"
        _check_image(self.t1_image, "t1_image", where)
        _check_image(self.t2_image, "t2_image", where)
        hw = self.t1_image.shape[:2]
        _check_map(self.t2_image[..., 0], hw, "t2_image", where)
        _check_map(self.change_mask, hw, "change mask", where)
        _check_map(self.t1_mask, hw, "t1 mask", where)
        _check_map(self.t2_mask, hw, "t2 mask", where)


@dataclass
class ChangeSeries:
    """A time series of T co-registered images (T, H, W, C) and masks (T, H, W)."""

    images: np.ndarray
    masks: np.ndarray
    georef: GeoRef | None = None
    taxonomy: Taxonomy | None = None
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.masks.shape != self.images.shape[:3]:
            raise DataError(
                f"{self.name or '<series>'}: images {self.images.shape} and masks "
                f"{self.masks.shape} must be (T, H, W, C) and (T, H, W)"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def pair(self, i: int, j: int) -> ChangeSample:
        """The change sample between steps ``i`` and ``j`` (change = class differs)."""
        a, b = self.masks[i], self.masks[j]
        change = (a != b).astype(np.uint8)
        if self.taxonomy is not None:
            ign = self.taxonomy.ignore
            change[(a == ign) | (b == ign)] = CHANGE_IGNORE
        return ChangeSample(
            self.images[i],
            self.images[j],
            change,
            a,
            b,
            self.georef,
            self.taxonomy,
            f"{self.name}_{i}_{j}" if self.name else f"{i}_{j}",
        )
