"""The generation plan: sample index i → (source item, crop window, variant k) and its seeds.

Samples are numbered item-major: every crop window of item 0 with its ``per_image`` variants,
then item 1, and so on. Without a crop size an item has one window, the whole image; with one
the item is cut into ``crop`` × ``crop`` tiles laid out by :func:`changen.data.tiling.tile_windows`
(no overlap; the last row and column are shifted back inside the image), so the plan needs the
size of every item, read once by :func:`scan_sizes`.

Sample ``i`` of a run with seed ``s`` draws from ``SeedSequence([s, i])`` and its two children
(events, synthesis) — the convention of :mod:`changen.seeding`.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from changen.data.readers.base import Reader
from changen.data.tiling import tile_windows
from changen.errors import ConfigError, DataError

Window = tuple[int, int, int, int]
"""A crop window as (row, col, height, width) in the item's pixels."""


@dataclass(frozen=True)
class SampleSpec:
    """Where sample ``index`` comes from: reader item, crop window, tile and variant numbers."""

    index: int
    item: int
    item_name: str
    window: Window | None
    tile: int
    variant: int
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item_name,
            "item_index": self.item,
            "window": None if self.window is None else list(self.window),
            "tile": self.tile,
            "variant": self.variant,
        }


def scan_sizes(
    reader: Reader[Any], limit: int | None = None, progress: Callable[[int], None] | None = None
) -> list[tuple[int, int]]:
    """The (height, width) of the first ``limit`` items (each item is decoded once)."""
    n = len(reader) if limit is None else min(limit, len(reader))
    sizes = []
    for i in range(n):
        item = reader[i]
        image = item.image if hasattr(item, "image") else item.t1_image
        sizes.append((int(image.shape[0]), int(image.shape[1])))
        if progress is not None:
            progress(1)
    return sizes


class Plan:
    """The list of samples of a run: ``len(plan)``, ``plan[i]`` → :class:`SampleSpec`.

    ``names`` are the reader's item names (``limit`` first ones); ``sizes`` their (h, w),
    needed only with ``crop``.
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        per_image: int = 1,
        crop: int | None = None,
        sizes: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        if per_image < 1:
            raise ConfigError(f"--per-image {per_image}: give at least one variant per image")
        if not names:
            raise DataError("the source has no items to generate from")
        self.names = list(names)
        self.per_image = per_image
        self.crop = crop
        self.windows: list[list[Window] | None] = [None] * len(self.names)
        if crop is not None:
            self.windows = self._tile(crop, sizes)
        counts = [1 if w is None else len(w) for w in self.windows]
        self._starts = np.concatenate([[0], np.cumsum(counts)]).tolist()

    def _tile(
        self, crop: int, sizes: Sequence[tuple[int, int]] | None
    ) -> list[list[Window] | None]:
        if crop < 1:
            raise ConfigError(f"--crop {crop}: the crop size must be a positive number of pixels")
        if sizes is None or len(sizes) != len(self.names):
            raise ConfigError("a cropped plan needs the size of every item (see scan_sizes)")
        out: list[list[Window] | None] = []
        for name, (h, w) in zip(self.names, sizes, strict=True):
            if crop > h or crop > w:
                raise ConfigError(
                    f"--crop {crop} is larger than item {name!r} ({w}×{h} w×h); "
                    f"choose a crop of at most {min(h, w)} or drop --crop"
                )
            out.append(
                [
                    (int(win.row_off), int(win.col_off), int(win.height), int(win.width))
                    for win in tile_windows(h, w, crop)
                ]
            )
        return out

    @property
    def n_windows(self) -> int:
        return int(self._starts[-1])

    def __len__(self) -> int:
        return self.n_windows * self.per_image

    def __getitem__(self, index: int) -> SampleSpec:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} is outside the plan's {len(self)} samples")
        slot, variant = divmod(index, self.per_image)
        item = bisect.bisect_right(self._starts, slot) - 1
        tile = slot - self._starts[item]
        windows = self.windows[item]
        name = self.names[item]
        stem = name if windows is None else f"{name}_c{tile:04d}"
        return SampleSpec(
            index=index,
            item=item,
            item_name=name,
            window=None if windows is None else windows[tile],
            tile=tile,
            variant=variant,
            name=f"{stem}_v{variant:02d}",
        )

    def to_dict(self) -> dict[str, Any]:
        """What decides the plan (hashed into the run's identity for resuming)."""
        return {
            "items": len(self.names),
            "per_image": self.per_image,
            "crop": self.crop,
            "samples": len(self),
        }
