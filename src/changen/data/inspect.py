"""Summaries of a dataset: what ``changen data inspect`` prints.

Objects are counted per item as instance ids when the item has an instance map, else as
8-connected components of each foreground class (no minimum area); for change datasets, as
connected components of the changed pixels.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from changen.data.imageio import read_image
from changen.data.readers import open_dataset
from changen.engine.progress import SILENT, ProgressSink, track
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
    ``class_pixels`` (class id → pixel count over all masks) and, for change datasets,
    ``change_pixels`` (0/1 → count) and ``n_changed_items``.
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
    items = track(range(n), progress, "inspecting")
    for i in items:
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
    }
    if reader.kind == "change":
        summary["change_pixels"] = {str(i): int(v) for i, v in enumerate(change_pixels) if v}
        summary["n_changed_items"] = n_changed
    return summary
