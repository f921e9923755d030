"""Resolution matching: a reader wrapper that resamples every scene to one ground sampling distance.

Sources of different resolutions (xView2 ≈ 0.8 m, LEVIR-CD 0.5 m, drone tiles 0.1 m) make objects
of different pixel sizes; resampling them to the target GSD *before* events and synthesis makes
the synthetic pairs match the data a detector will meet.

A scene's GSD comes from its georeference when it has a CRS: for a projected CRS, the pixel size
times the CRS's linear unit (metres, feet…); for a geographic CRS, and for Mercator projections
(Web-Mercator XYZ tiles, whose "metres" are true only at the equator), the ground distance
between neighbouring pixels at the tile centre, measured in an azimuthal equidistant projection
centred there. Without a CRS the reader's ``source_gsd`` is used; with neither, a
:class:`ConfigError`. Columns and rows are scaled separately (to square ``target_gsd`` pixels).

The image is resampled with ``cv2.INTER_AREA`` when shrinking and ``cv2.INTER_CUBIC`` when
enlarging (OpenCV saturates the cubic overshoot to the dtype's range); the mask and instance map
with ``cv2.INTER_NEAREST_EXACT`` (nearest to each output pixel's centre, so labels stay aligned
with the image; ids are never mixed or renumbered, so the wrapped reader's mask check holds).
The output size is ``round(size × factor)`` and the transform is scaled by exactly the factor,
so pixels are ``target_gsd`` wide and the bounds move by less than half a pixel. A factor
within 1 % of 1 leaves the scene untouched; otherwise ``Scene.meta["resample"]`` records the
source GSD, where it came from and the factor.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import rasterio.warp
from affine import Affine
from rasterio.crs import CRS

from changen.data.raster import parse_crs
from changen.data.readers.base import Reader, SceneReader
from changen.errors import ConfigError
from changen.sample import Scene

#: Factors this close to 1 (relative) leave the scene untouched.
IDENTITY_TOLERANCE = 0.01
_CV_MAX_CHANNELS = 4  # INTER_AREA with a non-integer factor takes at most 4 channels


def _positive(value: float, what: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{what} must be a positive number of metres, got {value}")
    return float(value)


class ResampledReader(SceneReader):
    """``reader`` with every scene resampled from its GSD to ``target_gsd`` (metres/pixel).

    ``source_gsd`` is the source's GSD for scenes whose georeference has no CRS.
    """

    def __init__(self, reader: Reader[Scene], target_gsd: float, source_gsd: float | None = None):
        if reader.kind != "scene":
            raise ConfigError(
                f"{reader.root}: --gsd resamples single-temporal sources, got a "
                f"{reader.kind} dataset ({reader.format})"
            )
        self.reader = reader
        self.target_gsd = _positive(target_gsd, "--gsd")
        self.source_gsd = None if source_gsd is None else _positive(source_gsd, "--source-gsd")
        self.root = reader.root
        self.taxonomy = reader.taxonomy
        self.names = reader.names
        self.format = reader.format  # type: ignore[misc]  # the wrapped reader's, per instance
        self.licence = reader.licence

    def __getitem__(self, index: int) -> Scene:
        return resample_scene(self.reader[index], self.target_gsd, self.source_gsd)


def resample_scene(scene: Scene, target_gsd: float, source_gsd: float | None = None) -> Scene:
    """``scene`` resampled to ``target_gsd``; see the module docstring for the rules."""
    (gsd_x, gsd_y), origin = scene_gsd(scene, source_gsd)
    fx, fy = gsd_x / target_gsd, gsd_y / target_gsd
    if abs(fx - 1) <= IDENTITY_TOLERANCE and abs(fy - 1) <= IDENTITY_TOLERANCE:
        return scene
    shrink = fx * fy < 1
    image = _resize(scene.image, fx, fy, cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    georef = scene.georef
    if georef is not None:
        georef = dataclasses.replace(
            georef, transform=georef.transform @ Affine.scale(1 / fx, 1 / fy)
        )
    record = {
        "source_gsd": [gsd_x, gsd_y],
        "gsd_from": origin,
        "target_gsd": target_gsd,
        "factor": [fx, fy],
        "shape_before": list(scene.shape),
    }
    return dataclasses.replace(
        scene,
        image=image,
        mask=None if scene.mask is None else _resize(scene.mask, fx, fy, cv2.INTER_NEAREST_EXACT),
        instances=None
        if scene.instances is None
        else _resize(scene.instances, fx, fy, cv2.INTER_NEAREST_EXACT),
        georef=georef,
        meta={**scene.meta, "resample": record},
    )


def scene_gsd(scene: Scene, source_gsd: float | None = None) -> tuple[tuple[float, float], str]:
    """The (column, row) GSD of ``scene`` in metres and where it came from (georef or given)."""
    georef = scene.georef
    if georef is not None and georef.crs is not None:
        where = scene.source or scene.name
        gsd = georef_gsd(georef.crs, georef.transform, scene.shape, where)
        return gsd, "georef"
    if source_gsd is not None:
        return (source_gsd, source_gsd), "source_gsd"
    raise ConfigError(
        f"{scene.source or scene.name or '<scene>'}: the item has no georeferenced CRS to take "
        f"its ground sampling distance from; give --source-gsd METRES"
    )


def georef_gsd(
    crs_text: str, t: Affine, shape: tuple[int, int], where: str = "<raster>"
) -> tuple[float, float]:
    """The ground size in metres of one pixel step along the columns and rows of a raster."""
    crs = parse_crs(crs_text, where)
    if crs.is_projected and crs.to_dict().get("proj") != "merc":
        unit = crs.linear_units_factor[1]
        return math.hypot(t.a, t.d) * unit, math.hypot(t.b, t.e) * unit
    return _ground_step(crs, t, shape)


def _ground_step(crs: CRS, t: Affine, shape: tuple[int, int]) -> tuple[float, float]:
    """Pixel steps at the raster's centre measured on the ground (local azimuthal equidistant)."""
    h, w = shape
    points = [t @ (w / 2, h / 2), t @ (w / 2 + 1, h / 2), t @ (w / 2, h / 2 + 1)]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    lon, lat = rasterio.warp.transform(crs, "EPSG:4326", xs[:1], ys[:1])
    local = CRS.from_proj4(f"+proj=aeqd +lat_0={lat[0]} +lon_0={lon[0]} +datum=WGS84 +units=m")
    ex, ey = rasterio.warp.transform(crs, local, xs, ys)
    return math.hypot(ex[1] - ex[0], ey[1] - ey[0]), math.hypot(ex[2] - ex[0], ey[2] - ey[0])


def _resize(array: np.ndarray, fx: float, fy: float, interpolation: int) -> np.ndarray:
    """``cv2.resize`` by exactly (fx, fy), keeping HWC arrays HWC whatever their band count."""
    if array.ndim == 2:
        return cv2.resize(array, None, fx=fx, fy=fy, interpolation=interpolation)
    parts = [
        cv2.resize(
            array[..., c : c + _CV_MAX_CHANNELS], None, fx=fx, fy=fy, interpolation=interpolation
        )
        for c in range(0, array.shape[2], _CV_MAX_CHANNELS)
    ]
    return np.concatenate([p.reshape(*p.shape[:2], -1) for p in parts], axis=2)
