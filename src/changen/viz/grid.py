"""Sample grids: images, masks and change maps side by side in one RGB picture.

:func:`make_grid` is the one renderer for every preview changen writes (simulated time series,
generator training samples, galleries). Cell contents are rendered by these rules:

* **HWC images** (1, 3 or 4 bands, uint8 or uint16): the :mod:`changen.data.bands` rules
  (grey replicated, alpha dropped, uint16 stretched), resized with ``INTER_AREA``.
* **HW class masks** (integer): coloured with ``taxonomy.colorize`` when a taxonomy is given,
  resized with ``INTER_NEAREST`` so no blended colours appear.
* **HW bool maps**, and integer maps when no taxonomy is given: bool and 0/1 maps white on
  black, other values as grey levels (uint16 and wider stretched), ``INTER_NEAREST``.
* ``None``: an empty cell (rows may have different lengths).

Each cell is fitted into a ``cell`` × ``cell`` square, aspect ratio kept.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np

from changen.data.bands import stretch_to_uint8, to_rgb8
from changen.data.imageio import write_image
from changen.errors import DataError
from changen.sample import Taxonomy

Color = tuple[int, int, int]

CREATED: Color = (0, 220, 0)
REMOVED: Color = (230, 0, 0)
RECLASSED: Color = (255, 215, 0)

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def make_grid(
    rows: Sequence[Sequence[np.ndarray | None]],
    *,
    titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    taxonomy: Taxonomy | None = None,
    cell: int = 256,
    pad: int = 4,
    background: Color = (255, 255, 255),
    text_color: Color = (0, 0, 0),
) -> np.ndarray:
    """Lay ``rows`` of arrays out as a uint8 RGB grid, with column titles and row labels.

    ``titles`` label the columns (drawn above the first row), ``row_labels`` the rows (drawn
    to their left); either may be shorter than the grid. ``taxonomy`` colours HW class masks.
    """
    if not rows or not any(len(r) for r in rows):
        raise DataError("make_grid: nothing to draw; pass at least one row with one array")
    if cell < 8 or pad < 0:
        raise DataError(f"make_grid: need cell >= 8 and pad >= 0, got cell={cell}, pad={pad}")
    n_cols = max(len(r) for r in rows)
    font_scale = cell / 400
    line = max(1, round(cell / 256))
    text_h = cv2.getTextSize("Ag", _FONT, font_scale, line)[0][1]
    title_h = text_h * 2 + pad if titles else 0
    label_w = 0
    if row_labels:
        widest = max(cv2.getTextSize(t, _FONT, font_scale, line)[0][0] for t in row_labels)
        label_w = min(widest, cell) + 2 * pad
    height = title_h + len(rows) * (cell + pad) + pad
    width = label_w + n_cols * (cell + pad) + pad
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = background
    for c, title in enumerate(titles or ()):
        x = label_w + pad + c * (cell + pad)
        _put_text(canvas, title, (x, pad), cell, font_scale, line, text_color)
    for r, row in enumerate(rows):
        y = title_h + pad + r * (cell + pad)
        if row_labels and r < len(row_labels):
            y_text = y + (cell - text_h) // 2
            _put_text(
                canvas, row_labels[r], (pad, y_text), label_w - pad, font_scale, line, text_color
            )
        for c, array in enumerate(row):
            if array is None:
                continue
            tile = render_cell(array, cell, taxonomy)
            x = label_w + pad + c * (cell + pad)
            th, tw = tile.shape[:2]
            oy, ox = (cell - th) // 2, (cell - tw) // 2
            canvas[y + oy : y + oy + th, x + ox : x + ox + tw] = tile
    return canvas


def render_cell(array: np.ndarray, cell: int, taxonomy: Taxonomy | None = None) -> np.ndarray:
    """Render one array by the module's rules and fit it into ``cell`` × ``cell`` (aspect kept)."""
    if array.ndim not in (2, 3) or 0 in array.shape[:2]:
        raise DataError(
            f"make_grid: cannot draw an array of shape {array.shape}; pass HW masks or HWC images"
        )
    h, w = array.shape[:2]
    f = cell / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    if array.ndim == 3:
        rgb = to_rgb8(array)[0]
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    small = cv2.resize(_as_resizable(array), size, interpolation=cv2.INTER_NEAREST)
    if taxonomy is not None and array.dtype != bool:
        return taxonomy.colorize(small)
    return np.repeat(_grey(small, array)[..., None], 3, axis=2)


def _as_resizable(array: np.ndarray) -> np.ndarray:
    """cv2.resize takes uint8/uint16/int16/float arrays; map bool and wide integers to those."""
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype in (np.uint8, np.uint16, np.float32):
        return array
    return array.astype(np.float32)


def _grey(small: np.ndarray, original: np.ndarray) -> np.ndarray:
    if original.dtype == bool or (original.size and original.min() >= 0 and original.max() <= 1):
        return (small > 0).astype(np.uint8) * np.uint8(255)
    if original.dtype == np.uint8:
        return small
    return stretch_to_uint8(small.astype(np.float32)[..., None])[..., 0]


def _put_text(
    canvas: np.ndarray,
    text: str,
    origin: tuple[int, int],
    max_width: int,
    scale: float,
    line: int,
    color: Color,
) -> None:
    """Draw ``text`` with its top-left at ``origin``, shrunk until it fits ``max_width``."""
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, line)
    if tw > max_width > 0:
        scale *= max_width / tw
        (tw, th), _ = cv2.getTextSize(text, _FONT, scale, line)
    x, y = origin
    cv2.putText(canvas, text, (x, y + th), _FONT, scale, color, line, cv2.LINE_AA)


def overlay_events(
    mask_rgb: np.ndarray,
    created: np.ndarray | None = None,
    removed: np.ndarray | None = None,
    reclassed: np.ndarray | None = None,
    *,
    thickness: int | None = None,
    legend: bool = True,
) -> np.ndarray:
    """Outline edited regions on a coloured mask: created green, removed red, reclassed yellow.

    Each of ``created``/``removed``/``reclassed`` is a bool HW map of the pixels the event
    touched (removed: where the object was). ``thickness`` defaults to about 1/128 of the
    image size so lines survive a downsized preview; a small legend names the colours.
    """
    if mask_rgb.ndim != 3 or mask_rgb.shape[2] != 3:
        raise DataError(f"overlay_events: expected an RGB image, got shape {mask_rgb.shape}")
    h, w = mask_rgb.shape[:2]
    thickness = thickness or max(1, round(max(h, w) / 128))
    out = np.ascontiguousarray(mask_rgb.copy())
    layers = [
        ("created", created, CREATED),
        ("removed", removed, REMOVED),
        ("reclassed", reclassed, RECLASSED),
    ]
    for name, region, color in layers:
        if region is None:
            continue
        if region.shape != (h, w):
            raise DataError(f"overlay_events: {name} map is {region.shape}, image is {(h, w)}")
        contours, _ = cv2.findContours(
            region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(out, contours, -1, color, thickness, cv2.LINE_8)
    if legend:
        _draw_legend(out, [(name, color) for name, region, color in layers if region is not None])
    return out


def _draw_legend(image: np.ndarray, entries: list[tuple[str, Color]]) -> None:
    if not entries:
        return
    size = max(image.shape[:2])
    scale = max(size / 1000, 0.35)
    line = max(1, round(size / 512))
    (tw, th), _ = cv2.getTextSize("reclassed", _FONT, scale, line)
    step = th * 2
    swatch = th * 2
    box_w, box_h = swatch + tw + th * 3, step * len(entries) + th
    if box_w > image.shape[1] or box_h > image.shape[0]:
        return
    region = image[:box_h, :box_w]
    region[:] = (region.astype(np.uint16) // 3).astype(np.uint8)
    for k, (name, color) in enumerate(entries):
        y = th + k * step
        cv2.rectangle(image, (th, y), (th + swatch, y + th), color, -1)
        cv2.putText(
            image, name, (th * 2 + swatch, y + th), _FONT, scale, (255, 255, 255), line, cv2.LINE_AA
        )


def save_png(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write an RGB grid as a PNG, atomically."""
    write_image(path, image)
