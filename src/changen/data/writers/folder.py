"""A folder of single-temporal scenes: ``images/ masks/ [instances/]`` + ``manifest.json``.

The layout :class:`changen.data.readers.folder.FolderReader` reads (it takes the taxonomy from
the manifest). Images are PNG, or GeoTIFF with their georeference when ``scene.georef`` is set;
masks are index PNGs of taxonomy ids; instance maps are 16-bit PNGs (0 = no instance), written
for every scene or for none, since the reader pairs every image with one when the folder exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from changen.data.writers.base import DatasetWriter
from changen.errors import DataError
from changen.sample import Scene

MAX_INSTANCE_ID = 65535


class SceneFolderWriter(DatasetWriter[Scene]):
    """Writes :class:`Scene` objects; counts ``samples``, ``instances`` and ``class_pixels``."""

    layout = "folder"
    kind = "scene"
    item_type = Scene
    folders = ("images", "masks", "instances")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._with_instances: bool | None = None

    def _validate(self, sample: Scene, where: str) -> None:
        if sample.mask is not None:
            self.taxonomy.validate(sample.mask, where)
        inst = sample.instances
        if self._with_instances is not None and (inst is not None) != self._with_instances:
            raise DataError(
                f"{where}: {'no' if inst is None else 'an'} instance map, unlike the "
                f"scenes written before; give every scene an instance map or none"
            )
        if (
            inst is not None
            and inst.size
            and not 0 <= int(inst.min()) <= int(inst.max()) <= MAX_INSTANCE_ID
        ):
            raise DataError(
                f"{where}: instance ids span {int(inst.min())}..{int(inst.max())}; "
                f"a 16-bit PNG holds 0..{MAX_INSTANCE_ID}, renumber the instances"
            )

    def _files(self, sample: Scene, folder: Path) -> list[tuple[Path, np.ndarray]]:
        if sample.mask is None:
            raise DataError(
                f"{sample.source or sample.name}: scene has no mask; the folder "
                f"layout pairs every image with a mask"
            )
        suffix = ".tif" if sample.georef is not None else ".png"
        files = [
            (folder / "images" / f"{sample.name}{suffix}", sample.image),
            (folder / "masks" / f"{sample.name}.png", sample.mask),
        ]
        if sample.instances is not None:
            files.append(
                (folder / "instances" / f"{sample.name}.png", sample.instances.astype(np.uint16))
            )
        return files

    def _sample_counts(self, sample: Scene) -> dict[str, Any]:
        self._with_instances = sample.instances is not None
        counts: dict[str, Any] = {"samples": 1}
        if sample.instances is not None:
            ids = np.unique(sample.instances)
            counts["instances"] = int((ids != 0).sum())
        if sample.mask is not None:
            counts["class_pixels"] = np.bincount(sample.mask.ravel(), minlength=256).astype(
                np.int64
            )
        return counts
