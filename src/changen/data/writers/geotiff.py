"""The LEVIR-CD folder names with GeoTIFF files, keeping each sample's georeference.

Same folders and label convention as :mod:`changen.data.writers.levircd`; every file is a
``.tif`` written by :func:`changen.data.raster.write_raster`, georeferenced when
``sample.georef`` is set. :class:`changen.data.readers.change_folders.LevirCDReader` reads it.
"""

from __future__ import annotations

from changen.data.writers.levircd import LevirCDWriter


class GeoTiffWriter(LevirCDWriter):
    """Writes change samples as georeferenced GeoTIFFs in ``A/ B/ label/ [A_mask/ B_mask/]``."""

    layout = "geotiff"
    suffix = ".tif"
