"""A plain folder of images and masks paired by file name: ``images/`` + ``masks/``.

Layout: ``root/{images,image,img,imgs}/`` and ``root/{masks,mask,labels,label,gt}/`` holding
PNG, JPEG or TIFF files paired by file stem (a mask may add ``_mask``/``.mask``/``_label``/
``_gt`` to the image's stem), plus optionally ``root/instances/`` with instance maps (16-bit
PNG or TIFF, 0 = no instance). An image the folder has no instance map for gets one derived
from its mask (:func:`component_instances`: each 8-connected piece of a class is an
instance), so a folder may mix items with and without instance maps.

Masks are index maps (one band of class ids) or RGB colour-coded in the taxonomy's colours.
A 3-band mask whose colours are all in the palette is decoded through it; a grey 3-band mask
whose colours are not is read as an index map; anything else is an error listing the colours.

The taxonomy is, in order: the ``taxonomy`` argument, the ``taxonomy`` of a ``manifest.json``
in the root (as changen's writers write it), else ``binary_building``. Binary masks stored as
0/255 are never cut silently: with a binary taxonomy a mask holding 255 but no 1 is an error
unless ``binary_threshold`` is given, in which case every mask is read as ``mask > threshold``
(so 255 becomes building, not ignore). Image pixels that are no-data (alpha 0) become the
taxonomy's ignore id in the mask. Every mask is checked against the taxonomy
(:func:`~changen.data.readers.base.check_mask`): an id it does not define is an error naming
the file and the ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from changen.data.bands import to_rgb8
from changen.data.imageio import list_images, read_image
from changen.data.readers.base import SceneReader, check_mask, mask_values
from changen.errors import ConfigError, DataError
from changen.sample import Scene, Taxonomy
from changen.taxonomies import BINARY_BUILDING, get_taxonomy

IMAGE_DIRS = ("images", "image", "img", "imgs")
MASK_DIRS = ("masks", "mask", "labels", "label", "gt")
INSTANCE_DIR = "instances"
MASK_STEM_SUFFIXES = ("_mask", ".mask", "-mask", "_label", "_labels", "_gt")
_EXAMPLES = 3


def find_subdir(root: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` that is a folder under ``root`` (case-insensitive), or None."""
    if not root.is_dir():
        return None
    present = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    for name in names:
        if name in present:
            return present[name]
    return None


def _by_stem(files: list[Path], folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise DataError(
                f"{folder}: two files share the name {f.stem!r} ({out[f.stem].name}, "
                f"{f.name}); keep one of them"
            )
        out[f.stem] = f
    return out


def _label_key(stem: str, image_stems: dict[str, Path]) -> str:
    if stem in image_stems:
        return stem
    for suffix in MASK_STEM_SUFFIXES:
        if stem.endswith(suffix) and stem[: -len(suffix)] in image_stems:
            return stem[: -len(suffix)]
    return stem


def _examples(paths: list[Path]) -> str:
    return ", ".join(p.name for p in paths[:_EXAMPLES]) + (", …" if len(paths) > _EXAMPLES else "")


def pair_by_stem(
    image_dir: Path,
    label_dir: Path,
    what: str = "mask",
    require_labels: bool = True,
) -> tuple[list[tuple[str, Path, Path]], list[Path]]:
    """Pair the images of ``image_dir`` with the files of ``label_dir`` by stem.

    Returns ``(pairs, unlabelled)``: ``(stem, image, label)`` sorted by stem and the images with
    no label. Labels without an image are always an error; images without a label are one when
    ``require_labels`` is true.
    """
    images = _by_stem(list_images(image_dir), image_dir)
    labels: dict[str, Path] = {}
    for f in list_images(label_dir):
        key = _label_key(f.stem, images)
        if key in labels:
            raise DataError(
                f"{label_dir}: {labels[key].name} and {f.name} are both the {what} "
                f"of {key!r}; keep one of them"
            )
        labels[key] = f
    orphans = [labels[k] for k in sorted(labels) if k not in images]
    if orphans:
        raise DataError(
            f"{label_dir}: {len(orphans)} {what}s have no image in {image_dir}, "
            f"e.g. {_examples(orphans)}; add the images or remove the {what}s"
        )
    unlabelled = [images[k] for k in sorted(images) if k not in labels]
    if unlabelled and require_labels:
        raise DataError(
            f"{image_dir}: {len(unlabelled)} images have no {what} in {label_dir}, "
            f"e.g. {_examples(unlabelled)}; add the {what}s or remove the images"
        )
    pairs = [(k, images[k], labels[k]) for k in sorted(images) if k in labels]
    return pairs, unlabelled


def check_same_size(
    image_hw: tuple[int, ...], image: Path, other: np.ndarray, path: Path, what: str = "mask"
) -> None:
    """Raise a one-line :class:`DataError` naming both files if their sizes differ."""
    if tuple(other.shape[:2]) != tuple(image_hw[:2]):
        raise DataError(
            f"{path}: {what} is {other.shape[1]}×{other.shape[0]} (w×h) but its image {image} "
            f"is {image_hw[1]}×{image_hw[0]}; give both files the same size"
        )


def is_binary(taxonomy: Taxonomy) -> bool:
    """True for a 0/1 taxonomy whose ignore id is 255 (where 0/255 masks are ambiguous)."""
    return taxonomy.ignore == 255 and set(taxonomy.ids) - {taxonomy.ignore} == {0, 1}


def _index_map(band: np.ndarray, path: Path) -> np.ndarray:
    if band.dtype == np.uint8:
        return band
    if not np.issubdtype(band.dtype, np.integer):
        raise DataError(f"{path}: mask has {band.dtype} values; masks hold integer class ids")
    lo, hi = int(band.min()), int(band.max())
    if lo < 0 or hi > 255:
        raise DataError(
            f"{path}: mask values span {lo}..{hi} but class ids are 0..255; remap the mask"
        )
    return band.astype(np.uint8)


def read_label_mask(
    path: Path,
    taxonomy: Taxonomy,
    binary_threshold: int | None = None,
    taxonomy_given: bool = True,
) -> np.ndarray:
    """Read a mask file as a uint8 HW class-id map checked against ``taxonomy`` (see the
    module docstring); ``taxonomy_given=False`` says the taxonomy is the reader's default."""
    mask = _decode_mask(path, taxonomy, binary_threshold)
    check_mask(mask, taxonomy, path, defaulted=not taxonomy_given)
    return mask


def _decode_mask(path: Path, taxonomy: Taxonomy, binary_threshold: int | None) -> np.ndarray:
    """A mask file's class ids: RGB colours decoded, a threshold applied, 0/255 refused."""
    raw = read_image(path)
    if raw.shape[2] in (3, 4):
        rgb = raw[..., :3]
        grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
        if binary_threshold is None or not grey:
            try:
                return taxonomy.decode_rgb(rgb, source=str(path))
            except DataError:
                if not grey:
                    raise
        raw = rgb[..., :1]
    elif raw.shape[2] != 1:
        raise DataError(f"{path}: a mask needs 1 band or RGB colours, got {raw.shape[2]} bands")
    if binary_threshold is not None:
        return (raw[..., 0] > binary_threshold).astype(np.uint8)
    mask = _index_map(raw[..., 0], path)
    present = mask_values(mask)
    if is_binary(taxonomy) and present[255] and not present[1]:
        raise DataError(
            f"{path}: mask holds only 0/255 but taxonomy {taxonomy.name!r} reads 1 as building "
            f"and 255 as ignore; pass --binary-threshold 127 (binary_threshold=127 in Python) "
            f"to read 0/255 masks as 0/1"
        )
    return mask


def read_instances(path: Path) -> np.ndarray:
    """Read a 1-band instance map (0 = none) as int32."""
    raw = read_image(path)
    if raw.shape[2] != 1 or not np.issubdtype(raw.dtype, np.integer):
        raise DataError(
            f"{path}: an instance map needs 1 band of integers, got "
            f"{raw.shape[2]} band(s) of {raw.dtype}"
        )
    band = raw[..., 0]
    if band.size and (int(band.min()) < 0 or int(band.max()) > np.iinfo(np.int32).max):
        raise DataError(
            f"{path}: instance ids span {int(band.min())}..{int(band.max())}; "
            f"they must be 0..2**31-1 (0 = no instance)"
        )
    return band.astype(np.int32)


def component_instances(mask: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """The int32 instance map of a mask that came without one: each 8-connected piece of a
    class other than background (0) and ignore is an instance, as the events find objects."""
    out = np.zeros(mask.shape, np.int32)
    next_id = 1
    for cls in np.flatnonzero(mask_values(mask)):
        if cls in (0, taxonomy.ignore):
            continue
        n, pieces = cv2.connectedComponents((mask == cls).astype(np.uint8), connectivity=8)
        inside = pieces > 0
        out[inside] = pieces[inside] + (next_id - 1)
        next_id += n - 1
    return out


def load_scene(
    name: str,
    image_path: Path,
    mask_path: Path,
    taxonomy: Taxonomy,
    *,
    instances_path: Path | None = None,
    derive_instances: bool = False,
    binary_threshold: int | None = None,
    taxonomy_given: bool = True,
    bands: tuple[int, ...] | None = None,
) -> Scene:
    """Decode one image/mask(/instances) triple into a :class:`Scene` (RGB uint8 image);
    ``derive_instances``: without ``instances_path``, derive the instance map from the mask."""
    image, valid = to_rgb8(read_image(image_path), bands=bands, source=str(image_path))
    mask = read_label_mask(mask_path, taxonomy, binary_threshold, taxonomy_given)
    check_same_size(image.shape, image_path, mask, mask_path)
    if valid is not None:
        mask = np.where(valid, mask, np.uint8(taxonomy.ignore)).astype(np.uint8)
    instances = None
    if instances_path is not None:
        instances = read_instances(instances_path)
        check_same_size(image.shape, image_path, instances, instances_path, "instance map")
    elif derive_instances:
        instances = component_instances(mask, taxonomy)
    return Scene(image, mask, instances, None, taxonomy, name, str(image_path))


def manifest_taxonomy(root: Path) -> Taxonomy | None:
    """The taxonomy named in ``root/manifest.json`` (an object or a built-in name), if any."""
    path = root / "manifest.json"
    if not path.is_file():
        return None
    try:
        spec = json.loads(path.read_text(encoding="utf-8")).get("taxonomy")
        if spec is None:
            return None
        return get_taxonomy(spec) if isinstance(spec, str) else Taxonomy.from_dict(spec)
    except (ValueError, KeyError, TypeError, AttributeError, ConfigError) as e:
        raise DataError(
            f"{path}: unreadable taxonomy ({type(e).__name__}: {e}); fix the "
            f"manifest or pass taxonomy= explicitly"
        ) from None


class FolderReader(SceneReader):
    """Images and masks paired by file stem (see the module docstring for the rules)."""

    format = "folder"

    def __init__(
        self,
        root: str | Path,
        taxonomy: Taxonomy | None = None,
        *,
        binary_threshold: int | None = None,
        bands: tuple[int, ...] | None = None,
    ) -> None:
        root = Path(root)
        from_manifest = None if taxonomy is not None else manifest_taxonomy(root)
        self._taxonomy_given = taxonomy is not None or from_manifest is not None
        super().__init__(root, taxonomy or from_manifest or BINARY_BUILDING)
        if binary_threshold is not None:
            if not is_binary(self.taxonomy):
                raise ConfigError(
                    f"binary_threshold needs a 0/1 taxonomy, but "
                    f"{self.taxonomy.name!r} has ids {self.taxonomy.ids}"
                )
            if not 0 <= binary_threshold < 255:
                raise ConfigError(f"binary_threshold={binary_threshold} is outside 0..254")
        self.binary_threshold = binary_threshold
        self.bands = bands
        image_dir = find_subdir(self.root, IMAGE_DIRS)
        mask_dir = find_subdir(self.root, MASK_DIRS)
        if image_dir is None or mask_dir is None:
            raise DataError(
                f"{self.root}: expected an images folder ({'/, '.join(IMAGE_DIRS)}/) "
                f"and a masks folder ({'/, '.join(MASK_DIRS)}/); check the path"
            )
        pairs, _ = pair_by_stem(image_dir, mask_dir)
        self._items = pairs
        self._instances: dict[str, Path] = {}
        instance_dir = find_subdir(self.root, (INSTANCE_DIR,))
        self._derive_instances = instance_dir is not None
        if instance_dir is not None:
            inst_pairs, _ = pair_by_stem(image_dir, instance_dir, "instance map", False)
            self._instances = {name: inst for name, _, inst in inst_pairs}
        self.names = [name for name, _, _ in pairs]
        self._require_items("image/mask pairs")

    @classmethod
    def detect(cls, root: Path) -> bool:
        image_dir = find_subdir(root, IMAGE_DIRS)
        mask_dir = find_subdir(root, MASK_DIRS)
        return (
            image_dir is not None
            and mask_dir is not None
            and bool(list_images(image_dir))
            and bool(list_images(mask_dir))
        )

    def __getitem__(self, index: int) -> Scene:
        name, image_path, mask_path = self._items[index]
        return load_scene(
            name,
            image_path,
            mask_path,
            self.taxonomy,
            instances_path=self._instances.get(name),
            derive_instances=self._derive_instances,
            binary_threshold=self.binary_threshold,
            taxonomy_given=self._taxonomy_given,
            bands=self.bands,
        )
