"""Seeded builders of small fake change datasets in every layout changen reads.

Each builder writes files with plain image I/O (not changen's writers, so reader tests do not
depend on them) and returns what the reader should give back, keyed by ``(split, name)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from affine import Affine

from changen.data.imageio import write_image
from changen.data.raster import write_raster
from changen.sample import CHANGE_IGNORE, ChangeSample, GeoRef, Taxonomy
from changen.taxonomies import BINARY_BUILDING, SECOND_DING

#: (t1, t2, label) folder names of the binary folder layouts.
FOLDER_LAYOUTS: dict[str, tuple[str, str, str]] = {
    "levircd": ("A", "B", "label"),
    "s2looking": ("Image1", "Image2", "label"),
    "whucd": ("A", "B", "label"),
    "sysucd": ("time1", "time2", "label"),
    "dsifn": ("t1", "t2", "mask"),
}

SHAPE = (24, 32)
GEOREF = GeoRef("EPSG:32616", Affine(0.5, 0.0, 740000.0, 0.0, -0.5, 3730000.0))

Key = tuple[str | None, str]


def blocky_mask(
    rng: np.random.Generator, shape: tuple[int, int], ids: list[int], cell: int = 8
) -> np.ndarray:
    """A class map of ``cell``-sized blocks with ids drawn from ``ids``."""
    h, w = shape
    coarse = rng.choice(np.array(ids, np.uint8), size=(-(-h // cell), -(-w // cell)))
    return np.kron(coarse, np.ones((cell, cell), np.uint8))[:h, :w].astype(np.uint8)


def make_change_sample(
    rng: np.random.Generator,
    name: str,
    taxonomy: Taxonomy = BINARY_BUILDING,
    *,
    shape: tuple[int, int] = SHAPE,
    masks: bool = True,
    georef: GeoRef | None = None,
    ignore_corner: bool = False,
) -> ChangeSample:
    """A random pair whose t2 mask re-classes some blocks; change = masks differ.

    ``ignore_corner`` marks a 4×4 corner ignore in the t1 mask and in the change mask.
    """
    ids = [i for i in taxonomy.ids if i != taxonomy.ignore]
    t1 = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    t2 = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    m1 = blocky_mask(rng, shape, ids)
    m2 = np.where(blocky_mask(rng, shape, [0, 1]) == 1, blocky_mask(rng, shape, ids), m1)
    change = (m1 != m2).astype(np.uint8)
    if ignore_corner:
        m1[:4, :4] = taxonomy.ignore
        change[:4, :4] = CHANGE_IGNORE
    return ChangeSample(
        t1, t2, change, m1 if masks else None, m2 if masks else None, georef, taxonomy, name
    )


def build_folder_dataset(
    root: Path,
    layout: str,
    rng: np.random.Generator,
    *,
    names: tuple[str, ...] = ("a", "b", "c"),
    splits: tuple[str | None, ...] = (None,),
    label_values: tuple[int, ...] = (0, 255),
    suffix: str = ".png",
    georef: GeoRef | None = None,
) -> dict[Key, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A binary change dataset in ``layout``'s folders; labels hold ``label_values``.

    Returns ``{(split, name): (t1, t2, label)}``. With ``suffix=".tif"`` images are GeoTIFFs
    carrying ``georef``.
    """
    t1_dir, t2_dir, label_dir = FOLDER_LAYOUTS[layout]
    expected: dict[Key, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for split in splits:
        folder = root / split if split else root
        for name in names:
            t1 = rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
            t2 = rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
            label = blocky_mask(rng, SHAPE, list(label_values))
            for sub, image in ((t1_dir, t1), (t2_dir, t2)):
                if suffix == ".tif":
                    write_raster(folder / sub / f"{name}.tif", image, georef)
                else:
                    write_image(folder / sub / f"{name}{suffix}", image)
            write_image(folder / label_dir / f"{name}.png", label)
            expected[(split, name)] = (t1, t2, label)
    return expected


def second_labels(
    rng: np.random.Generator,
    taxonomy: Taxonomy = SECOND_DING,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SECOND-style labels: classes inside changed blocks, "unchanged" (0) elsewhere."""
    changed = blocky_mask(rng, SHAPE, [0, 1]) == 1
    classes = [i for i in taxonomy.ids if i != taxonomy.background]
    l1 = np.where(changed, blocky_mask(rng, SHAPE, classes), 0).astype(np.uint8)
    l2 = np.where(changed, blocky_mask(rng, SHAPE, classes), 0).astype(np.uint8)
    return l1, l2, changed.astype(np.uint8)


def build_second_dataset(
    root: Path,
    rng: np.random.Generator,
    *,
    taxonomy: Taxonomy = SECOND_DING,
    rgb: bool = True,
    splits: tuple[str | None, ...] = ("train", "test"),
    names: tuple[str, ...] = ("a", "b"),
) -> dict[Key, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """A SECOND dataset; labels RGB-coded in ``taxonomy``'s colours or index maps.

    Returns ``{(split, name): (t1, t2, label1 ids, label2 ids, change)}``.
    """
    expected = {}
    for split in splits:
        folder = root / split if split else root
        for name in names:
            t1 = rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
            t2 = rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
            l1, l2, change = second_labels(rng, taxonomy)
            write_image(folder / "im1" / f"{name}.png", t1)
            write_image(folder / "im2" / f"{name}.png", t2)
            for sub, label in (("label1", l1), ("label2", l2)):
                write_image(
                    folder / sub / f"{name}.png", taxonomy.colorize(label) if rgb else label
                )
            expected[(split, name)] = (t1, t2, l1, l2, change)
    return expected
