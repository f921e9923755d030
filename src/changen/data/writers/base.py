"""What every dataset writer does: refuse to clobber, write each sample atomically, keep counts
and finish with a ``manifest.json``.

A writer is a context manager. Each :meth:`DatasetWriter.write` call writes all files of one
sample (every file through a temporary name and a rename; if one file fails, the files already
written for that sample are removed) and returns the sample's counts as JSON. The manifest is
written last, on a clean exit only, so a folder without ``manifest.json`` is recognisably
incomplete.

Splits: samples written with ``split=`` go to ``root/<split>/`` (the layout's folders under each
split folder); a change writer then also writes ``list/<split>.txt``, the split's file names one
a line (LEVIR-CD's list files), when it closes.

Resuming: a writer opened with ``resume=True`` keeps what the folder holds (it only removes a
previous ``manifest.json``, since the dataset is incomplete again), and
:meth:`DatasetWriter.record` re-registers samples written by an earlier run from their saved
counts, so the final manifest counts every sample exactly once without reading files back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import numpy as np

from changen import __version__
from changen.data.atomic import write_text_atomic
from changen.data.imageio import write_image
from changen.data.output import check_output_dir
from changen.errors import ConfigError, DataError
from changen.sample import CHANGE_IGNORE, ChangeSample, GeoRef, Scene, Taxonomy

if TYPE_CHECKING:
    from changen.data.raster import ClassTable

MANIFEST_NAME = "manifest.json"
LIST_DIR = "list"

T = TypeVar("T", ChangeSample, Scene)
W = TypeVar("W", bound="DatasetWriter[Any]")


def save_array(
    path: Path,
    array: np.ndarray,
    georef: GeoRef | None,
    classes: ClassTable | None = None,
) -> None:
    """Write one raster atomically: GeoTIFF (with ``georef``, and the colour table and names
    of ``classes`` for a class mask) for ``.tif``, else PNG/JPEG."""
    if path.suffix.lower() in (".tif", ".tiff"):
        from changen.data.raster import write_raster

        write_raster(path, array, georef, classes=classes)
    else:
        write_image(path, array)


def raster_georef(georef: GeoRef | None, array: np.ndarray) -> GeoRef | None:
    """The georeference a file of ``array`` is written with: a label or mask (2-D) keeps the
    source's CRS and transform but not its nodata, which describes image pixels (a nodata of
    0 would make every "no change" / background pixel read as missing)."""
    if georef is None or array.ndim == 3:
        return georef
    return dataclasses.replace(georef, nodata=None)


def _valid_stem(name: str) -> bool:
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/\\\0")


class DatasetWriter(Generic[T]):
    """Base of the dataset writers; subclasses set ``layout``/``folders`` and list files.

    ``root`` must be absent or empty unless ``overwrite=True``; then the previous manifest and
    this layout's folders (at the root and in split folders holding them) are deleted first,
    so no stale sample survives; other files are left alone. With ``resume=True`` a non-empty
    ``root`` is kept as it is (see the module docstring). Folders are created as files are
    written. ``provenance`` (JSON-serialisable) is copied into the manifest.
    """

    layout: ClassVar[str]
    kind: ClassVar[str] = "change"
    item_type: ClassVar[type]
    folders: ClassVar[tuple[str, ...]]  # every folder this layout may write; folders[0] always

    def __init__(
        self,
        root: str | os.PathLike[str],
        taxonomy: Taxonomy,
        *,
        overwrite: bool = False,
        resume: bool = False,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        self.root = Path(root)
        self.taxonomy = taxonomy
        self.provenance = dict(provenance or {})
        try:
            json.dumps(self.provenance)
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"provenance must be JSON-serialisable ({e}); pass plain "
                f"strings, numbers, lists and dicts"
            ) from None
        if resume:
            check_output_dir(self.root, overwrite=True)
            (self.root / MANIFEST_NAME).unlink(missing_ok=True)
        elif check_output_dir(self.root, overwrite):
            self._clear_previous()
        self.manifest: dict[str, Any] | None = None
        self._names: dict[str, set[str]] = {}
        self._counts: dict[str, dict[str, Any]] = {}
        self._closed = False

    def __enter__(self: W) -> W:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True

    def write(self, sample: T, split: str | None = None) -> dict[str, Any]:
        """Write one sample's files under ``root`` (or ``root/split``), named ``sample.name``;
        return its counts as JSON (what :meth:`record` takes back)."""
        if self._closed:
            raise RuntimeError(f"{self.root}: writer is closed")
        if not isinstance(sample, self.item_type):
            raise TypeError(
                f"{self.layout} writer takes {self.item_type.__name__}, got {type(sample).__name__}"
            )
        if split is not None and not _valid_stem(split):
            raise ConfigError(f"split {split!r} is not a valid folder name; use e.g. 'train'")
        where = sample.source or sample.name or "<sample>"
        if not _valid_stem(sample.name):
            raise DataError(
                f"{where}: sample name {sample.name!r} cannot be a file name; give "
                f"the sample a non-empty name without '/' or a leading '.'"
            )
        names = self._check_name(sample.name, split, where)
        self._validate(sample, where)
        folder = self.root / split if split else self.root
        written: list[Path] = []
        try:
            for path, array in self._files(sample, folder):
                save_array(path, array, raster_georef(sample.georef, array), self._classes(path))
                written.append(path)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        names.add(sample.name)
        counts = self._sample_counts(sample)
        _merge(self._counts.setdefault(split or ".", {}), counts)
        return _counts_to_json(counts)

    def record(self, name: str, counts: dict[str, Any], split: str | None = None) -> None:
        """Count a sample an earlier run wrote (``counts`` as :meth:`write` returned them)."""
        if self._closed:
            raise RuntimeError(f"{self.root}: writer is closed")
        self._check_name(name, split, name).add(name)
        _merge(self._counts.setdefault(split or ".", {}), _counts_from_json(counts))

    def _check_name(self, name: str, split: str | None, where: str) -> set[str]:
        """The names already written to ``split``; raise if ``name`` is one of them."""
        key = split or "."
        names = self._names.setdefault(key, set())
        if name in names:
            raise DataError(
                f"{where}: duplicate sample name {name!r} in split {key!r}; "
                f"give every sample of a split a unique name"
            )
        return names

    def close(self) -> dict[str, Any]:
        """Write ``manifest.json`` (atomically) and return it; later calls return it again."""
        if self.manifest is not None:
            return self.manifest
        self._finish()
        manifest: dict[str, Any] = {
            "changen_version": __version__,
            "layout": self.layout,
            "kind": self.kind,
            "taxonomy": self._manifest_taxonomy().to_dict(),
            "counts": self._summary(),
            "provenance": self.provenance,
            **self._manifest_extra(),
        }
        write_text_atomic(self.root / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
        self.manifest = manifest
        self._closed = True
        return manifest

    # -- per-layout hooks -------------------------------------------------------------------

    def _files(self, sample: T, folder: Path) -> list[tuple[Path, np.ndarray]]:
        """The files of one sample: (path, array) pairs, written in this order."""
        raise NotImplementedError

    def _classes(self, path: Path) -> ClassTable | None:
        """The colour table and class names of the class-mask GeoTIFF ``path`` (else ``None``)."""
        return None

    def _finish(self) -> None:
        """Write what a layout adds once every sample is written (before the manifest)."""

    def _manifest_taxonomy(self) -> Taxonomy:
        """The taxonomy a reader of the written files must use."""
        return self.taxonomy

    def _manifest_extra(self) -> dict[str, Any]:
        return {}

    def _validate(self, sample: T, where: str) -> None:
        """Raise :class:`DataError` if the sample cannot be written as it is."""
        raise NotImplementedError

    def _sample_counts(self, sample: T) -> dict[str, Any]:
        """One written sample's counts (numbers or 256-bin histograms), summed per split."""
        raise NotImplementedError

    def _summary(self) -> dict[str, Any]:
        """Counts per split folder (``"."`` for the root) and over the whole dataset."""
        splits: dict[str, Any] = {}
        total: dict[str, Any] = {}
        for key in sorted(self._counts):
            splits[key] = _jsonable(self._counts[key])
            for name, value in self._counts[key].items():
                total[name] = total[name] + value if name in total else value
        return {"splits": splits, **_jsonable(total)}

    def _clear_previous(self) -> None:
        (self.root / MANIFEST_NAME).unlink(missing_ok=True)
        holders = [self.root] + [
            d for d in self.root.iterdir() if d.is_dir() and (d / self.folders[0]).is_dir()
        ]
        for holder in holders:
            for name in self.folders:
                if (holder / name).is_dir():
                    shutil.rmtree(holder / name)


class ChangeDatasetWriter(DatasetWriter[ChangeSample]):
    """Base of the bitemporal writers: checks change values and masks, counts change/classes.

    Counts per split: ``samples``, ``changed_pixels``, ``labelled_pixels`` (not ignore),
    ``changed_fraction`` and ``t1_class_pixels``/``t2_class_pixels`` (class id → pixels).
    """

    item_type = ChangeSample
    suffix: ClassVar[str] = ".png"  # of the t1 image files, named by the split lists

    def _finish(self) -> None:
        for split in sorted(k for k in self._names if k != "."):
            text = "".join(f"{name}{self.suffix}\n" for name in sorted(self._names[split]))
            write_text_atomic(self.root / LIST_DIR / f"{split}.txt", text)

    def _clear_previous(self) -> None:
        super()._clear_previous()
        if (self.root / LIST_DIR).is_dir():
            shutil.rmtree(self.root / LIST_DIR)

    def _validate(self, sample: ChangeSample, where: str) -> None:
        values = np.unique(sample.change_mask)
        bad = [int(v) for v in values if v not in (0, 1, CHANGE_IGNORE)]
        if bad:
            raise DataError(
                f"{where}: change mask holds values {bad}; it must hold 0 "
                f"(unchanged), 1 (changed) or {CHANGE_IGNORE} (ignore)"
            )
        for mask, what in ((sample.t1_mask, "t1 mask"), (sample.t2_mask, "t2 mask")):
            if mask is not None:
                self.taxonomy.validate(mask, f"{where} ({what})")

    def _sample_counts(self, sample: ChangeSample) -> dict[str, Any]:
        change = sample.change_mask
        counts: dict[str, Any] = {
            "samples": 1,
            "changed_pixels": int((change == 1).sum()),
            "labelled_pixels": int((change != CHANGE_IGNORE).sum()),
        }
        for mask, key in ((sample.t1_mask, "t1_class_pixels"), (sample.t2_mask, "t2_class_pixels")):
            if mask is not None:
                counts[key] = np.bincount(mask.ravel(), minlength=256).astype(np.int64)
        return counts


def _merge(total: dict[str, Any], counts: dict[str, Any]) -> None:
    """Add one sample's counts to a running total, in place."""
    for key, value in counts.items():
        total[key] = total[key] + value if key in total else value


def _counts_to_json(counts: dict[str, Any]) -> dict[str, Any]:
    """Histograms become ``{class id: pixels}`` (non-zero ids); numbers stay."""
    return {
        key: {str(i): int(v) for i, v in enumerate(value) if v}
        if isinstance(value, np.ndarray)
        else value
        for key, value in counts.items()
    }


def _counts_from_json(counts: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`_counts_to_json`."""
    out: dict[str, Any] = {}
    for key, value in counts.items():
        if isinstance(value, dict):
            hist = np.zeros(256, np.int64)
            for cid, pixels in value.items():
                hist[int(cid)] = int(pixels)
            out[key] = hist
        else:
            out[key] = value
    return out


def _jsonable(counts: dict[str, Any]) -> dict[str, Any]:
    """Histograms become ``{class id: pixels}`` (non-zero ids); derived fractions are added."""
    out = _counts_to_json(counts)
    if "labelled_pixels" in out:
        out["changed_fraction"] = out["changed_pixels"] / max(out["labelled_pixels"], 1)
    return out
