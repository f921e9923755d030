"""Seeded builders of small georeferenced fixtures whose labels are known in pixel space.

Rectangles are given as (row0, col0, row1, col1) with edges on pixel boundaries, so the
pixel-centre rasterisation rule gives exactly ``mask[row0:row1, col0:col1]`` whatever tiny
error reprojection adds. Vertices are reprojected (not edges densified), so a rectangle that
goes out to EPSG:4326 and back lands on the same pixel corners.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.warp import transform_geom

from changen.data.imageio import write_image
from changen.data.raster import write_raster
from changen.sample import GeoRef

UTM = "EPSG:32633"
UTM_TRANSFORM = Affine(0.5, 0.0, 500_000.0, 0.0, -0.5, 4_650_000.0)
Rect = tuple[int, int, int, int]
#: Three buildings on a 48×64 raster; the last overlaps the second (later polygons win).
RECTS: list[Rect] = [(4, 6, 14, 20), (20, 30, 34, 50), (30, 44, 40, 58)]


def utm_georef(transform: Affine = UTM_TRANSFORM, nodata: float | None = None) -> GeoRef:
    return GeoRef(UTM, transform, nodata)


def rect_geometry(rect: Rect, transform: Affine = Affine.identity()) -> dict[str, Any]:
    """A GeoJSON polygon of a pixel rectangle, mapped through ``transform``."""
    r0, c0, r1, c1 = rect
    ring = [transform @ (c, r) for c, r in ((c0, r0), (c1, r0), (c1, r1), (c0, r1), (c0, r0))]
    return {"type": "Polygon", "coordinates": [[list(xy) for xy in ring]]}


def feature_collection(
    rects: Sequence[Rect],
    transform: Affine = UTM_TRANSFORM,
    src_crs: str = UTM,
    dst_crs: str | None = "EPSG:4326",
    properties: Sequence[dict[str, Any]] | None = None,
    crs_member: str | None = None,
) -> dict[str, Any]:
    """GeoJSON of pixel rectangles on a raster grid, reprojected to ``dst_crs`` (None: keep)."""
    geoms = [rect_geometry(r, transform) for r in rects]
    if dst_crs is not None and geoms:
        geoms = [dict(g) for g in transform_geom(src_crs, dst_crs, geoms)]
    doc: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": g, "properties": dict(p)}
            for g, p in zip(geoms, properties or [{}] * len(geoms), strict=True)
        ],
    }
    if crs_member is not None:
        doc["crs"] = {"type": "name", "properties": {"name": crs_member}}
    return doc


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def expected_maps(
    shape: tuple[int, int], rects: Sequence[Rect], classes: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The mask and instance map rasterising ``rects`` (ids 1..N in order) should give."""
    mask = np.zeros(shape, np.uint8)
    instances = np.zeros(shape, np.int32)
    for k, (r0, c0, r1, c1) in enumerate(rects):
        mask[r0:r1, c0:c1] = 1 if classes is None else classes[k]
        instances[r0:r1, c0:c1] = k + 1
    return mask, instances


def write_geotiff(
    path: Path,
    rng: np.random.Generator,
    shape: tuple[int, int] = (48, 64),
    bands: int = 3,
    dtype: type = np.uint8,
    georef: GeoRef | None = None,
) -> np.ndarray:
    """A random raster written as GeoTIFF (UTM by default); returns its HWC pixels."""
    high = 256 if dtype == np.uint8 else 4000
    array = rng.integers(1, high, (*shape, bands)).astype(dtype)
    write_raster(path, array, utm_georef() if georef is None else georef)
    return array


def write_tile(
    path: Path, rng: np.random.Generator, alpha_cols: int = 0, size: int = 256
) -> np.ndarray:
    """A random RGBA (or RGB for .jpg) tile whose first ``alpha_cols`` columns are alpha 0."""
    rgb = rng.integers(0, 256, (size, size, 3)).astype(np.uint8)
    if path.suffix.lower() == ".png":
        alpha = np.full((size, size, 1), 255, np.uint8)
        alpha[:, :alpha_cols] = 0
        rgb = np.concatenate([rgb, alpha], axis=2)
    write_image(path, rgb)
    return rgb
