"""LoveDA: PNG tiles with 8-class index masks (0 = no-data, the ignore id; 1 = background).

Two layouts are read:

* mmsegmentation's: ``img_dir/`` + ``ann_dir/``, flat or split into the same subfolders
  (``img_dir/train`` + ``ann_dir/train``, …);
* the official release's: ``images_png/`` + ``masks_png/`` folders found at the root or up to
  two levels below it (``Train/Rural/…``, ``{Train,Val}/{Urban,Rural}/…``). Folders without
  ``masks_png`` (the official Test split) are skipped.

Items are named by file stem, which LoveDA keeps unique across its splits; ``Scene.meta``
records the image folder relative to the root (e.g. ``Train/Rural/images_png``) and the split
(``train``, ``val``: the first folder on the way named like a split, any case; ``None`` for a
folder outside one). Every split is read unless ``split`` names one.
"""

from __future__ import annotations

from pathlib import Path

from changen.data.readers.base import SceneReader
from changen.data.readers.folder import load_scene, pair_by_stem
from changen.errors import ConfigError, DataError
from changen.sample import Scene, Taxonomy
from changen.taxonomies import LOVEDA


def _mmseg_dirs(root: Path) -> list[tuple[Path, Path]]:
    img, ann = root / "img_dir", root / "ann_dir"
    if not (img.is_dir() and ann.is_dir()):
        return []
    dirs = [(img, ann)] if any(p.is_file() for p in img.iterdir()) else []
    dirs += [
        (sub, ann / sub.name)
        for sub in sorted(img.iterdir())
        if sub.is_dir() and (ann / sub.name).is_dir()
    ]
    return dirs


def _official_dirs(root: Path) -> list[tuple[Path, Path]]:
    levels = [[root]]
    for _ in range(2):
        levels.append(sorted(c for p in levels[-1] for c in p.iterdir() if c.is_dir()))
    return [
        (d / "images_png", d / "masks_png")
        for level in levels
        for d in level
        if (d / "images_png").is_dir() and (d / "masks_png").is_dir()
    ]


SPLITS = ("train", "val", "test")


def split_of(folder: Path, root: Path) -> str | None:
    """The split a LoveDA image folder is in: the first folder below ``root`` named like one."""
    for part in folder.relative_to(root).parts:
        if part.lower() in SPLITS:
            return part.lower()
    return None


def find_loveda_dirs(root: Path) -> list[tuple[Path, Path]]:
    """``(image folder, mask folder)`` pairs of either LoveDA layout under ``root``."""
    if not root.is_dir():
        return []
    return _mmseg_dirs(root) or _official_dirs(root)


class LoveDAReader(SceneReader):
    """LoveDA tiles with their land-cover masks (taxonomy ``loveda``)."""

    format = "loveda"
    licence = "CC BY-NC-SA 4.0"  # LoveDA's release terms

    def __init__(
        self, root: str | Path, taxonomy: Taxonomy | None = None, *, split: str | None = None
    ) -> None:
        super().__init__(root, taxonomy or LOVEDA)
        self._items: list[tuple[Path, Path]] = []
        seen: dict[str, Path] = {}
        for image_dir, mask_dir in self._dirs(split):
            pairs, _ = pair_by_stem(image_dir, mask_dir)
            for name, image, mask in pairs:
                if name in seen:
                    raise DataError(
                        f"{image}: tile {name!r} is also {seen[name]}; read one "
                        f"split at a time (point at its folder)"
                    )
                seen[name] = image
                self._items.append((image, mask))
                self.names.append(name)
        self._require_items("LoveDA img_dir/ + ann_dir/ (or images_png/ + masks_png/) tiles")

    def _dirs(self, split: str | None) -> list[tuple[Path, Path]]:
        """The (image, mask) folders to read: all, or those of ``split``."""
        dirs = find_loveda_dirs(self.root)
        if split is None:
            return dirs
        chosen = [d for d in dirs if split_of(d[0], self.root) == split]
        if not chosen and dirs:
            found = sorted({s for d in dirs if (s := split_of(d[0], self.root)) is not None})
            listed = f"choose one of: {', '.join(found)}" if found else "it has no split folders"
            raise ConfigError(f"{self.root}: no LoveDA split {split!r}; {listed} (or omit --split)")
        return chosen

    @classmethod
    def detect(cls, root: Path) -> bool:
        return bool(find_loveda_dirs(root))

    def __getitem__(self, index: int) -> Scene:
        image, mask = self._items[index]
        scene = load_scene(self.names[index], image, mask, self.taxonomy)
        scene.meta["folder"] = image.parent.relative_to(self.root).as_posix()
        scene.meta["split"] = split_of(image.parent, self.root)
        return scene
