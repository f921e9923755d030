"""The LEVIR-CD layout: ``A/ B/ label/`` PNGs, plus changen's ``A_mask/ B_mask/`` extension.

``label/`` holds the change mask as LEVIR-CD does: 0 = unchanged, 255 = changed. When a sample
has semantic masks they go to ``A_mask/`` and ``B_mask/`` as index PNGs (taxonomy ids). The
layout has no ignore value for change: ignore pixels (255 in the change mask) are written 0 in
``label/`` and survive only where a semantic mask is the taxonomy's ignore id (the reader
restores them there, as 255); any other ignore pixel is refused rather than silently
relabelled. With ``split`` the folders go under ``root/<split>/``. PNG carries no
georeference; use the ``geotiff`` layout to keep it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from changen.data.writers.base import ChangeDatasetWriter
from changen.errors import DataError
from changen.sample import CHANGE_IGNORE, ChangeSample


class LevirCDWriter(ChangeDatasetWriter):
    """Writes change samples as LEVIR-CD PNG folders (see the module docstring)."""

    layout = "levircd"
    folders = ("A", "B", "label", "A_mask", "B_mask")
    suffix = ".png"

    def _validate(self, sample: ChangeSample, where: str) -> None:
        super()._validate(sample, where)
        ign = self.taxonomy.ignore
        restored = (sample.change_mask == 1).astype(np.uint8)
        for mask in (sample.t1_mask, sample.t2_mask):
            if mask is not None:
                restored[mask == ign] = CHANGE_IGNORE
        lost = int((restored != sample.change_mask).sum())
        if lost:
            raise DataError(
                f"{where}: {lost} change-mask pixel(s) would not read back from the {self.layout} "
                f"layout (it stores change as 0/255 and ignore only where a semantic mask is "
                f"ignore); write the 'second' layout, or make the ignore pixels agree"
            )

    def _files(self, sample: ChangeSample, folder: Path) -> list[tuple[Path, np.ndarray]]:
        stem = sample.name + self.suffix
        label = np.where(sample.change_mask == 1, 255, 0).astype(np.uint8)
        files = [
            (folder / "A" / stem, sample.t1_image),
            (folder / "B" / stem, sample.t2_image),
            (folder / "label" / stem, label),
        ]
        for mask, sub in ((sample.t1_mask, "A_mask"), (sample.t2_mask, "B_mask")):
            if mask is not None:
                files.append((folder / sub / stem, mask))
        return files
