"""GeoTIFF (and any GDAL-readable raster) in and out, with its georeference.

Arrays are HWC in the file's dtype; bands are 1-based like GDAL. The georeference travels as a
:class:`changen.sample.GeoRef` whose CRS is ``"EPSG:<code>"`` (or another authority's
``"AUTH:<code>"``) when the CRS matches an authority code exactly, else its WKT. A file that is
not georeferenced (no CRS, identity transform, no nodata: a plain TIFF or PNG) reads as ``None``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.dtypes import check_dtype
from rasterio.enums import ColorInterp, Compression
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from changen.data.atomic import atomic_path
from changen.errors import ConfigError, DataError
from changen.sample import GeoRef

#: Rasters at least this wide or high are written tiled (256² blocks) rather than in strips.
TILED_FROM = 512
_BLOCK = 256
_PREDICTED = ("deflate", "lzw", "zstd", "lzma")


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
) -> None:
    """Write an HWC or HW array as a GeoTIFF, atomically, with ``georef``'s CRS and transform.

    ``nodata`` overrides ``georef.nodata``. Rasters of :data:`TILED_FROM` pixels or more on a
    side are tiled; ``compress=None`` writes uncompressed.
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
    height, width, count = arr.shape
    if nodata is None and georef is not None:
        nodata = georef.nodata
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": arr.dtype.name,
        "nodata": nodata,
        "crs": parse_crs(georef.crs, str(path)) if georef and georef.crs else None,
        "transform": georef.transform if georef else Affine.identity(),
    }
    if compress is not None and compress.lower() != "none":
        if compress.lower() not in Compression.__members__:
            raise ConfigError(
                f"{path}: unknown GeoTIFF compression {compress!r}; choose one "
                f"of {', '.join(Compression.__members__)}"
            )
        profile["compress"] = compress.lower()
        if compress.lower() in _PREDICTED and np.issubdtype(arr.dtype, np.integer):
            profile["predictor"] = 2
    if max(width, height) >= TILED_FROM:
        profile.update(tiled=True, blockxsize=_BLOCK, blockysize=_BLOCK)
    # No PAM: GDAL must not leave a ``.aux.xml`` sidecar named after the temporary file.
    with atomic_path(path) as tmp, rasterio.Env(GDAL_PAM_ENABLED="NO"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dst = rasterio.open(tmp, "w", **profile)
        with dst:
            dst.write(np.moveaxis(arr, -1, 0))
