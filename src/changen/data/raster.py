"""GeoTIFF (and any GDAL-readable raster) in and out, with its georeference.

Arrays are HWC in the file's dtype; bands are 1-based like GDAL. The georeference travels as a
:class:`changen.sample.GeoRef` whose CRS is ``"EPSG:<code>"`` (or another authority's
``"AUTH:<code>"``) when the CRS matches an authority code exactly, else its WKT. A file that is
not georeferenced (no CRS, identity transform, no nodata: a plain TIFF or PNG) reads as ``None``.

:func:`write_raster` writes Cloud-Optimised GeoTIFFs (GDAL's ``COG`` driver; a tiled GTiff with
the same profile where GDAL lacks it): 256² tiles, deflate, internal overviews when a side
exceeds :data:`OVERVIEWS_FROM`. A class mask written with ``classes`` carries a colour table
and its class names (see :func:`write_classes`), so GIS tools draw it in the classes' colours.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.dtypes import check_dtype
from rasterio.enums import ColorInterp, Compression, Resampling
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from changen.data.atomic import atomic_path
from changen.errors import ConfigError, DataError
from changen.sample import GeoRef, Taxonomy

#: Rasters with a side longer than this get internal overviews (2×, 4×, … down to one tile).
OVERVIEWS_FROM = 512
_BLOCK = 256
_PREDICTED = ("deflate", "lzw", "zstd", "lzma")

#: Class id → (name, RGB colour): what a class mask's colour table and names hold.
ClassTable = dict[int, tuple[str, tuple[int, ...]]]

#: The change label of the LEVIR-CD layouts: 0 unchanged (black), 255 changed (white).
CHANGE_LABEL_CLASSES: ClassTable = {0: ("unchanged", (0, 0, 0)), 255: ("changed", (255, 255, 255))}

#: The change map of ``detect predict``: 0 unchanged (black), 1 changed (white).
CHANGE_MAP_CLASSES: ClassTable = {0: ("unchanged", (0, 0, 0)), 1: ("changed", (255, 255, 255))}


def taxonomy_classes(taxonomy: Taxonomy) -> ClassTable:
    """The class table of a taxonomy's masks: every class in its colour, and the ignore id
    (black: a TIFF colour table has no transparency)."""
    table: ClassTable = {c.id: (c.name, tuple(c.color)) for c in taxonomy.classes}
    table.setdefault(taxonomy.ignore, ("ignore", (0, 0, 0)))
    return table


@functools.cache
def has_cog_driver() -> bool:
    """True if the installed GDAL writes Cloud-Optimised GeoTIFFs (``COG`` driver, GDAL ≥ 3.1)."""
    with rasterio.Env() as env:
        return "COG" in env.drivers()


def write_classes(dataset: Any, classes: ClassTable) -> None:
    """Give band 1 of an open, writable dataset the colour table and names of ``classes``.

    GeoTIFF has no raster attribute table that rasterio writes, so the names go to GDAL
    metadata: the dataset item ``CLASS_NAMES`` (``"0=background;1=building"``), a band item
    ``CLASS_<id>`` per class, and the band description ``"class"``.
    """
    dataset.write_colormap(1, {i: (*color[:3], 255) for i, (_, color) in classes.items()})
    dataset.update_tags(CLASS_NAMES=";".join(f"{i}={name}" for i, (name, _) in classes.items()))
    dataset.update_tags(1, **{f"CLASS_{i}": name for i, (name, _) in classes.items()})
    dataset.set_band_description(1, "class")


def crs_to_string(crs: CRS | None) -> str | None:
    """The CRS as ``"EPSG:32616"`` when it is exactly an authority code, else as WKT."""
    if crs is None:
        return None
    auth = crs.to_authority(confidence_threshold=100)
    if auth is not None:
        return f"{auth[0]}:{auth[1]}"
    return crs.to_wkt()


def parse_crs(crs: str, source: str = "<crs>") -> CRS:
    """A rasterio CRS from any string rasterio accepts; :class:`DataError` if it is not one."""
    try:
        return CRS.from_user_input(crs)
    except CRSError:
        short = crs if len(crs) < 80 else crs[:77] + "..."
        raise DataError(
            f"{source}: {short!r} is not a CRS rasterio understands; give an "
            f"EPSG code such as 'EPSG:32616' or a WKT string"
        ) from None


def window_transform(transform: Affine, window: Window) -> Affine:
    """The transform of ``window`` of a raster with ``transform`` (its origin moved, exactly)."""
    return transform @ Affine.translation(window.col_off, window.row_off)


def _georef(crs: CRS | None, transform: Affine, nodata: float | None) -> GeoRef | None:
    crs_str = crs_to_string(crs)
    if crs_str is None and transform == Affine.identity() and nodata is None:
        return None
    return GeoRef(crs_str, transform, None if nodata is None else float(nodata))


def _open(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as e:
        raise DataError(
            f"{path}: not a readable raster ({_first_line(e)}); re-export or remove the file"
        ) from None


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def raster_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Size, band count, dtype and georeference of a raster, without reading its pixels.

    Keys: ``width, height, count, dtype, crs, transform, nodata`` and ``alpha`` (the 1-based
    band GDAL marks as alpha, or ``None``).
    """
    path = Path(path)
    with _open(path) as src:
        alpha = [i + 1 for i, c in enumerate(src.colorinterp) if c == ColorInterp.alpha]
        return {
            "width": src.width,
            "height": src.height,
            "count": src.count,
            "dtype": src.dtypes[0],
            "crs": crs_to_string(src.crs),
            "transform": src.transform,
            "nodata": src.nodata,
            "alpha": alpha[0] if alpha else None,
        }


def read_raster(
    path: str | os.PathLike[str],
    bands: tuple[int, ...] | None = None,
    window: Window | None = None,
) -> tuple[np.ndarray, GeoRef | None]:
    """Read ``bands`` (1-based; all by default) of ``window`` (whole raster by default).

    Returns the HWC array in the file's dtype and the georeference of what was read (for a
    window, the window's own transform), or ``None`` when the file is not georeferenced.
    """
    path = Path(path)
    with _open(path) as src:
        if bands is not None and any(not 1 <= b <= src.count for b in bands):
            raise DataError(
                f"{path}: bands {tuple(bands)} requested but the raster has "
                f"{src.count} band(s) (bands are 1-based)"
            )
        if window is not None:
            _check_window(path, window, src.width, src.height)
        try:
            data = src.read(list(bands) if bands is not None else None, window=window)
        except RasterioIOError as e:
            raise DataError(
                f"{path}: pixels could not be read ({_first_line(e)}); the file is "
                f"probably truncated or corrupt, re-export it"
            ) from None
        georef = _georef(src.crs, src.transform, src.nodata)
        if georef is not None and window is not None:
            georef = GeoRef(georef.crs, window_transform(georef.transform, window), georef.nodata)
    return np.ascontiguousarray(np.moveaxis(data, 0, -1)), georef


def _check_window(path: Path, window: Window, width: int, height: int) -> None:
    inside = (
        window.col_off >= 0
        and window.row_off >= 0
        and window.width > 0
        and window.height > 0
        and window.col_off + window.width <= width
        and window.row_off + window.height <= height
    )
    if not inside:
        raise DataError(
            f"{path}: window {window} is not inside the {width}×{height} raster; "
            f"choose a window within it"
        )


def write_raster(
    path: str | os.PathLike[str],
    array: np.ndarray,
    georef: GeoRef | None = None,
    compress: str | None = "deflate",
    nodata: float | None = None,
    classes: ClassTable | None = None,
) -> None:
    """Write an HWC or HW array as a Cloud-Optimised GeoTIFF, atomically, with ``georef``'s CRS
    and transform.

    ``nodata`` overrides ``georef.nodata``; ``compress=None`` writes uncompressed. Every file is
    tiled in 256² blocks; one with a side longer than :data:`OVERVIEWS_FROM` gets overviews
    (nearest neighbour for HW arrays, which are labels and masks; average for images).
    ``classes`` (a single-band uint8 class mask only) adds a colour table and class names.
    """
    path = Path(path)
    arr = array[..., None] if array.ndim == 2 else array
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{path}: cannot write an array of shape {array.shape}; give HW or HWC")
    if not check_dtype(arr.dtype) or arr.dtype == np.bool_:
        raise DataError(
            f"{path}: GeoTIFF cannot hold dtype {arr.dtype}; cast the array to "
            f"uint8, uint16, int16, int32, float32 or float64 first"
        )
    if classes is not None and (arr.shape[2] != 1 or arr.dtype != np.uint8):
        raise DataError(
            f"{path}: a colour table needs a single-band uint8 class mask, not "
            f"{arr.shape[2]} band(s) of {arr.dtype}; write the image without classes"
        )
    height, width, count = arr.shape
    if nodata is None and georef is not None:
        nodata = georef.nodata
    profile: dict[str, Any] = {
        "width": width,
        "height": height,
        "count": count,
        "dtype": arr.dtype.name,
        "nodata": nodata,
        "crs": parse_crs(georef.crs, str(path)) if georef and georef.crs else None,
        "transform": georef.transform if georef else Affine.identity(),
    }
    method = _compression(path, compress)
    overviews = max(width, height) > OVERVIEWS_FROM
    resampling = "nearest" if array.ndim == 2 else "average"
    cog = has_cog_driver()
    if cog:
        profile.update(
            driver="COG",
            blocksize=_BLOCK,
            compress=method or "none",
            overviews="auto" if overviews else "none",
            resampling=resampling,
        )
        if method in _PREDICTED:
            profile["predictor"] = "yes"
    else:
        profile.update(driver="GTiff", tiled=True, blockxsize=_BLOCK, blockysize=_BLOCK)
        if method is not None:
            profile["compress"] = method
            if method in _PREDICTED:
                profile["predictor"] = 2 if np.issubdtype(arr.dtype, np.integer) else 3
    # No PAM: GDAL must not leave a ``.aux.xml`` sidecar named after the temporary file.
    with atomic_path(path) as tmp, rasterio.Env(GDAL_PAM_ENABLED="NO"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dst = rasterio.open(tmp, "w", **profile)
        with dst:
            dst.write(np.moveaxis(arr, -1, 0))
            if classes is not None:
                write_classes(dst, classes)
            if overviews and not cog:
                build_overviews(dst, resampling)


def build_overviews(dataset: Any, resampling: str) -> None:
    """Add internal overviews (factors 2, 4, … until the smallest fits one 256² tile) to an
    open, writable GTiff dataset whose side is longer than :data:`OVERVIEWS_FROM` (COG's
    ``OVERVIEWS=AUTO`` rule); smaller ones get none."""
    side = max(dataset.width, dataset.height)
    if side <= OVERVIEWS_FROM:
        return
    factors: list[int] = []
    while side / (2 ** len(factors)) > _BLOCK:
        factors.append(2 ** (len(factors) + 1))
    if factors:
        dataset.build_overviews(factors, Resampling[resampling])


def _compression(path: Path, compress: str | None) -> str | None:
    """The GDAL compression name of ``compress`` (``None`` for none); raise if unknown."""
    if compress is None or compress.lower() == "none":
        return None
    if compress.lower() not in Compression.__members__:
        raise ConfigError(
            f"{path}: unknown GeoTIFF compression {compress!r}; choose one "
            f"of {', '.join(Compression.__members__)}"
        )
    return compress.lower()
