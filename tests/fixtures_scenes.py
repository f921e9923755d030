"""Seeded builders of tiny fake single-temporal datasets in each layout changen reads.

Every builder writes files under ``root`` and returns what it wrote as arrays, keyed by item
name, so tests can compare a reader's output with the truth. Files are written with OpenCV,
rasterio and json directly (not with changen's writers) so a writer bug cannot hide a reader bug.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from changen.sample import Taxonomy
from changen.taxonomies import LOVEDA, OPENEARTHMAP, XVIEW2_DAMAGE


@dataclass
class Truth:
    """What a builder wrote for one item: RGB image, class-id mask, optional instance map."""

    image: np.ndarray
    mask: np.ndarray
    instances: np.ndarray | None = None
    meta: dict = field(default_factory=dict)


def random_image(
    rng: np.random.Generator, hw: tuple[int, int], bands: int = 3, dtype: type = np.uint8
) -> np.ndarray:
    hi = 256 if dtype == np.uint8 else 4096
    return rng.integers(0, hi, (*hw, bands)).astype(dtype)


def random_mask(
    rng: np.random.Generator, hw: tuple[int, int], ids: list[int], block: int = 8
) -> np.ndarray:
    """A blocky class-id map: random ids on a coarse grid, upsampled by nearest neighbour."""
    coarse = rng.choice(np.array(ids, np.uint8), (-(-hw[0] // block), -(-hw[1] // block)))
    return np.kron(coarse, np.ones((block, block), np.uint8))[: hw[0], : hw[1]]


def instances_of(mask: np.ndarray, background: int = 0) -> np.ndarray:
    """Connected components of the non-background pixels, as an int32 instance map."""
    _, labels = cv2.connectedComponents((mask != background).astype(np.uint8), connectivity=4)
    return labels.astype(np.int32)


def write_png(path: Path, array: np.ndarray) -> None:
    """Write HW or HWC (RGB/RGBA) pixels exactly, via OpenCV (BGR order on disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = array
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[..., ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., [2, 1, 0, 3]]
    assert cv2.imwrite(str(path), np.ascontiguousarray(arr)), path


def write_tiff(
    path: Path, array: np.ndarray, crs: str | None = None, transform: Affine | None = None
) -> None:
    """Write HW or HWC pixels as a (Geo)TIFF with rasterio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = array[..., None] if array.ndim == 2 else array
    geo = {"crs": crs, "transform": transform} if transform is not None else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=arr.shape[1],
            height=arr.shape[0],
            count=arr.shape[2],
            dtype=arr.dtype.name,
            **geo,
        ) as dst:
            dst.write(np.moveaxis(arr, -1, 0))


def make_folder_dataset(
    root: Path,
    rng: np.random.Generator,
    n: int = 3,
    hw: tuple[int, int] = (40, 56),
    *,
    mask_style: str = "index",
    taxonomy: Taxonomy = OPENEARTHMAP,
    instances: str | None = None,
    image_dir: str = "images",
    mask_dir: str = "masks",
    image_ext: str = ".png",
    mask_suffix: str = "",
) -> dict[str, Truth]:
    """A ``images/`` + ``masks/`` folder; ``mask_style`` is index, rgb, binary01 or binary255.

    ``instances`` writes ``instances/`` maps as ``".png"`` (16-bit) or ``".tif"`` (int32).
    Binary styles ignore ``taxonomy`` and write building masks (truth in 0/1).
    """
    truth = {}
    for i in range(n):
        name = f"tile_{i:03d}"
        image = random_image(rng, hw)
        binary = mask_style.startswith("binary")
        ids = [0, 1] if binary else [c.id for c in taxonomy.classes if c.id != taxonomy.ignore]
        mask = random_mask(rng, hw, ids)
        if image_ext in (".tif", ".tiff"):
            write_tiff(root / image_dir / f"{name}{image_ext}", image)
        else:
            write_png(root / image_dir / f"{name}{image_ext}", image)
        stored = {
            "index": mask,
            "binary01": mask,
            "binary255": mask * 255,
            "rgb": taxonomy.colorize(mask),
        }[mask_style]
        write_png(root / mask_dir / f"{name}{mask_suffix}.png", stored)
        inst = None
        if instances is not None:
            inst = instances_of(mask, 0)
            if instances == ".png":
                write_png(root / "instances" / f"{name}.png", inst.astype(np.uint16))
            else:
                write_tiff(root / "instances" / f"{name}.tif", inst)
        truth[name] = Truth(image, mask, inst)
    return truth


@dataclass
class Box:
    """An axis-aligned building in pixel-corner coordinates: covers cols x0..x1-1, rows y0..y1-1."""

    x0: int
    y0: int
    x1: int
    y1: int

    def wkt(self) -> str:
        x0, y0, x1, y1 = self.x0, self.y0, self.x1, self.y1
        return f"POLYGON (({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))"


def random_boxes(rng: np.random.Generator, size: int, k: int) -> list[Box]:
    """``k`` non-overlapping boxes, one per cell of a coarse grid."""
    cell = size // 4
    cells = rng.choice(16, k, replace=False)
    boxes = []
    for c in cells:
        cx, cy = (c % 4) * cell, (c // 4) * cell
        w, h = rng.integers(3, cell - 1, 2)
        x0, y0 = cx + rng.integers(0, cell - w), cy + rng.integers(0, cell - h)
        boxes.append(Box(int(x0), int(y0), int(x0 + w), int(y0 + h)))
    return boxes


def xbd_json(
    wkts: list[str], size: int, image_name: str, subtypes: list[str] | None = None
) -> dict:
    """An xBD label document with pixel WKT polygons (and damage subtypes for post)."""
    xy = []
    for i, w in enumerate(wkts):
        props = {"feature_type": "building", "uid": f"uid-{i:04d}"}
        if subtypes is not None:
            props["subtype"] = subtypes[i]
        xy.append({"properties": props, "wkt": w})
    return {
        "features": {"lng_lat": [], "xy": xy},
        "metadata": {
            "width": size,
            "height": size,
            "img_name": image_name,
            "disaster": image_name.rsplit("_", 3)[0],
        },
    }


def make_xview2_dataset(
    root: Path,
    rng: np.random.Generator,
    n: int = 2,
    size: int = 64,
    disaster: str = "test-flood",
) -> dict[str, Truth]:
    """xBD tiles (pre and post) with box polygons; truth masks are for the post phase.

    Truth ``mask`` holds the ``xview2_damage`` ids; pre-phase truth is ``mask > 0``.
    ``meta["uids"]`` and ``meta["subtypes"]`` list the polygons in JSON order.
    """
    damage = [c.name for c in XVIEW2_DAMAGE.classes if c.id != 0]
    truth = {}
    for t in range(n):
        tile = f"{t:08d}"
        boxes = random_boxes(rng, size, int(rng.integers(3, 7)))
        subtypes = [str(s) for s in rng.choice(damage, len(boxes))]
        instances = np.zeros((size, size), np.int32)
        mask = np.zeros((size, size), np.uint8)
        for k, (b, s) in enumerate(zip(boxes, subtypes, strict=True)):
            instances[b.y0 : b.y1, b.x0 : b.x1] = k + 1
            mask[b.y0 : b.y1, b.x0 : b.x1] = XVIEW2_DAMAGE.id_of(s)
        for phase in ("pre", "post"):
            stem = f"{disaster}_{tile}_{phase}_disaster"
            write_png(root / "images" / f"{stem}.png", random_image(rng, (size, size)))
            doc = xbd_json(
                [b.wkt() for b in boxes], size, f"{stem}.png", subtypes if phase == "post" else None
            )
            (root / "labels").mkdir(parents=True, exist_ok=True)
            (root / "labels" / f"{stem}.json").write_text(json.dumps(doc))
        truth[f"{disaster}_{tile}"] = Truth(
            np.zeros(0),
            mask,
            instances,
            {
                "uids": [f"uid-{i:04d}" for i in range(len(boxes))],
                "subtypes": subtypes,
                "tile": tile,
            },
        )
    return truth


OEM_CRS = "EPSG:32632"


def make_oem_dataset(
    root: Path,
    rng: np.random.Generator,
    regions: tuple[str, ...] = ("aachen", "kyoto"),
    n: int = 2,
    size: int = 32,
    unlabelled: int = 1,
) -> dict[str, Truth]:
    """OpenEarthMap regions of GeoTIFF tiles; ``unlabelled`` extra images per region lack labels.

    Writes ``train.txt`` naming the first labelled tile of each region. ``meta["transform"]``
    is each image's affine transform (CRS :data:`OEM_CRS`).
    """
    truth = {}
    ids = [c.id for c in OPENEARTHMAP.classes]
    train = []
    for r, region in enumerate(regions):
        for i in range(n + unlabelled):
            name = f"{region}_{i + 1}"
            image = random_image(rng, (size, size))
            transform = Affine(0.5, 0, 300000 + 1000 * r + 16 * i, 0, -0.5, 5600000)
            write_tiff(root / region / "images" / f"{name}.tif", image, OEM_CRS, transform)
            if i >= n:
                continue
            mask = random_mask(rng, (size, size), ids)
            write_tiff(root / region / "labels" / f"{name}.tif", mask, OEM_CRS, transform)
            truth[name] = Truth(image, mask, meta={"transform": transform, "region": region})
        train.append(f"{region}_1.tif")
    (root / "train.txt").write_text("\n".join(train) + "\n")
    return truth


def make_loveda_dataset(
    root: Path,
    rng: np.random.Generator,
    layout: str = "mmseg",
    n: int = 2,
    size: int = 32,
) -> dict[str, Truth]:
    """LoveDA tiles: ``mmseg`` (``img_dir/ ann_dir/``) or ``official`` (``Train/{Urban,Rural}``
    and ``Val/Rural`` with ``images_png/ masks_png/``, plus a label-less ``Test/Rural``)."""
    if layout == "mmseg":
        dirs = [(root / "img_dir", root / "ann_dir")]
    else:
        dirs = [
            (root / s / d / "images_png", root / s / d / "masks_png")
            for s, d in (("Train", "Urban"), ("Train", "Rural"), ("Val", "Rural"))
        ]
        write_png(
            root / "Test" / "Rural" / "images_png" / "9999.png", random_image(rng, (size, size))
        )
    truth = {}
    number = 0
    for image_dir, mask_dir in dirs:
        for _ in range(n):
            name = str(number)
            number += 1
            image = random_image(rng, (size, size))
            mask = random_mask(rng, (size, size), LOVEDA.ids)
            write_png(image_dir / f"{name}.png", image)
            write_png(mask_dir / f"{name}.png", mask)
            truth[name] = Truth(image, mask, meta={"folder": image_dir.relative_to(root)})
    return truth
