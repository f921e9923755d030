"""Summaries of a dataset: what ``changen data inspect`` prints.

Objects are counted per item as instance ids when the item has an instance map, else as
8-connected components of each foreground class (no minimum area); for change datasets, as
connected components of the changed pixels.

Labels the reader skipped (its :class:`~changen.data.readers.base.SkippedLabelsWarning` s:
points and lines of vector labels, xView2 polygons off the image) are collected instead of
printed and summarised by kind under ``skipped_labels``. They are warnings, except when every
label of every file that had some was skipped and no item has an object: then there is nothing
to learn from, which is a :class:`DataError`.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from changen.data.imageio import read_image
from changen.data.readers import open_dataset
from changen.data.readers.base import SkippedLabelsWarning
from changen.engine.progress import SILENT, ProgressSink, track
from changen.errors import DataError
from changen.sample import ChangeSample, Scene, Taxonomy


def count_objects(mask: np.ndarray, taxonomy: Taxonomy, instances: np.ndarray | None = None) -> int:
    """Number of objects in one mask (see the module docstring for the rule)."""
    if instances is not None:
        return int(np.count_nonzero(np.unique(instances)))
    total = 0
    for cls in np.unique(mask):
        if int(cls) in (taxonomy.background, taxonomy.ignore):
            continue
        n, _ = cv2.connectedComponents((mask == cls).astype(np.uint8), connectivity=8)
        total += n - 1
    return total


def _source_bands(path: str) -> tuple[int | None, str | None]:
    if not path:
        return None, None
    if path.lower().endswith((".tif", ".tiff")):
        import rasterio

        with rasterio.open(path) as src:
            return src.count, src.dtypes[0]
    image = read_image(path)
    return image.shape[2], str(image.dtype)


@contextmanager
def collect_skipped() -> Iterator[dict[str, SkippedLabelsWarning]]:
    """Catch the :class:`SkippedLabelsWarning` s raised inside, one per label file (the last
    one of a file wins); every other warning is shown as usual when the block ends."""
    found: dict[str, SkippedLabelsWarning] = {}
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SkippedLabelsWarning)
            yield found
    finally:
        for w in caught:
            if isinstance(w.message, SkippedLabelsWarning):
                found[w.message.path] = w.message
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def summarise_skipped(found: dict[str, SkippedLabelsWarning]) -> list[dict[str, Any]]:
    """One row per kind of skipped label: ``kind``, ``count``, ``files`` and an ``example``
    file with its ``fix``, most frequent kind first."""
    rows: dict[str, dict[str, Any]] = {}
    for path, w in found.items():
        for kind, n in w.counts.items():
            row = rows.setdefault(kind, {"kind": kind, "count": 0, "files": 0, "example": path})
            row["count"] += n
            row["files"] += 1
            row.setdefault("fix", w.fix)
    return sorted(rows.values(), key=lambda r: -r["count"])


def _check_not_all_skipped(
    root: Path, found: dict[str, SkippedLabelsWarning], n_objects: int
) -> None:
    """Raise when the reader skipped every label it met and so produced no object."""
    if not found or n_objects or any(sum(w.counts.values()) < w.total for w in found.values()):
        return
    first = next(iter(found.values()))
    raise DataError(f"{root}: every label was skipped, so every mask is empty; e.g. {first}")


def inspect_dataset(
    path: str | Path,
    format: str | None = None,
    taxonomy: str | Taxonomy | None = None,
    limit: int | None = None,
    progress: ProgressSink = SILENT,
    **options: Any,
) -> dict[str, Any]:
    """Open a dataset and summarise it as a JSON-ready dict.

    Keys: ``format``, ``kind``, ``root``, ``n_items``, ``taxonomy``, ``sizes`` (``"HxW"`` →
    count), ``bands``/``dtype`` (of the first item's source file), ``n_objects``,
    ``class_pixels`` (class id → pixel count over all masks), ``skipped_labels`` (see
    :func:`summarise_skipped`) and, for change datasets, ``change_pixels`` (0/1 → count) and
    ``n_changed_items``.
    """
    reader = open_dataset(path, format=format, taxonomy=taxonomy, **options)
    tax = reader.taxonomy
    n = len(reader) if limit is None else min(limit, len(reader))
    sizes: Counter[str] = Counter()
    class_pixels = np.zeros(256, np.int64)
    change_pixels = np.zeros(256, np.int64)
    n_objects = 0
    n_changed = 0
    first_source = ""
    with collect_skipped() as skipped:
        for i in track(range(n), progress, "inspecting"):
            item = reader[i]
            first_source = first_source or item.source
            if isinstance(item, Scene):
                h, w = item.shape
                if item.mask is not None:
                    class_pixels += np.bincount(item.mask.ravel(), minlength=256)[:256]
                    n_objects += count_objects(item.mask, tax, item.instances)
            elif isinstance(item, ChangeSample):
                h, w = item.t1_image.shape[:2]
                for m in (item.t1_mask, item.t2_mask):
                    if m is not None:
                        class_pixels += np.bincount(m.ravel(), minlength=256)[:256]
                change_pixels += np.bincount(item.change_mask.ravel(), minlength=256)[:256]
                changed = (item.change_mask == 1).astype(np.uint8)
                n_changed += bool(changed.any())
                n_objects += cv2.connectedComponents(changed, connectivity=8)[0] - 1
            sizes[f"{h}x{w}"] += 1
    _check_not_all_skipped(Path(path), skipped, n_objects)
    bands, dtype = _source_bands(first_source)
    summary: dict[str, Any] = {
        "format": getattr(reader, "format", format),
        "kind": reader.kind,
        "root": str(Path(path)),
        "n_items": len(reader),
        "n_inspected": n,
        "taxonomy": tax.name,
        "classes": {str(c.id): c.name for c in tax.classes},
        "sizes": dict(sizes),
        "bands": bands,
        "dtype": dtype,
        "n_objects": int(n_objects),
        "class_pixels": {str(i): int(v) for i, v in enumerate(class_pixels) if v},
        "skipped_labels": summarise_skipped(skipped),
    }
    if reader.kind == "change":
        summary["change_pixels"] = {str(i): int(v) for i, v in enumerate(change_pixels) if v}
        summary["n_changed_items"] = n_changed
    return summary
