"""SECOND (semantic change detection): ``{split}/im1/ im2/ label1/ label2/``, or flat.

``label1``/``label2`` give each pixel's class at t1/t2 *inside changed pixels only*; every
other pixel is "unchanged" (the taxonomy's background). Labels are either RGB-coded (the
official release; white = unchanged), decoded through the taxonomy's colours, or single-band
index maps of taxonomy ids. A grey 3-band file is decoded by colour when its colours are in
the palette, so a label holding only white and grey (ground) is not read as an index map.

The class *order* differs between repositories, so nothing is guessed silently: pass
``taxonomy="second_ding"`` (Bi-SRNet/SCanNet order) or ``"second_paper"`` (the paper's order),
or keep the ``manifest.json`` changen's SECOND writer puts beside its output. With neither,
``second_ding`` is used and every sample records that choice in
``meta["taxonomy_choice"]``. The change mask is ``(label1 != unchanged) | (label2 != unchanged)``,
and ignore where either label is the taxonomy's ignore id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from changen.data.readers.change_folders import ChangeFolderReader
from changen.data.readers.folder import check_same_size, read_label_mask
from changen.sample import CHANGE_IGNORE, ChangeSample
from changen.taxonomies import SECOND_DING


class SecondReader(ChangeFolderReader):
    """SECOND change samples with both semantic masks (see the module docstring)."""

    format = "second"
    folders = ("im1", "im2", "label1", "label2")
    default_taxonomy = SECOND_DING

    def stored_files(self, index: int) -> dict[str, Path | None]:
        """As the base class, the labels standing for the masks (no change file: derived)."""
        files = self._items[index].files
        return {**super().stored_files(index), "t1_mask": files[2], "t2_mask": files[3]}

    def __getitem__(self, index: int) -> ChangeSample:
        item = self._items[index]
        t1, t2, georef = self._load_pair(item)
        tax = self.taxonomy
        given = self.taxonomy_choice is None
        l1, l2 = (read_label_mask(path, tax, taxonomy_given=given) for path in item.files[2:])
        check_same_size(t1.shape, item.files[0], l1, item.files[2], "label")
        check_same_size(t1.shape, item.files[0], l2, item.files[3], "label")
        change = ((l1 != tax.background) | (l2 != tax.background)).astype(np.uint8)
        change[(l1 == tax.ignore) | (l2 == tax.ignore)] = CHANGE_IGNORE
        meta: dict[str, Any] = {"split": item.split}
        if self.taxonomy_choice is not None:
            meta["taxonomy_choice"] = self.taxonomy_choice
        return ChangeSample(
            t1, t2, change, l1, l2, georef, tax, item.name, str(item.files[0]), meta
        )
