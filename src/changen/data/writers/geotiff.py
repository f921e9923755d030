"""The LEVIR-CD folder names with GeoTIFF files, keeping each sample's georeference.

Same folders and label convention as :mod:`changen.data.writers.levircd`; every file is a
``.tif`` written by :func:`changen.data.raster.write_raster`, georeferenced when
``sample.georef`` is set. :class:`changen.data.readers.change_folders.LevirCDReader` reads it.
Files are Cloud-Optimised GeoTIFFs; ``label/`` (unchanged/changed) and ``A_mask/ B_mask/`` (the
taxonomy's classes) carry a colour table and class names, so GIS tools draw them in colour.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from changen.data.writers.levircd import LevirCDWriter

if TYPE_CHECKING:
    from changen.data.raster import ClassTable


class GeoTiffWriter(LevirCDWriter):
    """Writes change samples as georeferenced GeoTIFFs in ``A/ B/ label/ [A_mask/ B_mask/]``."""

    layout = "geotiff"
    suffix = ".tif"

    def _classes(self, path: Path) -> ClassTable | None:
        from changen.data.raster import CHANGE_LABEL_CLASSES, taxonomy_classes

        folder = path.parent.name
        if folder == "label":
            return CHANGE_LABEL_CLASSES
        if folder in ("A_mask", "B_mask"):
            return taxonomy_classes(self.taxonomy)
        return None
