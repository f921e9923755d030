"""GeoTIFF rasters with vector labels (SpaceNet style): polygons rasterised on each raster's grid.

Layout: a folder of rasters (``*.tif``) and GeoJSON label files paired by name, or one label
file for all rasters (then each raster takes the polygons that fall on it). A raster pairs with
the label file of the same stem, else with the one sharing the most trailing ``_``-separated
name parts (SpaceNet's ``RGB-PanSharpen_AOI_2_Vegas_img1.tif`` ↔
``buildings_AOI_2_Vegas_img1.geojson``). ``root`` may also be a single raster with ``labels=``.
Rasters without a CRS beside georeferenced ones sharing a label file (a reference mask such as
SpaceNet's ``sample_fp_mask_from_geojson.tif``) are left out and listed in ``reader.skipped``.

Polygons are reprojected from the labels' CRS (``labels_crs=`` if given, ``"pixel"`` for
pixel coordinates; else GeoJSON's ``crs`` member; else EPSG:4326 as RFC 7946 says) to the
raster's CRS and rasterised with GDAL's pixel-centre rule into a semantic mask and an instance
map with one id per polygon (ids 1..K in file order over the polygons on the raster; later
polygons win where they overlap, and a polygon covering no pixel centre leaves its id unused;
``Scene.meta["instance_features"][k - 1]`` is the feature index of id k). Pixels that are
nodata or alpha 0 become the taxonomy's ignore id.

Only (Multi)Polygon features (and the polygons of a GeometryCollection) become labels. The
others (null geometry, Point, LineString, empty polygons…) are skipped and counted by kind in
``VectorLabels.skipped`` and ``Scene.meta["skipped_features"]``; each label file with some gets
one :class:`~changen.data.readers.base.SkippedLabelsWarning` when it is parsed.

The image goes through :func:`changen.data.bands.to_rgb8`: a 1-band uint16 panchromatic
raster (the SpaceNet sample) becomes 3 identical uint8 bands stretched from its 2nd–98th
percentile of valid pixels. ``raw=True`` keeps the raster's own bands and dtype instead.

GeoJSON (``.geojson``, ``.json``) is read with :mod:`json` and shapely. Other vector files
(GeoPackage ``.gpkg``, Shapefile ``.shp``, FlatGeobuf ``.fgb``) are read with pyogrio (GDAL/OGR,
first layer only), which is optional: without it they raise a :class:`FormatError` that says to
``pip install pyogrio`` or convert them to GeoJSON. Their CRS is the layer's unless
``labels_crs=`` is given; a layer with no CRS needs ``labels_crs=``.
Feature order (which decides overlaps and ids) is the file's: a FlatGeobuf written with a
spatial index stores features in spatial order.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio.features
import rasterio.warp
import shapely
from affine import Affine
from shapely.errors import ShapelyError
from shapely.geometry import Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

from changen.data.bands import DEFAULT_STRETCH, stretch_to_uint8, to_rgb8
from changen.data.raster import parse_crs, raster_info, read_raster
from changen.data.readers.base import SceneReader, check_mask, warn_skipped
from changen.errors import ConfigError, DataError, FormatError
from changen.sample import GeoRef, Scene, Taxonomy
from changen.taxonomies import BINARY_BUILDING

RASTER_SUFFIXES = (".tif", ".tiff")
GEOJSON_SUFFIXES = (".geojson", ".json")
#: Vector files read with pyogrio (OGR) rather than :mod:`json`.
OGR_SUFFIXES = (".gpkg", ".shp", ".fgb")
VECTOR_SUFFIXES = GEOJSON_SUFFIXES + OGR_SUFFIXES
#: ``labels_crs`` value for labels whose coordinates are (column, row) pixel positions.
PIXEL = "pixel"
GEOJSON_DEFAULT_CRS = "EPSG:4326"
_AREAL = ("Polygon", "MultiPolygon")
#: Polygons reaching less than this many pixels into a raster (a neighbour's shared edge after
#: reprojection round-off) are not on it: they cannot cover a pixel centre.
_SLIVER = 1e-3


class VectorLabels:
    """The polygons of one label file, with their properties, reprojectable on demand."""

    def __init__(
        self,
        path: Path,
        crs: str,
        geometries: list[BaseGeometry],
        properties: list[dict[str, Any]],
        feature_index: list[int],
        skipped: Mapping[str, int],
    ) -> None:
        self.path = path
        self.crs = crs
        self.geometries = geometries
        self.properties = properties
        self.feature_index = feature_index
        #: features left out, by kind ("Point", "null geometry", …)
        self.skipped = dict(skipped)
        self._projected: dict[str, tuple[list[BaseGeometry], shapely.STRtree]] = {}

    def __len__(self) -> int:
        return len(self.geometries)

    def projected(self, crs: str | None) -> tuple[list[BaseGeometry], shapely.STRtree]:
        """The polygons in ``crs`` (``None``: as stored) and a spatial index over them."""
        key = self.crs if crs is None or self.crs == PIXEL else crs
        if key not in self._projected:
            geoms = self.geometries
            if key != self.crs and geoms and parse_crs(key) != parse_crs(self.crs):
                geoms = self._reproject(key)
            self._projected[key] = (geoms, shapely.STRtree(geoms))
        return self._projected[key]

    def _reproject(self, crs: str) -> list[BaseGeometry]:
        try:
            moved = rasterio.warp.transform_geom(
                parse_crs(self.crs), parse_crs(crs), [mapping(g) for g in self.geometries]
            )
        except Exception as e:  # GDAL/PROJ raise private CPLE_* classes, no public base
            raise DataError(
                f"{self.path}: polygons cannot be reprojected from "
                f"{self.crs[:40]} to {crs[:40]} ({_first_line(e)}); the labels' CRS "
                f"is probably wrong: set the GeoJSON 'crs' member or pass "
                f"labels_crs="
            ) from None
        return [shape(g) for g in moved]


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def is_vector_file(path: Path) -> bool:
    """A label file by suffix; ``.json`` only when it looks like GeoJSON (not any metadata)."""
    suffix = path.suffix.lower()
    if path.name.startswith(".") or suffix not in VECTOR_SUFFIXES:
        return False
    if suffix != ".json":
        return True
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    return b'"FeatureCollection"' in head or b'"Feature"' in head


def read_vector_labels(path: Path, crs: str | None = None) -> VectorLabels:
    """Parse a label file; ``crs`` overrides the file's own CRS (GeoJSON default EPSG:4326)."""
    if path.suffix.lower() not in GEOJSON_SUFFIXES:
        return _read_ogr(path, crs)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(
            f"{path}: not readable as GeoJSON ({e}); fix or re-export the label file"
        ) from None
    features = _features(doc, path)
    crs = crs or _declared_crs(doc, path) or GEOJSON_DEFAULT_CRS
    if crs != PIXEL:
        parse_crs(crs, str(path))
    geometries, properties, index, skipped = [], [], [], Counter[str]()
    for i, feature in enumerate(features):
        geom = _shape(feature.get("geometry"), path, i)
        areal = _areal(geom)
        if areal is None:
            skipped[_kind(geom)] += 1
            continue
        geometries.append(areal)
        properties.append(feature.get("properties") or {})
        index.append(i)
    return _labels(path, crs, geometries, properties, index, skipped, len(features))


def _labels(
    path: Path,
    crs: str,
    geometries: list[BaseGeometry],
    properties: list[dict[str, Any]],
    index: list[int],
    skipped: Mapping[str, int],
    total: int,
) -> VectorLabels:
    """The parsed labels, with the one warning about the features that were skipped."""
    warn_skipped(
        path,
        skipped,
        total,
        "features",
        "only Polygon and MultiPolygon features become labels: buffer points and lines "
        "into polygons, or drop them",
    )
    return VectorLabels(path, crs, geometries, properties, index, skipped)


def _read_ogr(path: Path, crs: str | None) -> VectorLabels:
    """A GeoPackage / Shapefile / FlatGeobuf (any OGR format): its first layer, via pyogrio."""
    try:
        import pyogrio.raw
    except ImportError:
        raise FormatError(
            f"{path}: reading {path.suffix} needs pyogrio (`pip install pyogrio`); "
            f"or convert it to GeoJSON, e.g. `ogr2ogr -f GeoJSON labels.geojson {path.name}`"
        ) from None
    try:
        meta, _, wkb, field_data = pyogrio.raw.read(path)
    except Exception as e:  # pyogrio/GDAL raise several RuntimeError subclasses and OSError
        raise DataError(
            f"{path}: not readable as a vector file ({_first_line(e)}); fix or re-export it"
        ) from None
    crs = crs or meta.get("crs")
    if crs is None:
        raise DataError(
            f"{path}: the layer has no CRS; assign one (e.g. a .prj beside a .shp) or "
            f"pass labels_crs="
        )
    if crs != PIXEL:
        parse_crs(crs, str(path))
    names = [str(n) for n in meta.get("fields", [])]
    columns = [_python_values(col) for col in field_data]
    blobs = wkb if wkb is not None else []
    geometries, properties, index, skipped = [], [], [], Counter[str]()
    for i, blob in enumerate(blobs):
        try:
            geom = shapely.from_wkb(blob) if blob is not None else None
        except (ShapelyError, TypeError, ValueError) as e:
            raise DataError(
                f"{path}: feature {i} has an invalid geometry ({_first_line(e)}); fix or remove it"
            ) from None
        geom = shapely.force_2d(geom) if geom is not None else None
        areal = _areal(geom)
        if areal is None:
            skipped[_kind(geom)] += 1
            continue
        geometries.append(areal)
        properties.append({n: col[i] for n, col in zip(names, columns, strict=True)})
        index.append(i)
    return _labels(path, crs, geometries, properties, index, skipped, len(blobs))


def _python_values(column: np.ndarray) -> list[Any]:
    """A field's values as Python objects, NaN (OGR's null for numbers) as None."""
    return [None if isinstance(v, float) and v != v else v for v in column.tolist()]


def _features(doc: Any, path: Path) -> list[dict[str, Any]]:
    kind = doc.get("type") if isinstance(doc, dict) else None
    if kind == "FeatureCollection" and isinstance(doc.get("features"), list):
        return doc["features"]
    if kind == "Feature":
        return [doc]
    raise DataError(
        f"{path}: expected a GeoJSON FeatureCollection or Feature, got "
        f"{kind or type(doc).__name__!r}; give a GeoJSON label file"
    )


def _declared_crs(doc: dict[str, Any], path: Path) -> str | None:
    crs = doc.get("crs")
    if crs is None:
        return None
    name = crs.get("properties", {}).get("name") if isinstance(crs, dict) else None
    if not isinstance(name, str):
        raise DataError(
            f"{path}: its 'crs' member {crs!r} has no properties.name; write it as "
            f'{{"type": "name", "properties": {{"name": "EPSG:32616"}}}} or pass '
            f"labels_crs="
        )
    return name


def _shape(geometry: Any, path: Path, index: int) -> BaseGeometry | None:
    """A GeoJSON feature's geometry as shapely (None for a null geometry)."""
    if geometry is None:
        return None
    try:
        return shape(geometry)
    except (AttributeError, KeyError, TypeError, ValueError, ShapelyError) as e:
        raise DataError(
            f"{path}: feature {index} has an invalid geometry ({e}); fix or remove it"
        ) from None


def _kind(geom: BaseGeometry | None) -> str:
    """How a skipped geometry is counted: its type, "empty <type>" or "null geometry"."""
    if geom is None:
        return "null geometry"
    return f"empty {geom.geom_type}" if geom.is_empty else geom.geom_type


def _areal(geom: BaseGeometry | None) -> BaseGeometry | None:
    """The polygonal part of a shapely geometry, or None when it has none."""
    if geom is not None and geom.geom_type == "GeometryCollection":
        parts = [g for g in geom.geoms if g.geom_type in _AREAL]
        geom = shapely.union_all(parts) if parts else None
    if geom is None or geom.is_empty or geom.geom_type not in _AREAL:
        return None
    return geom


@dataclass(frozen=True)
class ClassRule:
    """How a polygon's class id is chosen: a property's value, mapped, or one default class.

    With ``property`` unset every polygon gets ``default`` (by default the taxonomy's
    "building"). A property value is looked up in ``class_map`` (keys compared as strings),
    else taken as an integer id, else as a class name of the taxonomy.
    """

    taxonomy: Taxonomy
    property: str | None = None
    class_map: Mapping[str, int] | None = None
    default: int | None = None

    def default_id(self) -> int:
        if self.default is not None:
            return self._checked(self.default, "default_class")
        if "building" in self.taxonomy.names.values():
            return self.taxonomy.id_of("building")
        raise ConfigError(
            f"taxonomy {self.taxonomy.name!r} has no 'building' class; pass "
            f"default_class= or class_property= to say which class polygons are"
        )

    def ids(self, labels: VectorLabels, which: Sequence[int]) -> np.ndarray:
        """Class ids of the polygons ``which`` (indices into ``labels``)."""
        if self.property is None:
            return np.full(len(which), self.default_id(), np.uint8)
        out = np.empty(len(which), np.uint8)
        for k, i in enumerate(which):
            value = labels.properties[i].get(self.property)
            out[k] = self._id_of(value, labels, i)
        return out

    def _id_of(self, value: Any, labels: VectorLabels, i: int) -> int:
        where = f"{labels.path}: feature {labels.feature_index[i]}"
        if value is None:
            if self.default is not None:
                return self._checked(self.default, "default_class")
            raise DataError(
                f"{where} has no property {self.property!r}; add it or pass default_class="
            )
        if self.class_map is not None:
            if str(value) not in self.class_map:
                raise DataError(
                    f"{where}: {self.property}={value!r} is not in class_map "
                    f"{dict(self.class_map)}; add it to the map"
                )
            return self._checked(self.class_map[str(value)], where)
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            return self._checked(int(value), where)
        try:
            return self.taxonomy.id_of(str(value))
        except KeyError:
            raise DataError(
                f"{where}: {self.property}={value!r} is neither a class id nor a "
                f"class name of taxonomy {self.taxonomy.name!r}; pass class_map="
            ) from None

    def _checked(self, class_id: int, where: str) -> int:
        if class_id not in self.taxonomy.ids:
            raise DataError(
                f"{where}: class id {class_id} is not in taxonomy "
                f"{self.taxonomy.name!r} (ids {self.taxonomy.ids})"
            )
        return int(class_id)


def footprint(transform: Affine, shape_hw: tuple[int, int], margin: float = 0.0) -> Polygon:
    """The outline of a raster grid in its CRS, ``margin`` pixels inside its edges."""
    h, w = shape_hw
    lo, hi_x, hi_y = margin, w - margin, h - margin
    return Polygon([transform @ xy for xy in ((lo, lo), (hi_x, lo), (hi_x, hi_y), (lo, hi_y))])


def rasterize_labels(
    labels: VectorLabels,
    crs: str | None,
    transform: Affine,
    shape_hw: tuple[int, int],
    rule: ClassRule,
    all_touched: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Rasterise the polygons on a grid: (uint8 mask, int32 instances, feature index per id).

    Polygons are reprojected to ``crs`` (ignored for pixel labels) and only those reaching
    more than a sliver into the grid are kept, numbered 1..K in file order.
    """
    geoms, tree = labels.projected(crs)
    inner = footprint(transform, shape_hw, margin=_SLIVER)
    on_grid = sorted(int(i) for i in tree.query(inner, predicate="intersects"))
    instances = np.zeros(shape_hw, np.int32)
    if on_grid:
        rasterio.features.rasterize(
            ((geoms[i], k + 1) for k, i in enumerate(on_grid)),
            out=instances,
            transform=transform,
            all_touched=all_touched,
        )
    classes = np.concatenate([[rule.taxonomy.background], rule.ids(labels, on_grid)])
    mask = classes.astype(np.uint8)[instances]
    check_mask(mask, rule.taxonomy, labels.path)
    return mask, instances, [labels.feature_index[i] for i in on_grid]


def _trailing_parts(a: str, b: str) -> int:
    pa, pb = a.split("_"), b.split("_")
    n = 0
    while n < min(len(pa), len(pb)) and pa[-1 - n] == pb[-1 - n]:
        n += 1
    return n


def pair_labels(rasters: Sequence[Path], vectors: Sequence[Path], root: Path) -> list[Path]:
    """The label file of each raster: one file for all, or matched by name (module docstring)."""
    if not vectors:
        raise DataError(
            f"{root}: no label file (GeoJSON, .gpkg, .shp, .fgb) found beside the rasters; "
            f"add one or pass labels="
        )
    if len(vectors) == 1:
        return [vectors[0]] * len(rasters)
    paired, unpaired = [], []
    for raster in rasters:
        scores = [
            float("inf") if v.stem == raster.stem else _trailing_parts(raster.stem, v.stem)
            for v in vectors
        ]
        best = max(scores)
        winners = [v for v, s in zip(vectors, scores, strict=True) if s == best]
        if best == 0:
            unpaired.append(raster.name)
        elif len(winners) > 1:
            raise DataError(
                f"{raster}: label files {[w.name for w in winners]} match it equally "
                f"well; rename them to the raster's stem or pass labels="
            )
        else:
            paired.append(winners[0])
    if unpaired:
        raise DataError(
            f"{root}: no label file matches raster(s) {unpaired[:5]}; name each "
            f"label file like its raster (<stem>.geojson) or pass labels="
        )
    return paired


class GeoVectorReader(SceneReader):
    """Rasters + vector labels as :class:`Scene` s with mask, instances and georeference."""

    format = "geotiff_vector"

    def __init__(
        self,
        root: str | Path,
        taxonomy: Taxonomy = BINARY_BUILDING,
        *,
        labels: str | Path | None = None,
        labels_crs: str | None = None,
        class_property: str | None = None,
        class_map: Mapping[str, int] | None = None,
        default_class: int | None = None,
        bands: tuple[int, ...] | None = None,
        stretch: tuple[float, float] = DEFAULT_STRETCH,
        raw: bool = False,
        all_touched: bool = False,
    ) -> None:
        super().__init__(root, taxonomy)
        self.labels_crs = labels_crs
        self.rule = ClassRule(taxonomy, class_property, class_map, default_class)
        self.bands, self.stretch, self.raw, self.all_touched = bands, stretch, raw, all_touched
        if self.root.is_file():
            rasters = [self.root]
        else:
            rasters = sorted(
                p
                for p in self.root.iterdir()
                if p.suffix.lower() in RASTER_SUFFIXES and not p.name.startswith(".")
            )
        if labels is not None:
            if not Path(labels).is_file():
                raise DataError(f"{labels}: label file not found")
            self.label_files = [Path(labels)] * len(rasters)
        elif self.root.is_file():
            raise ConfigError(f"{self.root}: a single raster needs labels= (its label file)")
        else:
            vectors = sorted(p for p in self.root.iterdir() if is_vector_file(p))
            self.label_files = pair_labels(rasters, vectors, self.root) if rasters else []
        self.shared = len(set(self.label_files)) < len(self.label_files)
        #: Rasters left out, with why: see :meth:`_drop_unreferenced`.
        self.skipped: list[tuple[Path, str]] = []
        if self.shared and labels_crs != PIXEL:
            rasters = self._drop_unreferenced(rasters)
            self.shared = len(set(self.label_files)) < len(self.label_files)
        self.rasters = rasters
        self.names = [p.stem for p in rasters]
        self._labels: dict[Path, VectorLabels] = {}
        self._require_items("GeoTIFF rasters (*.tif)")

    def _drop_unreferenced(self, rasters: list[Path]) -> list[Path]:
        """Leave out CRS-less rasters beside georeferenced ones that share one label file.

        Such a raster (SpaceNet's ``*_mask_from_geojson.tif``, a quick-look) cannot be what
        georeferenced labels describe. If no raster has a CRS they are all kept, and reading
        one raises the error that says how to fix it.
        """
        has_crs = [raster_info(p)["crs"] is not None for p in rasters]
        if not any(has_crs) or all(has_crs):
            return rasters
        kept, files = [], []
        for raster, label_file, ok in zip(rasters, self.label_files, has_crs, strict=True):
            if ok:
                kept.append(raster)
                files.append(label_file)
            else:
                self.skipped.append((raster, "no CRS, unlike the other rasters"))
        self.label_files = files
        return kept

    @classmethod
    def detect(cls, root: Path) -> bool:
        if not root.is_dir():
            return False
        files = [p for p in root.iterdir() if p.is_file()]
        return any(p.suffix.lower() in RASTER_SUFFIXES for p in files) and any(
            is_vector_file(p) for p in files
        )

    def _vector(self, path: Path) -> VectorLabels:
        """The parsed label file; kept only when several rasters share it."""
        if path in self._labels:
            return self._labels[path]
        labels = read_vector_labels(path, self.labels_crs)
        if self.shared:
            self._labels[path] = labels
        return labels

    def __getitem__(self, index: int) -> Scene:
        raster, label_file = self.rasters[index], self.label_files[index]
        raw, georef = read_raster(raster)
        labels = self._vector(label_file)
        crs, transform = self._grid(raster, georef, labels)
        shape_hw = (raw.shape[0], raw.shape[1])
        mask, instances, features = rasterize_labels(
            labels, crs, transform, shape_hw, self.rule, self.all_touched
        )
        if len(labels) and not features:
            self._check_overlap(raster, labels, crs, transform, shape_hw)
        image, valid = self._image(raster, raw, georef)
        if valid is not None:
            mask[~valid] = self.taxonomy.ignore
            instances[~valid] = 0
        return Scene(
            image,
            mask,
            instances,
            georef,
            self.taxonomy,
            raster.stem,
            str(raster),
            {
                "raster": str(raster),
                "labels": str(label_file),
                "instance_features": features,
                "skipped_features": labels.skipped,
                "raster_dtype": raw.dtype.name,
                "raster_bands": raw.shape[2],
            },
        )

    def _grid(
        self, raster: Path, georef: GeoRef | None, labels: VectorLabels
    ) -> tuple[str | None, Affine]:
        """The CRS and transform the labels are rasterised with."""
        if labels.crs == PIXEL:
            return None, Affine.identity()
        if georef is None or georef.crs is None:
            raise DataError(
                f"{raster}: the raster has no CRS but its labels {labels.path} are "
                f"in {labels.crs}; assign the raster its CRS (e.g. `gdal_edit.py "
                f"-a_srs EPSG:<code> {raster.name}`) or give pixel-coordinate labels "
                f"with labels_crs='pixel'"
            )
        return georef.crs, georef.transform

    def _check_overlap(
        self,
        raster: Path,
        labels: VectorLabels,
        crs: str | None,
        transform: Affine,
        shape_hw: tuple[int, int],
    ) -> None:
        """No polygon on the raster: an error unless a shared label file simply misses it."""
        geoms, _ = labels.projected(crs)
        extent = shapely.box(*shapely.total_bounds(geoms))
        if self.shared and extent.intersects(footprint(transform, shape_hw)):
            return
        raise DataError(
            f"{raster}: none of the {len(labels)} polygons of {labels.path} "
            f"(read as {labels.crs[:40]}) falls on the raster; the labels' CRS is "
            f"probably wrong: set the GeoJSON 'crs' member or pass labels_crs="
        )

    def _image(
        self, raster: Path, raw: np.ndarray, georef: GeoRef | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The image to return and the valid-pixel mask (nodata and alpha 0 are invalid)."""
        nodata = georef.nodata if georef is not None else None
        valid = None
        if nodata is not None:
            is_nodata = np.isnan(raw) if np.isnan(nodata) else raw == nodata
            valid = ~is_nodata.all(axis=2)
        if self.raw:
            image = raw if self.bands is None else _select(raw, self.bands, raster)
            if image.dtype not in (np.uint8, np.uint16):
                raise DataError(
                    f"{raster}: raw=True keeps the raster's dtype, but {image.dtype} "
                    f"is not uint8/uint16; read it with raw=False to stretch it"
                )
            return image, valid
        alpha_band = raster_info(raster)["alpha"]
        has_alpha = alpha_band == raw.shape[2] and raw.shape[2] in (2, 4)
        source = raw
        if valid is not None and raw.dtype != np.uint8 and not has_alpha:
            source = stretch_to_uint8(raw, self.stretch, valid)
        image, alpha_valid = to_rgb8(source, self.bands, self.stretch, has_alpha, str(raster))
        if alpha_valid is not None:
            valid = alpha_valid if valid is None else valid & alpha_valid
        return image, valid


def _select(raw: np.ndarray, bands: tuple[int, ...], raster: Path) -> np.ndarray:
    if any(not 1 <= b <= raw.shape[2] for b in bands):
        raise DataError(
            f"{raster}: bands {bands} requested but the raster has "
            f"{raw.shape[2]} band(s) (bands are 1-based)"
        )
    return np.ascontiguousarray(raw[..., [b - 1 for b in bands]])
