"""What every dataset reader looks like: a sized, indexable collection with a taxonomy.

Readers are cheap to construct (they list files, they do not decode them) and decode one item
per ``__getitem__``, so they can be shared by worker processes. ``detect`` lets
:func:`changen.data.readers.open_dataset` recognise a folder's format without being told.

No silently wrong labels: every class mask a reader hands out has passed :func:`check_mask`
once (a value outside the taxonomy is a :class:`DataError` naming the file), and labels a reader
has to leave out (points, lines, polygons off the image) are reported with one
:class:`SkippedLabelsWarning` per file, which ``changen data inspect`` collects.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

import cv2
import numpy as np

from changen.errors import DataError
from changen.sample import ChangeSample, Scene, Taxonomy
from changen.taxonomies import TAXONOMIES

#: How a reader says its taxonomy was not chosen by anyone (see ``check_mask(defaulted=)``).
DEFAULT_CHOICE = "the default: no taxonomy was given and no manifest.json"
_SHOWN = 8  # stray values listed in an error


@functools.lru_cache(maxsize=64)
def _allowed(taxonomy: Taxonomy) -> np.ndarray:
    """The 256-entry table of the values a mask may hold: class ids and the ignore id."""
    table = np.zeros(256, bool)
    table[taxonomy.ids] = True
    table[taxonomy.ignore] = True
    table.flags.writeable = False
    return table


def mask_values(mask: np.ndarray) -> np.ndarray:
    """Which of the values 0..255 occur in a uint8 HW mask, as a (256,) bool array.

    One histogram pass (OpenCV's, 2–4× faster than ``np.bincount``, which widens to int64).
    """
    if mask.dtype != np.uint8:
        raise TypeError(f"class-id masks are uint8, got {mask.dtype}")
    if mask.size == 0:
        return np.zeros(256, bool)
    hist = cv2.calcHist([np.ascontiguousarray(mask)], [0], None, [256], [0, 256])
    return hist.ravel() > 0


def _span(ids: list[int]) -> str:
    """``0..8`` for a run of three or more consecutive ids, else the ids listed."""
    ids = sorted(ids)
    if ids == list(range(ids[0], ids[-1] + 1)) and len(ids) > 2:
        return f"{ids[0]}..{ids[-1]}"
    return ", ".join(map(str, ids))


def check_mask(
    mask: np.ndarray, taxonomy: Taxonomy, source: str | Path, *, defaulted: bool = False
) -> None:
    """Raise a one-line :class:`DataError` if ``mask`` holds values that are neither class ids
    of ``taxonomy`` nor its ignore id, naming ``source``, the first stray values and the fix.

    ``defaulted``: the reader fell back to its default taxonomy (the message says so).
    """
    stray = np.flatnonzero(mask_values(mask) & ~_allowed(taxonomy))
    if not stray.size:
        return
    shown = ", ".join(map(str, stray[:_SHOWN].tolist()))
    if stray.size > _SHOWN:
        shown += f", … ({stray.size} values)"
    why = f" ({DEFAULT_CHOICE})" if defaulted else ""
    raise DataError(
        f"{source}: mask ids [{shown}] are not in taxonomy {taxonomy.name!r}{why} (ids "
        f"{_span(taxonomy.ids)}, ignore {taxonomy.ignore}); pass --taxonomy (taxonomy= in "
        f"Python) with the classes the masks use, a built-in ({', '.join(TAXONOMIES)}) or a "
        f"taxonomy JSON file, or remap the mask"
    )


class SkippedLabelsWarning(UserWarning):
    """Labels of one file that a reader left out: one warning per file, never per feature.

    ``counts`` maps a kind (a geometry type such as ``"Point"``, ``"null geometry"``,
    ``"outside the image"``) to how many labels of that kind were skipped, out of ``total``
    labels in ``path``; ``fix`` says what to do about them.
    """

    def __init__(
        self, message: str, path: str | Path, counts: Mapping[str, int], total: int, fix: str
    ) -> None:
        super().__init__(message)
        self.path = str(path)
        self.counts = dict(counts)
        self.total = total
        self.fix = fix


def warn_skipped(
    path: str | Path, counts: Mapping[str, int], total: int, what: str, fix: str
) -> None:
    """Warn once that ``path`` had labels skipped (nothing when ``counts`` is empty)."""
    n = sum(counts.values())
    if not n:
        return
    kinds = ", ".join(f"{k} {kind}" for kind, k in counts.items())
    message = f"{path}: {n} of {total} {what} skipped ({kinds}); {fix}"
    warnings.warn(SkippedLabelsWarning(message, path, counts, total, fix), stacklevel=3)


T = TypeVar("T", Scene, ChangeSample)


#: The licence of a source whose terms changen does not know.
UNKNOWN_LICENCE = "unknown, check the source"


def manifest_licence(root: Path) -> str | None:
    """The licence a changen-written dataset inherited, from its ``manifest.json`` provenance
    (``data convert``: ``provenance.licence``; ``generate``: ``provenance.source.licence``);
    ``None`` when the folder has none or its manifest cannot say."""
    try:
        provenance = json.loads((root / "manifest.json").read_text(encoding="utf-8"))["provenance"]
        source = provenance.get("source")
        nested = source.get("licence") if isinstance(source, dict) else None
        licence = provenance.get("licence") or nested
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return licence if isinstance(licence, str) else None


class Reader(Generic[T]):
    """Base of all readers. Subclasses set ``format``/``kind`` and fill ``names``.

    ``licence`` names the terms the source is distributed under, as far as changen knows them
    (:data:`UNKNOWN_LICENCE` otherwise); data derived from the source inherit them, so a
    dataset changen wrote has the licence its manifest recorded.
    """

    format: ClassVar[str]
    kind: ClassVar[str]  # "scene" (single-temporal) or "change" (bitemporal)
    licence: str = UNKNOWN_LICENCE

    def __init__(self, root: str | Path, taxonomy: Taxonomy) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise DataError(f"{self.root}: no such file or folder")
        self.taxonomy = taxonomy
        self.names: list[str] = []
        self.licence = manifest_licence(self.root) or type(self).licence

    @classmethod
    def detect(cls, root: Path) -> bool:
        """True if ``root`` looks like this format (used for auto-detection)."""
        return False

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> T:
        raise NotImplementedError

    def __iter__(self) -> Iterator[T]:
        for i in range(len(self)):
            yield self[i]

    def _require_items(self, what: str) -> None:
        """Raise the empty-dataset error; call at the end of ``__init__``."""
        if not self.names:
            raise DataError(
                f"{self.root}: no {what} found; check the path and the layout "
                f"(see `changen data inspect --help` for the supported layouts)"
            )


class SceneReader(Reader[Scene]):
    kind = "scene"


class ChangeReader(Reader[ChangeSample]):
    kind = "change"
