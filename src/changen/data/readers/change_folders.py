"""Readers of the bitemporal folder layouts that differ only in their folder names.

| format | folders (t1, t2, label) |
|---|---|
| ``levircd`` | ``A/ B/ label/`` |
| ``s2looking`` | ``Image1/ Image2/ label/`` |
| ``whucd`` | the official release's ``2012/ 2016/`` crops, or ``A/ B/ label/`` |
| ``sysucd`` | ``time1/ time2/ label/`` |
| ``dsifn`` | ``t1/ t2/ mask/`` |

The folders sit either directly in the root (the flat layout; a LEVIR-CD-style ``list/<split>.txt``
of file names then selects a split) or in split folders such as ``train/ val/ test/``. Files
are paired by stem; folder names match case-insensitively. ``split`` reads one split; without
it every split is read and ``ChangeSample.meta["split"]`` says which one a sample came from.

Change labels are binarised explicitly, never by a silent cut at 128 (Open-CD's, which turns 0/1
labels into "no change"). By default a label must hold only 0, 1 and 255 (0/1 or 0/255, the
field's encodings) and a pixel is *changed* when it is not 0; any other value is an error that
names the file and the values, so that labels stored as 1/2 (OSCD) are never read as 100 %
change. ``label_values=(unchanged, changed)`` reads such labels (other values are an error),
and ``threshold=N`` reads any label as ``label > N``.

changen's LEVIR-CD writer adds ``A_mask/ B_mask/`` (semantic index masks, ``<t1>_mask`` and
``<t2>_mask`` in general) and a ``manifest.json``: the masks are read when present, their
ignore pixels become ignore (255) in the change mask, and the taxonomy is, in order, the
``taxonomy`` argument, the manifest's, else ``binary_building``. ``.tif`` images keep their
georeference (from the t1 image).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from changen.data.bands import to_rgb8
from changen.data.imageio import read_image
from changen.data.readers.base import DEFAULT_CHOICE, ChangeReader, check_mask
from changen.data.readers.folder import (
    check_same_size,
    find_subdir,
    manifest_taxonomy,
    pair_by_stem,
)
from changen.errors import ConfigError, DataError
from changen.sample import CHANGE_IGNORE, ChangeSample, GeoRef, Taxonomy
from changen.taxonomies import BINARY_BUILDING, get_taxonomy

KNOWN_SPLITS = ("train", "val", "test")
_TIFF = (".tif", ".tiff")


@dataclass(frozen=True)
class _Item:
    name: str
    split: str | None
    files: tuple[Path, ...]  # one per entry of ``folders``
    masks: tuple[Path | None, Path | None]  # the optional t1/t2 semantic masks


def load_image(
    path: Path,
    bands: tuple[int, ...] | None = None,
) -> tuple[np.ndarray, GeoRef | None]:
    """An image as RGB uint8 (the band rules of :mod:`changen.data.bands`) and its georef."""
    if path.suffix.lower() in _TIFF:
        from changen.data.raster import read_raster

        raw, georef = read_raster(path)
    else:
        raw, georef = read_image(path), None
    rgb, _ = to_rgb8(raw, bands=bands, source=str(path))
    return rgb, georef


def read_single_band(path: Path, what: str = "change label") -> np.ndarray:
    """The one band of a label file (a grey RGB(A) file counts as one band)."""
    raw = read_image(path)
    if raw.shape[2] in (3, 4):
        rgb = raw[..., :3]
        if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
            raise DataError(
                f"{path}: {what} is colour-coded; it must be one band "
                f"(0/255 or 0/1) — re-export it as a grey PNG"
            )
    elif raw.shape[2] != 1:
        raise DataError(f"{path}: {what} has {raw.shape[2]} bands; it must have one")
    return raw[..., 0]


def read_index_mask(path: Path, taxonomy: Taxonomy, defaulted: bool = False) -> np.ndarray:
    """A single-band class-id mask (as changen's writers store them), checked against
    ``taxonomy`` (``defaulted``: the reader's default taxonomy, see :func:`check_mask`)."""
    band = read_single_band(path, "semantic mask")
    if band.dtype != np.uint8:
        raise DataError(f"{path}: semantic mask is {band.dtype}; class-id masks are 8-bit")
    check_mask(band, taxonomy, path, defaulted=defaulted)
    return band


def _subdir(folder: Path, name: str) -> Path:
    found = find_subdir(folder, (name.lower(),))
    if found is None:
        raise DataError(f"{folder}: missing folder {name}/")
    return found


def _ordered(splits: list[str]) -> list[str]:
    known = [s for s in KNOWN_SPLITS if s in splits]
    return known + sorted(s for s in splits if s not in KNOWN_SPLITS)


class ChangeFolderReader(ChangeReader):
    """Base of the folder-layout change readers; a subclass only names its folders.

    ``folders`` lists the t1 image, t2 image and label folders (a subclass may add more label
    folders and decode them itself, as :class:`changen.data.readers.second.SecondReader` does).
    """

    format: ClassVar[str]
    folders: ClassVar[tuple[str, ...]]
    default_taxonomy: ClassVar[Taxonomy] = BINARY_BUILDING

    def __init__(
        self,
        root: str | os.PathLike[str],
        taxonomy: Taxonomy | str | None = None,
        *,
        split: str | None = None,
        bands: tuple[int, ...] | None = None,
    ) -> None:
        root = Path(root)
        if isinstance(taxonomy, str):
            taxonomy = get_taxonomy(taxonomy)
        chosen = taxonomy or manifest_taxonomy(root)
        #: why the taxonomy was chosen when nobody named it (None when it was given or found)
        self.taxonomy_choice: str | None = None
        if chosen is None:
            self.taxonomy_choice = f"{self.default_taxonomy.name} ({DEFAULT_CHOICE})"
        super().__init__(root, chosen or self.default_taxonomy)
        self.split = split
        self.bands = bands
        only = self._list_filter(split)
        self._items: list[_Item] = []
        for split_name, folder in self._select(split):
            self._items.extend(self._list(folder, split_name or split, only))
        self.names = [item.name for item in self._items]
        self._require_items(f"{self.format} samples (images in {self.folders[0]}/)")

    @classmethod
    def layout_dirs(cls, root: Path) -> list[tuple[str | None, Path]]:
        """``[(None, root)]`` for the flat layout, else ``(split, folder)`` per split folder."""
        if not root.is_dir():
            return []
        if cls._holds_layout(root):
            return [(None, root)]
        splits = {d.name: d for d in root.iterdir() if d.is_dir() and cls._holds_layout(d)}
        return [(name, splits[name]) for name in _ordered(list(splits))]

    @classmethod
    def _holds_layout(cls, folder: Path) -> bool:
        return all(find_subdir(folder, (name.lower(),)) is not None for name in cls.folders)

    @classmethod
    def detect(cls, root: Path) -> bool:
        return bool(cls.layout_dirs(root))

    def _select(self, split: str | None) -> list[tuple[str | None, Path]]:
        dirs = self.layout_dirs(self.root)
        if not dirs:
            raise DataError(
                f"{self.root}: no {'/, '.join(self.folders)}/ folders here or in split folders; "
                f"check the path or the format ({self.format})"
            )
        if split is None or dirs[0][0] is None:
            return dirs
        chosen: list[tuple[str | None, Path]] = [(name, d) for name, d in dirs if name == split]
        if not chosen:
            raise ConfigError(
                f"{self.root}: no split {split!r}; choose one of: "
                f"{', '.join(str(name) for name, _ in dirs)}"
            )
        return chosen

    def _list_filter(self, split: str | None) -> set[str] | None:
        """Stems named by ``list/<split>.txt`` in the flat layout (None: no filtering)."""
        if split is None or not self._holds_layout(self.root):
            return None
        lists = find_subdir(self.root, ("list",))
        path = lists / f"{split}.txt" if lists else None
        if path is None or not path.is_file():
            found = sorted(p.stem for p in lists.glob("*.txt")) if lists else []
            known = f"choose one of: {', '.join(found)}, " if found else ""
            raise ConfigError(
                f"{self.root}: split {split!r} asked for, but this flat layout "
                f"has no list/{split}.txt; {known}omit the split or add the list"
            )
        lines = path.read_text(encoding="utf-8").split()
        return {Path(line).stem for line in lines}

    def _list(self, folder: Path, split: str | None, only: set[str] | None) -> list[_Item]:
        anchor, *others = [_subdir(folder, name) for name in self.folders]
        pairs = [pair_by_stem(anchor, d, f"{d.name} file")[0] for d in others]
        images = {stem: image for stem, image, _ in pairs[0]}
        columns = [{stem: path for stem, _, path in column} for column in pairs]
        masks = []
        for name in self.folders[:2]:
            mask_dir = find_subdir(folder, (f"{name.lower()}_mask",))
            found = [] if mask_dir is None else pair_by_stem(anchor, mask_dir, "mask", False)[0]
            masks.append({stem: path for stem, _, path in found})
        if only is not None:
            missing = sorted(only - set(images))
            if missing:
                raise DataError(
                    f"{self.root}: list/{split}.txt names {len(missing)} file(s) "
                    f"not in {anchor}, e.g. {missing[0]}; fix the list"
                )
        return [
            _Item(
                stem,
                split,
                (images[stem], *(c[stem] for c in columns)),
                (masks[0].get(stem), masks[1].get(stem)),
            )
            for stem in sorted(images)
            if only is None or stem in only
        ]

    def stored_files(self, index: int) -> dict[str, Path | None]:
        """The files sample ``index`` is read from, by field (``None``: no such file): the
        images, the semantic masks and, for binary change readers, the change label (for
        :mod:`changen.generation.export`, which embeds files as stored)."""
        item = self._items[index]
        return {
            "t1_image": item.files[0],
            "t2_image": item.files[1],
            "t1_mask": item.masks[0],
            "t2_mask": item.masks[1],
            "change_mask": None,
        }

    def _load_pair(self, item: _Item) -> tuple[np.ndarray, np.ndarray, GeoRef | None]:
        t1, georef = load_image(item.files[0], self.bands)
        t2, _ = load_image(item.files[1], self.bands)
        check_same_size(t1.shape, item.files[0], t2, item.files[1], "t2 image")
        return t1, t2, georef

    def _load_masks(self, item: _Item, hw: tuple[int, ...]) -> list[np.ndarray | None]:
        masks: list[np.ndarray | None] = []
        for path in item.masks:
            if path is None:
                masks.append(None)
                continue
            mask = read_index_mask(path, self.taxonomy, self.taxonomy_choice is not None)
            check_same_size(hw, item.files[0], mask, path)
            masks.append(mask)
        return masks


class BinaryChangeReader(ChangeFolderReader):
    """A folder-layout change reader with one binary label folder (see the module docstring).

    ``label_values``: the (unchanged, changed) values of the labels; ``threshold``: label
    values strictly above it are *changed*, whatever the values; without either, labels must
    be 0/1 or 0/255.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        taxonomy: Taxonomy | str | None = None,
        *,
        split: str | None = None,
        bands: tuple[int, ...] | None = None,
        threshold: float | None = None,
        label_values: tuple[int, int] | None = None,
    ) -> None:
        if threshold is not None and not threshold >= 0:
            raise ConfigError(f"threshold={threshold} must be >= 0 (labels > threshold change)")
        if threshold is not None and label_values is not None:
            raise ConfigError("give label values or a binary threshold, not both")
        if label_values is not None and label_values[0] == label_values[1]:
            raise ConfigError(f"label values {label_values}: unchanged and changed must differ")
        self.threshold = threshold
        self.label_values = label_values
        super().__init__(root, taxonomy, split=split, bands=bands)

    def binarise(self, label: np.ndarray, path: Path) -> np.ndarray:
        """The 0/1 change mask of a label file's band (see the class docstring)."""
        if self.threshold is not None:
            return (label > self.threshold).astype(np.uint8)
        allowed = (0, 1, 255) if self.label_values is None else self.label_values
        values = np.unique(label)
        wrong = sorted(set(values.tolist()) - set(allowed))
        if wrong:
            found = ", ".join(map(str, values[:8].tolist())) + (" …" if len(values) > 8 else "")
            raise DataError(
                f"{path}: change label holds values {found}, expected "
                f"{'/'.join(map(str, allowed))}; say what they mean with --label-values "
                f"UNCHANGED:CHANGED (OSCD: 1:2) or --binary-threshold N"
            )
        if self.label_values is None:
            return (label > 0).astype(np.uint8)
        return (label == self.label_values[1]).astype(np.uint8)

    def stored_files(self, index: int) -> dict[str, Path | None]:
        return {**super().stored_files(index), "change_mask": self._items[index].files[2]}

    def __getitem__(self, index: int) -> ChangeSample:
        item = self._items[index]
        t1, t2, georef = self._load_pair(item)
        label = read_single_band(item.files[2])
        check_same_size(t1.shape, item.files[0], label, item.files[2], "label")
        change = self.binarise(label, item.files[2])
        m1, m2 = self._load_masks(item, t1.shape)
        for mask in (m1, m2):
            if mask is not None:
                change[mask == self.taxonomy.ignore] = CHANGE_IGNORE
        return ChangeSample(
            t1,
            t2,
            change,
            m1,
            m2,
            georef,
            self.taxonomy,
            item.name,
            str(item.files[0]),
            {"split": item.split},
        )


class LevirCDReader(BinaryChangeReader):
    """LEVIR-CD: ``A/ B/ label/`` (label 0/255), flat with ``list/*.txt`` or in split folders."""

    format = "levircd"
    # LEVIR-CD's terms; other data in this layout carry their own (changen's: its manifest's).
    licence = "LEVIR-CD: research use only (another dataset in this layout: check its source)"
    folders = ("A", "B", "label")


class S2LookingReader(BinaryChangeReader):
    """S2Looking: ``{split}/Image1/ Image2/ label/`` (label 0/255)."""

    format = "s2looking"
    folders = ("Image1", "Image2", "label")


WHU_YEARS = ("2012", "2016")
WHU_RELEASE_DIR = "1. The two-period image data"


def whu_release(root: Path) -> Path | None:
    """The folder of the official WHU-CD release that holds ``2012/`` and ``2016/`` (each with
    ``splited_images/``): ``root`` itself or its ``1. The two-period image data/``; else None."""
    for folder in (root, root / WHU_RELEASE_DIR):
        if all((folder / year / "splited_images").is_dir() for year in WHU_YEARS):
            return folder
    return None


class WHUCDReader(BinaryChangeReader):
    """WHU-CD, as released or re-packed.

    The official release (``Building change detection dataset_add``) is read as it unpacks::

        [1. The two-period image data/]2012/splited_images/{train,test}/{image,label}/*.tif
                                       2016/splited_images/{train,test}/{image,label}/*.tif
                                       change_label/{train,test}/change_label.tif

    Crops pair by stem across the years; each year's ``label/`` is that year's building mask
    (0/255, or 0/1), read as the t1/t2 masks, and a crop's change label is where the two
    masks differ (the release ships its change label only as one whole-split image, whose
    crop grid it does not record, so it is not cut). ``--binary-threshold`` applies to the
    masks. Re-packed copies in LEVIR-CD's ``A/ B/ label/`` layout (e.g. WHU-CD-256) are read as
    ``levircd`` reads them; auto-detection picks levircd for those and whucd for the release.
    """

    format = "whucd"
    folders = ("A", "B", "label")

    @classmethod
    def detect(cls, root: Path) -> bool:
        return whu_release(root) is not None

    @classmethod
    def layout_dirs(cls, root: Path) -> list[tuple[str | None, Path]]:
        release = whu_release(root) if root.is_dir() else None
        if release is None:
            return super().layout_dirs(root)
        crops = release / WHU_YEARS[0] / "splited_images"
        splits = {d.name: d for d in crops.iterdir() if find_subdir(d, ("image",))}
        return [(name, splits[name]) for name in _ordered(list(splits))]

    def _list(self, folder: Path, split: str | None, only: set[str] | None) -> list[_Item]:
        if whu_release(self.root) is None:
            return super()._list(folder, split, only)
        later = folder.parents[2] / WHU_YEARS[1] / "splited_images" / folder.name
        if not later.is_dir():
            raise DataError(
                f"{later}: missing, but {folder} has crops; restore the {WHU_YEARS[1]} crops "
                f"from the release"
            )
        t1, t2 = (
            {stem: (image, mask) for stem, image, mask in pair_by_stem(*crops)[0]}
            for crops in ((_subdir(d, "image"), _subdir(d, "label")) for d in (folder, later))
        )
        unpaired = sorted(set(t1) ^ set(t2))
        if unpaired:
            raise DataError(
                f"{folder}: {len(unpaired)} crop(s) are in only one of {WHU_YEARS}, e.g. "
                f"{unpaired[0]}; restore the missing files"
            )
        return [  # files: both images, then both building masks
            _Item(stem, split, (t1[stem][0], t2[stem][0], t1[stem][1], t2[stem][1]), (None, None))
            for stem in sorted(t1)
        ]

    def stored_files(self, index: int) -> dict[str, Path | None]:
        if len(self._items[index].files) != 4:
            return super().stored_files(index)
        item = self._items[index]  # building masks are 0/255 files: encode the arrays
        return {
            **dict.fromkeys(("t1_mask", "t2_mask", "change_mask")),
            "t1_image": item.files[0],
            "t2_image": item.files[1],
        }

    def __getitem__(self, index: int) -> ChangeSample:
        item = self._items[index]
        if len(item.files) != 4:
            return super().__getitem__(index)
        t1, t2, georef = self._load_pair(item)
        masks = []
        for path in item.files[2:]:
            band = read_single_band(path, "building mask")
            check_same_size(t1.shape, item.files[0], band, path, "building mask")
            masks.append(self.binarise(band, path))
        change = (masks[0] != masks[1]).astype(np.uint8)
        meta = {"split": item.split}
        return ChangeSample(
            t1,
            t2,
            change,
            masks[0],
            masks[1],
            georef,
            self.taxonomy,
            item.name,
            str(item.files[0]),
            meta,
        )


class SYSUCDReader(BinaryChangeReader):
    """SYSU-CD: ``{split}/time1/ time2/ label/`` (label 0/255)."""

    format = "sysucd"
    folders = ("time1", "time2", "label")


class DSIFNReader(BinaryChangeReader):
    """DSIFN: ``{split}/t1/ t2/ mask/`` (label 0/255)."""

    format = "dsifn"
    folders = ("t1", "t2", "mask")
