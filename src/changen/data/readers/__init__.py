"""Dataset readers and format detection.

:data:`READERS` maps a format name to ``(module, class)``; modules are imported on first use so
that opening one format never pays for the others. :func:`open_dataset` detects the format of a
folder when none is given, trying change-dataset layouts first (they are the more specific).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from changen.data.readers.base import ChangeReader, Reader, SceneReader
from changen.errors import ConfigError, DataError, FormatError
from changen.sample import Taxonomy
from changen.taxonomies import get_taxonomy

READERS: dict[str, tuple[str, str]] = {
    # change datasets (bitemporal)
    "second": ("changen.data.readers.second", "SecondReader"),
    "levircd": ("changen.data.readers.change_folders", "LevirCDReader"),
    "s2looking": ("changen.data.readers.change_folders", "S2LookingReader"),
    "sysucd": ("changen.data.readers.change_folders", "SYSUCDReader"),
    "dsifn": ("changen.data.readers.change_folders", "DSIFNReader"),
    "whucd": ("changen.data.readers.change_folders", "WHUCDReader"),
    # single-temporal labelled data
    "xview2": ("changen.data.readers.xview2", "XView2Reader"),
    "loveda": ("changen.data.readers.loveda", "LoveDAReader"),
    "openearthmap": ("changen.data.readers.openearthmap", "OpenEarthMapReader"),
    "xyz_tiles": ("changen.data.readers.xyz_tiles", "XYZTileReader"),
    "geotiff_vector": ("changen.data.readers.geovector", "GeoVectorReader"),
    "folder": ("changen.data.readers.folder", "FolderReader"),
}


def reader_class(format: str) -> type[Reader[Any]]:
    """The reader class of a format name."""
    try:
        module, name = READERS[format]
    except KeyError:
        raise FormatError(
            f"unknown dataset format {format!r}; choose one of: {', '.join(READERS)}"
        ) from None
    return getattr(importlib.import_module(module), name)


def detect_format(path: str | Path) -> str:
    """Name the format of the dataset at ``path``, or raise :class:`FormatError`."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root}: no such file or folder")
    if root.is_dir() and not any(p for p in root.iterdir() if not p.name.startswith(".")):
        raise DataError(f"{root}: the folder is empty; point at a dataset folder")
    for fmt in READERS:
        if reader_class(fmt).detect(root):
            return fmt
    raise FormatError(
        f"{root}: could not recognise the dataset layout; pass --format with one of: "
        f"{', '.join(READERS)} (docs/formats.md describes each layout)"
    )


def open_dataset(
    path: str | Path,
    format: str | None = None,
    taxonomy: str | Taxonomy | None = None,
    **options: Any,
) -> Reader[Any]:
    """Open the dataset at ``path`` with the reader of ``format`` (detected when ``None``).

    ``taxonomy`` may be a built-in name (see :data:`changen.taxonomies.TAXONOMIES`) or a
    :class:`Taxonomy`; other keyword options go to the reader's constructor. ``split=NAME``
    reads one split of a format that has splits (for a format without, it is a one-line error);
    ``split=None`` reads them all, whatever the format.
    """
    fmt = format or detect_format(path)
    cls = reader_class(fmt)
    if options.get("split", "") is None:
        del options["split"]  # no split chosen: every reader's default
    if "split" in options and "split" not in inspect.signature(cls).parameters:
        raise ConfigError(
            f"{path}: a {fmt} dataset has no splits to choose from; omit --split {options['split']}"
        )
    if taxonomy is not None:
        options["taxonomy"] = get_taxonomy(taxonomy) if isinstance(taxonomy, str) else taxonomy
    return cls(path, **options)


__all__ = [
    "READERS",
    "ChangeReader",
    "Reader",
    "SceneReader",
    "detect_format",
    "open_dataset",
    "reader_class",
]
