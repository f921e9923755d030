"""Dataset writers: :data:`WRITERS` maps a change-dataset layout name to its writer class.

Every writer is a :class:`~changen.data.writers.base.DatasetWriter` context manager that
writes one sample per ``write`` call and a ``manifest.json`` on a clean exit.
:class:`~changen.data.writers.folder.SceneFolderWriter` writes single-temporal scenes.
"""

from __future__ import annotations

from changen.data.writers.base import MANIFEST_NAME, ChangeDatasetWriter, DatasetWriter
from changen.data.writers.folder import SceneFolderWriter
from changen.data.writers.geotiff import GeoTiffWriter
from changen.data.writers.levircd import LevirCDWriter
from changen.data.writers.second import SecondRGBWriter, SecondWriter

WRITERS: dict[str, type[ChangeDatasetWriter]] = {
    "levircd": LevirCDWriter,
    "second": SecondWriter,
    "second_rgb": SecondRGBWriter,
    "geotiff": GeoTiffWriter,
}

__all__ = [
    "MANIFEST_NAME",
    "WRITERS",
    "ChangeDatasetWriter",
    "DatasetWriter",
    "GeoTiffWriter",
    "LevirCDWriter",
    "SceneFolderWriter",
    "SecondRGBWriter",
    "SecondWriter",
]
