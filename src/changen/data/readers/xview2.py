"""xView2 / xBD: ``images/<disaster>_<tile>_{pre,post}_disaster.png`` + ``labels/<same>.json``.

Each JSON lists building polygons as WKT in pixel coordinates (``features.xy[*].wkt``, origin
at the top-left corner of the top-left pixel, x to the right, y down) with a ``uid`` and, after
the disaster, a damage ``subtype``. Polygons are burnt with the pixel-centre rule (a pixel
belongs to a polygon when its centre ``(col + 0.5, row + 0.5)`` lies inside), giving an int32
instance map with ids 1..N in JSON order; where polygons overlap the later one wins, and the
semantic mask is read off the instance map so the two always agree.

The ``pre`` phase gives a ``binary_building`` mask (building = 1), the ``post`` phase an
``xview2_damage`` mask with the id of each polygon's subtype. A custom ``taxonomy`` may be
given: classes are then looked up by name (``building``, or the subtype names). The root may
also be a folder of splits (``train/``, ``tier3/``, …) each in that layout.

Polygons lying wholly outside the image (coordinates that are not this image's pixels: lon/lat
copied into ``xy``, another image size) burn nothing; each label file that has some gets one
:class:`~changen.data.readers.base.SkippedLabelsWarning` with their count and an example.
Buildings cut by the image edge are normal and not counted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import shapely
import shapely.wkt
from affine import Affine
from rasterio.features import rasterize
from shapely.errors import ShapelyError
from shapely.geometry.base import BaseGeometry

from changen.data.bands import to_rgb8
from changen.data.imageio import read_image
from changen.data.readers.base import SceneReader, check_mask, warn_skipped
from changen.errors import ConfigError, DataError
from changen.sample import Scene, Taxonomy
from changen.taxonomies import BINARY_BUILDING, XVIEW2_DAMAGE

_STEM = re.compile(r"^(?P<disaster>.+)_(?P<tile>\d+)_(?P<phase>pre|post)_disaster$")
_POLYGONAL = ("Polygon", "MultiPolygon")


def _tile_roots(root: Path) -> list[Path]:
    """``root`` itself if it holds ``images/`` + ``labels/``, else its subfolders that do."""
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return [root]
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and (p / "images").is_dir() and (p / "labels").is_dir()
    )


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data["features"]["xy"], list):
            raise TypeError("features.xy is not a list")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(
            f"{path}: not an xBD label file ({type(e).__name__}: {e}); it needs "
            f"features.xy[*].wkt; re-download or remove it"
        ) from None
    return data


def parse_polygons(path: Path, features: list[dict[str, Any]]) -> list[BaseGeometry]:
    """The WKT geometry of each feature, with a :class:`DataError` naming the bad one."""
    geoms = []
    for i, feature in enumerate(features):
        try:
            geom = shapely.wkt.loads(feature["wkt"])
        except (ShapelyError, KeyError, TypeError, AttributeError) as e:
            raise DataError(
                f"{path}: feature {i} has no valid WKT polygon ({e}); fix or drop that feature"
            ) from None
        if not geom.is_empty and geom.geom_type not in _POLYGONAL:
            raise DataError(
                f"{path}: feature {i} is a {geom.geom_type}, expected a Polygon; "
                f"fix or drop that feature"
            )
        geoms.append(geom)
    return geoms


def outside_image(geoms: list[BaseGeometry], shape: tuple[int, int]) -> np.ndarray:
    """Indices of the polygons whose bounds lie wholly outside an image of ``shape`` (h, w)."""
    if not geoms:
        return np.zeros(0, np.int64)
    h, w = shape
    x0, y0, x1, y1 = shapely.bounds(geoms).T
    with np.errstate(invalid="ignore"):  # empty polygons have NaN bounds: never outside
        off = (x1 <= 0) | (y1 <= 0) | (x0 >= w) | (y0 >= h)
    return np.flatnonzero(off)


def _warn_outside(path: Path, geoms: list[BaseGeometry], shape: tuple[int, int]) -> None:
    """One warning for the polygons of ``path`` that lie outside the image, if any."""
    off = outside_image(geoms, shape)
    if not off.size:
        return
    x0, y0, x1, y1 = geoms[int(off[0])].bounds
    warn_skipped(
        path,
        {"outside the image": int(off.size)},
        len(geoms),
        "polygons",
        f"the first, feature {int(off[0])}, spans x {x0:.6g}..{x1:.6g}, y {y0:.6g}..{y1:.6g} "
        f"but the image is {shape[1]}×{shape[0]} px; features.xy must hold pixel coordinates of "
        f"this image (not lon/lat, not another image's size): fix or drop those features",
    )


def burn_instances(geoms: list[BaseGeometry], shape: tuple[int, int]) -> np.ndarray:
    """Rasterise polygons into an int32 map, polygon ``k`` (0-based) → id ``k + 1``."""
    shapes = [(g, k + 1) for k, g in enumerate(geoms) if not g.is_empty]
    if not shapes:
        return np.zeros(shape, np.int32)
    return rasterize(shapes, out_shape=shape, transform=Affine.identity(), fill=0, dtype="int32")


class XView2Reader(SceneReader):
    """xBD tiles of one phase as scenes with building (pre) or damage (post) masks."""

    format = "xview2"
    # The xView2 challenge's data agreement releases xBD under this licence.
    licence = "CC BY-NC-SA 4.0"

    def __init__(
        self,
        root: str | Path,
        taxonomy: Taxonomy | None = None,
        *,
        phase: Literal["pre", "post"] = "pre",
    ) -> None:
        if phase not in ("pre", "post"):
            raise ConfigError(f"phase={phase!r}; choose 'pre' or 'post'")
        default = BINARY_BUILDING if phase == "pre" else XVIEW2_DAMAGE
        super().__init__(root, taxonomy or default)
        self.phase = phase
        self._items: list[tuple[Path, Path, str, str]] = []
        missing: list[Path] = []
        seen: dict[str, Path] = {}
        for tile_root in _tile_roots(self.root):
            for image in sorted((tile_root / "images").glob(f"*_{phase}_disaster.png")):
                m = _STEM.match(image.stem)
                if m is None or image.name.startswith("."):
                    continue
                label = tile_root / "labels" / f"{image.stem}.json"
                if not label.is_file():
                    missing.append(image)
                    continue
                name = f"{m['disaster']}_{m['tile']}"
                if name in seen:
                    raise DataError(
                        f"{image}: tile {name!r} also in {seen[name]}; read one split at a time"
                    )
                seen[name] = image
                self._items.append((image, label, m["disaster"], m["tile"]))
                self.names.append(name)
        if missing:
            raise DataError(
                f"{missing[0].parent}: {len(missing)} images have no label JSON in "
                f"labels/, e.g. {missing[0].name}; add the labels or remove the images"
            )
        self._require_items(f"xView2 {phase}-disaster images with labels")

    @classmethod
    def detect(cls, root: Path) -> bool:
        return any(any((r / "images").glob("*_disaster.png")) for r in _tile_roots(root))

    def _class_ids(self, path: Path, features: list[dict[str, Any]]) -> np.ndarray:
        """Class id of each feature (index 0 is the background of the instance map)."""
        lut = np.full(len(features) + 1, self.taxonomy.background, np.uint8)
        for i, feature in enumerate(features):
            props = feature.get("properties") or {}
            cls = "building" if self.phase == "pre" else props.get("subtype")
            if cls is None:
                raise DataError(
                    f"{path}: feature {i} has no properties.subtype; post-disaster "
                    f"labels need a damage subtype (or read with phase='pre')"
                )
            try:
                lut[i + 1] = self.taxonomy.id_of(cls)
            except KeyError:
                raise DataError(
                    f"{path}: feature {i} has class {cls!r}, which taxonomy "
                    f"{self.taxonomy.name!r} does not name; use the default "
                    f"taxonomy or add the class"
                ) from None
        return lut

    def __getitem__(self, index: int) -> Scene:
        image_path, label_path, disaster, tile = self._items[index]
        image, valid = to_rgb8(read_image(image_path), source=str(image_path))
        data = _load_json(label_path)
        features = data["features"]["xy"]
        meta = data.get("metadata") or {}
        h, w = image.shape[:2]
        if (meta.get("width"), meta.get("height")) not in ((None, None), (w, h)):
            raise DataError(
                f"{label_path}: labels are for {meta['width']}×{meta['height']} "
                f"but the image {image_path} is {w}×{h}; pair the right files"
            )
        geoms = parse_polygons(label_path, features)
        _warn_outside(label_path, geoms, (h, w))
        lut = self._class_ids(label_path, features)
        instances = burn_instances(geoms, (h, w))
        mask = lut[instances]
        check_mask(mask, self.taxonomy, label_path)
        if valid is not None:
            mask[~valid] = self.taxonomy.ignore
        uids = [(f.get("properties") or {}).get("uid") for f in features]
        return Scene(
            image,
            mask,
            instances,
            None,
            self.taxonomy,
            self.names[index],
            str(image_path),
            {"disaster": disaster, "tile": tile, "phase": self.phase, "uids": uids},
        )
