"""What every dataset reader looks like: a sized, indexable collection with a taxonomy.

Readers are cheap to construct (they list files, they do not decode them) and decode one item
per ``__getitem__``, so they can be shared by worker processes. ``detect`` lets
:func:`changen.data.readers.open_dataset` recognise a folder's format without being told.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from changen.errors import DataError
from changen.sample import ChangeSample, Scene, Taxonomy

T = TypeVar("T", Scene, ChangeSample)


class Reader(Generic[T]):
    """Base of all readers. Subclasses set ``format``/``kind`` and fill ``names``."""

    format: ClassVar[str]
    kind: ClassVar[str]  # "scene" (single-temporal) or "change" (bitemporal)

    def __init__(self, root: str | Path, taxonomy: Taxonomy) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise DataError(f"{self.root}: no such file or folder")
        self.taxonomy = taxonomy
        self.names: list[str] = []

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
