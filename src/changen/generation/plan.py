"""The generation plan: sample index i → (source item, crop window, variant k) and its seeds.

Samples are numbered item-major: every crop window of item 0 with its ``per_image`` variants,
then item 1, and so on. Without a crop size an item has one window, the whole image; with one
the item is cut into ``crop`` × ``crop`` tiles laid out by :func:`changen.data.tiling.tile_windows`
(no overlap; the last row and column are shifted back inside the image), so the plan needs the
size of every item, read once by :func:`scan_sizes`.

Sample ``i`` of a run with seed ``s`` draws from ``SeedSequence([s, i])`` and its two children
(events, synthesis) — the convention of :mod:`changen.seeding`.

With a :class:`SplitSpec` every source item goes to one split (all its crops and variants with
it, so no item leaks across splits), drawn from a hash of the seed and the item's name alone:
the split of an item never changes when items are added or removed. Sample numbering and seeds
do not depend on the splits, and a split sample's name starts with its split (``train_…``, as
in the official LEVIR-CD release, which torchgeo's loader relies on).
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from changen.data.readers.base import Reader
from changen.data.tiling import tile_windows
from changen.errors import ConfigError, DataError

Window = tuple[int, int, int, int]
"""A crop window as (row, col, height, width) in the item's pixels."""

_SPLIT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_SPLIT_EXAMPLE = "--split train=0.8,val=0.1,test=0.1"


@dataclass(frozen=True)
class SplitSpec:
    """Named shares of the source items, e.g. ``train=0.8, val=0.1, test=0.1`` (sum 1)."""

    shares: tuple[tuple[str, float], ...]

    @classmethod
    def parse(cls, text: str) -> SplitSpec:
        """``train=0.8,val=0.1,test=0.1`` → a spec; a malformed one is a one-line error."""
        shares: list[tuple[str, float]] = []
        for part in text.split(","):
            name, _, value = part.strip().partition("=")
            try:
                share = float(value)
            except ValueError:
                share = -1.0
            if not _SPLIT_NAME.fullmatch(name) or not 0.0 < share <= 1.0:
                raise ConfigError(
                    f"--split {text!r}: expected NAME=SHARE pairs with shares in (0, 1], "
                    f"e.g. {_SPLIT_EXAMPLE}"
                )
            shares.append((name, share))
        return cls._checked(tuple(shares), text)

    @classmethod
    def from_dict(cls, shares: dict[str, float]) -> SplitSpec:
        """The spec :meth:`to_dict` saved (in ``generation.json``'s ``plan.splits``)."""
        return cls.parse(",".join(f"{name}={share!r}" for name, share in shares.items()))

    @classmethod
    def _checked(cls, shares: tuple[tuple[str, float], ...], text: str) -> SplitSpec:
        """A spec of ``shares`` after checking names are unique and shares sum to 1."""
        names = [n for n, _ in shares]
        if len(set(names)) != len(names):
            raise ConfigError(f"--split {text!r}: a split is named twice; name each once")
        total = sum(s for _, s in shares)
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(
                f"--split {text!r}: the shares sum to {total:g}, not 1; e.g. {_SPLIT_EXAMPLE}"
            )
        return cls(shares)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.shares]

    def assign(self, name: str, seed: int) -> str:
        """The split of item ``name``: a uniform draw from a hash of ``seed`` and ``name``."""
        digest = hashlib.sha256(f"{seed}\0{name}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        edge = 0.0
        for split, share in self.shares:
            edge += share
            if u < edge:
                return split
        return self.shares[-1][0]

    def to_dict(self) -> dict[str, float]:
        return dict(self.shares)


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
    split: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "item": self.item_name,
            "item_index": self.item,
            "window": None if self.window is None else list(self.window),
            "tile": self.tile,
            "variant": self.variant,
        }
        if self.split is not None:
            out["split"] = self.split
        return out


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
    needed only with ``crop``; ``splits`` (with the run's ``seed``) puts each item in a split.
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        per_image: int = 1,
        crop: int | None = None,
        sizes: Sequence[tuple[int, int]] | None = None,
        splits: SplitSpec | None = None,
        seed: int = 0,
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
        self.splits = splits
        self.item_splits: list[str | None] = [
            None if splits is None else splits.assign(name, seed) for name in self.names
        ]
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
        split = self.item_splits[item]
        if split is not None:
            stem = f"{split}_{stem}"
        return SampleSpec(
            index=index,
            item=item,
            item_name=name,
            window=None if windows is None else windows[tile],
            tile=tile,
            variant=variant,
            name=f"{stem}_v{variant:02d}",
            split=split,
        )

    def split_counts(self) -> dict[str, dict[str, int]]:
        """Source items and samples per split (every split of the spec, empty ones too)."""
        if self.splits is None:
            return {}
        counts = {name: {"items": 0, "samples": 0} for name in self.splits.names}
        for item, split in enumerate(self.item_splits):
            if split is None:
                continue
            windows = self.windows[item]
            counts[split]["items"] += 1
            counts[split]["samples"] += (1 if windows is None else len(windows)) * self.per_image
        return counts

    def to_dict(self) -> dict[str, Any]:
        """What decides the plan (hashed into the run's identity for resuming)."""
        out: dict[str, Any] = {
            "items": len(self.names),
            "per_image": self.per_image,
            "crop": self.crop,
            "samples": len(self),
        }
        if self.splits is not None:
            out["splits"] = self.splits.to_dict()
            out["split_counts"] = self.split_counts()
        return out
