"""Web-map (XYZ / slippy-map) tiles with one GeoJSON of polygons, as georeferenced scenes.

Layout: a folder of tiles named ``<anything>-<x>-<y>-<z>.png`` (or ``.jpg``), e.g.
``OAM-1238424-1046544-21.png``, and one GeoJSON label file (EPSG:4326 unless its ``crs`` member
says otherwise). Each tile's Web-Mercator (EPSG:3857) bounds follow from x/y/z; the polygons
are reprojected to EPSG:3857 and rasterised on the tile's grid (semantic mask + instance map,
as in :mod:`changen.data.readers.geovector`). RGBA tiles: alpha-0 pixels (outside the imagery)
become the taxonomy's ignore id in the mask and 0 in the instance map.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

from affine import Affine

from changen.data.bands import to_rgb8
from changen.data.imageio import read_image
from changen.data.readers.base import SceneReader
from changen.data.readers.geovector import (
    ClassRule,
    VectorLabels,
    is_vector_file,
    rasterize_labels,
    read_vector_labels,
)
from changen.errors import DataError
from changen.sample import GeoRef, Scene, Taxonomy
from changen.taxonomies import BINARY_BUILDING

WEB_MERCATOR = "EPSG:3857"
#: Half the extent of the Web-Mercator square: π times the WGS 84 equatorial radius, in metres.
ORIGIN_SHIFT = math.pi * 6378137.0
TILE_NAME = re.compile(
    r"^(?P<prefix>.*)-(?P<x>\d+)-(?P<y>\d+)-(?P<z>\d+)\.(png|jpe?g)$", re.IGNORECASE
)


def parse_tile_name(path: Path) -> tuple[int, int, int] | None:
    """(x, y, z) of a tile file named ``<anything>-<x>-<y>-<z>.png``, or None."""
    m = TILE_NAME.match(path.name)
    return (int(m["x"]), int(m["y"]), int(m["z"])) if m else None


def tile_bounds(x: int, y: int, z: int) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of slippy-map tile x/y/z in EPSG:3857 metres."""
    size = 2 * ORIGIN_SHIFT / 2**z
    left = -ORIGIN_SHIFT + x * size
    top = ORIGIN_SHIFT - y * size
    return left, top - size, left + size, top


def tile_transform(x: int, y: int, z: int, width: int, height: int) -> Affine:
    """The EPSG:3857 affine transform of a ``width``×``height`` image of tile x/y/z."""
    left, bottom, right, top = tile_bounds(x, y, z)
    return Affine((right - left) / width, 0.0, left, 0.0, -(top - bottom) / height, top)


class XYZTileReader(SceneReader):
    """Slippy-map tiles + one GeoJSON as :class:`Scene` s in EPSG:3857."""

    format = "xyz_tiles"

    def __init__(
        self,
        root: str | Path,
        taxonomy: Taxonomy = BINARY_BUILDING,
        *,
        labels: str | Path | None = None,
        labels_crs: str | None = None,
        class_property: str | None = None,
        class_map: Mapping[str, int] | None = None,
        default_class: int | None = None,
        all_touched: bool = False,
    ) -> None:
        super().__init__(root, taxonomy)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: expected a folder of XYZ tiles and a GeoJSON")
        self.rule = ClassRule(taxonomy, class_property, class_map, default_class)
        self.labels_crs, self.all_touched = labels_crs, all_touched
        self.tiles: list[Path] = []
        self.xyz: list[tuple[int, int, int]] = []
        for p in sorted(self.root.iterdir()):
            xyz = parse_tile_name(p)
            if xyz is not None and not p.name.startswith("."):
                _check_xyz(p, *xyz)
                self.tiles.append(p)
                self.xyz.append(xyz)
        self.label_file = Path(labels) if labels is not None else self._find_labels()
        if not self.label_file.is_file():
            raise DataError(f"{self.label_file}: label file not found")
        self.names = [p.stem for p in self.tiles]
        self._labels: VectorLabels | None = None
        self._require_items("tiles named <name>-<x>-<y>-<z>.png")

    def _find_labels(self) -> Path:
        found = sorted(
            p
            for p in self.root.iterdir()
            if is_vector_file(p) and p.suffix.lower() in (".geojson", ".json")
        )
        if len(found) != 1:
            what = "no GeoJSON" if not found else f"{len(found)} GeoJSON files"
            raise DataError(
                f"{self.root}: {what} beside the tiles; put exactly one there or pass labels="
            )
        return found[0]

    @classmethod
    def detect(cls, root: Path) -> bool:
        if not root.is_dir():
            return False
        files = [p for p in root.iterdir() if p.is_file()]
        return any(parse_tile_name(p) is not None for p in files) and any(
            p.suffix.lower() == ".geojson" for p in files
        )

    def __getitem__(self, index: int) -> Scene:
        path, (x, y, z) = self.tiles[index], self.xyz[index]
        rgb, valid = to_rgb8(read_image(path), source=str(path))
        height, width = rgb.shape[:2]
        transform = tile_transform(x, y, z, width, height)
        if self._labels is None:
            self._labels = read_vector_labels(self.label_file, self.labels_crs)
        mask, instances, features = rasterize_labels(
            self._labels, WEB_MERCATOR, transform, (height, width), self.rule, self.all_touched
        )
        if valid is not None:
            mask[~valid] = self.taxonomy.ignore
            instances[~valid] = 0
        return Scene(
            rgb,
            mask,
            instances,
            GeoRef(WEB_MERCATOR, transform),
            self.taxonomy,
            path.stem,
            str(path),
            {
                "tile": (x, y, z),
                "labels": str(self.label_file),
                "instance_features": features,
            },
        )


def _check_xyz(path: Path, x: int, y: int, z: int) -> None:
    if z > 30 or x >= 2**z or y >= 2**z:
        raise DataError(
            f"{path}: tile x={x} y={y} z={z} does not exist (x and y must be below "
            f"2**z); name tiles <name>-<x>-<y>-<z>"
        )
