"""The SECOND layout: ``im1/ im2/ label1/ label2/``, semantic labels inside changed pixels only.

SECOND labels a pixel's class only where it changed; everywhere else the label is "unchanged".
changen writes the labels as single-band index PNGs: 0 = unchanged, source class id + 1 where
the change mask is 1, 255 where it is ignore (or the source mask is ignore). The derived
taxonomy ("unchanged" plus the shifted source classes, colours kept) is the manifest's
``taxonomy``, so :class:`changen.data.readers.second.SecondReader` reads the labels back
exactly; the source taxonomy is kept as ``source_taxonomy``. A taxonomy that already has an
"unchanged" background (``second_ding``, ``second_paper``, or a derived one) is written
unshifted. Samples need both semantic masks. ``label/`` holds the binary change mask as
LEVIR-CD does (0 = unchanged, 255 = changed), for the binary change loaders.

The ``second_rgb`` layout (:class:`SecondRGBWriter`) writes ``label1/ label2/`` as the official
release codes them: RGB colours of the label taxonomy (white = unchanged; ``second_ding`` and
``second_paper`` carry SECOND's colour table), which the reader decodes by colour. The coding
has no ignore value, so a sample with ignore pixels in its labels is refused (write the index
``second`` layout instead), and every class needs its own colour.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from changen.data.writers.base import ChangeDatasetWriter
from changen.errors import ConfigError, DataError
from changen.sample import CHANGE_IGNORE, ChangeSample, ClassInfo, Taxonomy

UNCHANGED = ClassInfo(0, "unchanged", (255, 255, 255))
DERIVED_IGNORE = 255


def is_second_style(taxonomy: Taxonomy) -> bool:
    """True if the taxonomy's background class is SECOND's "unchanged"."""
    return taxonomy.names.get(taxonomy.background) == UNCHANGED.name


def second_taxonomy(source: Taxonomy) -> Taxonomy:
    """The SECOND-style taxonomy of ``source``: "unchanged" = 0, every other class id + 1."""
    if is_second_style(source):
        return source
    classes = [c for c in source.classes if c.id != source.ignore]
    too_big = [c.id for c in classes if c.id + 1 >= DERIVED_IGNORE]
    if too_big:
        raise ConfigError(
            f"taxonomy {source.name!r} has class ids {too_big} that cannot be "
            f"shifted by one below {DERIVED_IGNORE}; renumber its classes"
        )
    shifted = tuple(ClassInfo(c.id + 1, c.name, c.color) for c in classes)
    return Taxonomy(f"{source.name}_second", (UNCHANGED, *shifted), 0, DERIVED_IGNORE)


class SecondWriter(ChangeDatasetWriter):
    """Writes change samples in the SECOND layout (see the module docstring)."""

    layout = "second"
    folders = ("im1", "im2", "label1", "label2", "label")
    rgb: ClassVar[bool] = False  # colour-coded labels (the official release's coding)

    def __init__(self, root: str | os.PathLike[str], taxonomy: Taxonomy, **kwargs: Any) -> None:
        self.label_taxonomy = second_taxonomy(taxonomy)
        if self.rgb:
            _check_colours(self.label_taxonomy)
        super().__init__(root, taxonomy, **kwargs)

    def _label(self, mask: np.ndarray, change: np.ndarray) -> np.ndarray:
        src, out = self.taxonomy, self.label_taxonomy
        label = np.full(mask.shape, out.background, np.uint8)
        changed = change == 1
        if out is src:
            label[changed] = mask[changed]
        else:
            label[changed] = mask[changed] + 1
            label[changed & (mask == src.ignore)] = out.ignore
        label[change == CHANGE_IGNORE] = out.ignore
        return label

    def _files(self, sample: ChangeSample, folder: Path) -> list[tuple[Path, np.ndarray]]:
        m1, m2 = sample.t1_mask, sample.t2_mask
        if m1 is None or m2 is None:
            raise DataError(
                f"{sample.source or sample.name}: the second layout needs both "
                f"semantic masks (t1 and t2); write change-only data as 'levircd'"
            )
        l1, l2 = self._label(m1, sample.change_mask), self._label(m2, sample.change_mask)
        unchanged = self.label_taxonomy.background
        lost = int(((sample.change_mask == 1) & (l1 == unchanged) & (l2 == unchanged)).sum())
        if lost:
            raise DataError(
                f"{sample.source or sample.name}: {lost} changed pixel(s) are 'unchanged' in "
                f"both masks, which the second layout cannot store; fix the masks or the change"
            )
        if self.rgb:
            l1, l2 = self._colour(l1, sample), self._colour(l2, sample)
        stem = sample.name + ".png"
        return [
            (folder / "im1" / stem, sample.t1_image),
            (folder / "im2" / stem, sample.t2_image),
            (folder / "label1" / stem, l1),
            (folder / "label2" / stem, l2),
            (folder / "label" / stem, np.where(sample.change_mask == 1, 255, 0).astype(np.uint8)),
        ]

    def _colour(self, label: np.ndarray, sample: ChangeSample) -> np.ndarray:
        """An index label as SECOND's RGB coding; ignore pixels cannot be coded."""
        ignored = int((label == self.label_taxonomy.ignore).sum())
        if ignored:
            raise DataError(
                f"{sample.source or sample.name}: {ignored} ignore pixel(s) in the labels, which "
                f"SECOND's RGB coding cannot store; write --layout second (index labels)"
            )
        return self.label_taxonomy.colorize(label)

    def _manifest_taxonomy(self) -> Taxonomy:
        return self.label_taxonomy

    def _manifest_extra(self) -> dict[str, Any]:
        return {
            "source_taxonomy": self.taxonomy.to_dict(),
            "label_offset": int(self.label_taxonomy is not self.taxonomy),
            "label_coding": "rgb" if self.rgb else "index",
        }


class SecondRGBWriter(SecondWriter):
    """The SECOND layout with RGB colour-coded labels, as the official release (``second_rgb``)."""

    layout = "second_rgb"
    rgb = True


def _check_colours(taxonomy: Taxonomy) -> None:
    """Raise unless every class of ``taxonomy`` has its own colour (RGB labels decode by it)."""
    seen: dict[tuple[int, ...], str] = {}
    for c in taxonomy.classes:
        if tuple(c.color) in seen:
            raise ConfigError(
                f"taxonomy {taxonomy.name!r}: classes {seen[tuple(c.color)]!r} and {c.name!r} "
                f"share the colour {tuple(c.color)}, so RGB labels cannot tell them apart; give "
                f"each class its own colour or write --layout second"
            )
        seen[tuple(c.color)] = c.name
