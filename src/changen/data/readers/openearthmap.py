"""OpenEarthMap: ``<region>/{images,labels}/<region>_<n>.tif`` for many regions under the root.

Images are GeoTIFFs (their georeference is kept), labels single-band GeoTIFFs of the
``openearthmap`` ids (0 unknown … 8 building). The root may also be one region folder. Images
with no label (OpenEarthMap withholds the test labels) are skipped and listed in
``unlabelled``; ``split="train"`` (or ``val``, ``test``) keeps only the files named in the
root's ``<split>.txt``, as in the official release. ``Scene.meta["split"]`` names the list a
tile is in (``None`` when no list names it).
"""

from __future__ import annotations

from pathlib import Path

from changen.data.bands import to_rgb8
from changen.data.raster import read_raster
from changen.data.readers.base import SceneReader
from changen.data.readers.folder import check_same_size, pair_by_stem, read_label_mask
from changen.errors import DataError
from changen.sample import Scene, Taxonomy
from changen.taxonomies import OPENEARTHMAP

_SUFFIXES = (".tif", ".tiff")


def _regions(root: Path) -> list[Path]:
    """Region folders: ``root`` itself if it is one, else its subfolders that are."""

    def is_region(p: Path) -> bool:
        return (p / "images").is_dir() and (p / "labels").is_dir()

    if is_region(root):
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and is_region(p))


def split_lists(root: Path) -> dict[str, set[str]]:
    """The stems each ``<split>.txt`` list at the root names (the official release's lists)."""
    return {
        path.stem: {Path(line.strip()).stem for line in path.read_text().splitlines() if line}
        for path in sorted(root.glob("*.txt"))
        if path.is_file()
    }


def _read_split(lists: dict[str, set[str]], root: Path, split: str) -> set[str]:
    if split not in lists:
        found = f"choose one of: {', '.join(lists)}" if lists else "it has no <split>.txt lists"
        raise DataError(
            f"{root / split}.txt: split list not found; {found}, or omit --split to read "
            f"every labelled tile"
        )
    return lists[split]


class OpenEarthMapReader(SceneReader):
    """OpenEarthMap tiles (all regions under the root) with their 9-class land-cover masks."""

    format = "openearthmap"

    def __init__(
        self,
        root: str | Path,
        taxonomy: Taxonomy | None = None,
        *,
        split: str | None = None,
        bands: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(root, taxonomy or OPENEARTHMAP)
        self.bands = bands
        lists = split_lists(self.root) if self.root.is_dir() else {}
        keep = _read_split(lists, self.root, split) if split is not None else None
        self._splits = {stem: name for name, stems in lists.items() for stem in stems}
        self._items: list[tuple[Path, Path]] = []
        self.unlabelled: list[Path] = []
        for region in _regions(self.root):
            pairs, unlabelled = pair_by_stem(
                region / "images", region / "labels", what="label", require_labels=False
            )
            self.unlabelled += [p for p in unlabelled if keep is None or p.stem in keep]
            for name, image, label in pairs:
                if keep is None or name in keep:
                    self._items.append((image, label))
                    self.names.append(name)
        self._require_items("OpenEarthMap <region>/images + <region>/labels tiles")

    @classmethod
    def detect(cls, root: Path) -> bool:
        for region in _regions(root):
            tifs = [p for p in (region / "labels").iterdir() if p.suffix.lower() in _SUFFIXES]
            if any(p.stem.startswith(f"{region.name}_") for p in tifs):
                return True
        return False

    def __getitem__(self, index: int) -> Scene:
        image_path, label_path = self._items[index]
        raw, georef = read_raster(image_path)
        image, valid = to_rgb8(raw, bands=self.bands, source=str(image_path))
        mask = read_label_mask(label_path, self.taxonomy)
        check_same_size(image.shape, image_path, mask, label_path, "label")
        if valid is not None:
            mask[~valid] = self.taxonomy.ignore
        return Scene(
            image,
            mask,
            None,
            georef,
            self.taxonomy,
            self.names[index],
            str(image_path),
            {"region": image_path.parent.parent.name, "split": self._splits.get(self.names[index])},
        )
