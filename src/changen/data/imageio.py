"""Reading and writing plain image files (PNG, JPEG, TIFF) as HWC numpy arrays.

GeoTIFFs with their georeference are :mod:`changen.data.raster`'s business; this module only
deals with pixels and turns unreadable files into one-line :class:`DataError` messages.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from changen.data.atomic import atomic_path
from changen.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_TIFF = (".tif", ".tiff")


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden and partial files skipped)."""
    folder = Path(folder)
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as an HWC array in RGB(A) band order, keeping its dtype."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.suffix.lower() in _TIFF:
        return _read_tiff(path)
    data = np.fromfile(path, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DataError(
            f"{path}: not a readable image (corrupt, truncated or not an image); "
            f"re-export or remove the file"
        )
    if image.ndim == 2:
        return image[..., None]
    if image.shape[2] == 3 or (image.shape[2] == 4 and _png_rgb(data)):
        return image[..., 2::-1].copy()  # an RGB PNG's tRNS chunk is not a 4th band
    if image.shape[2] == 4:
        return image[..., [2, 1, 0, 3]].copy()
    return image


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_RGB = 2  # IHDR colour type: truecolour without alpha


def _png_rgb(data: np.ndarray) -> bool:
    """Whether ``data`` is a PNG whose pixels are RGB without alpha: OpenCV adds an alpha
    band for its tRNS (transparent colour) chunk, which the file does not store."""
    head = data[:26].tobytes()
    return head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR" and head[25] == _PNG_RGB


def _read_tiff(path: Path) -> np.ndarray:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return np.moveaxis(src.read(), 0, -1)
    except (RasterioIOError, ValueError) as e:
        raise DataError(
            f"{path}: not a readable TIFF ({str(e).splitlines()[0]}); re-export or remove the file"
        ) from None


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a mask file: returns HW for single-band masks, HWC for colour-coded ones."""
    image = read_image(path)
    if image.shape[2] == 1:
        return image[..., 0]
    if image.shape[2] in (3, 4):
        rgb = image[..., :3]
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
            return rgb[..., 0].copy()
        return rgb
    raise DataError(f"{path}: a mask needs 1 band or RGB colours, got {image.shape[2]} bands")


def encode_image(image: np.ndarray, suffix: str = ".png", where: str = "<array>") -> bytes:
    """The bytes of an HWC (or HW) array encoded as ``suffix`` (PNG/JPEG/TIFF), RGB(A) in."""
    arr = image if image.ndim == 3 else image[..., None]
    if arr.shape[2] == 3:
        arr = arr[..., ::-1]
    elif arr.shape[2] == 4:
        arr = arr[..., [2, 1, 0, 3]]
    ok, buf = cv2.imencode(suffix.lower(), np.ascontiguousarray(arr))
    if not ok:
        raise DataError(f"{where}: could not encode image of shape {image.shape}")
    return bytes(buf.tobytes())


def write_image(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write an HWC (or HW) array as PNG/JPEG/TIFF atomically; RGB(A) order in, as on disk."""
    path = Path(path)
    data = encode_image(image, path.suffix, str(path))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
