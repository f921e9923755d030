"""Several sources read as one: the pooled reader and the sources file.

:func:`open_sources` opens each :class:`SourceEntry` with
:func:`~changen.data.readers.open_dataset`, resamples it to a target GSD when asked
(:class:`~changen.data.readers.resample.ResampledReader`) and, for more than one source,
concatenates them in a :class:`PooledReader`. All sources must read masks with one taxonomy;
each item's mask has been checked against it by the source's own reader
(:func:`~changen.data.readers.base.check_mask`), so pooling checks nothing twice.

Pooled item names are always ``<tag>__<name>``, ``tag`` being the source's file or folder stem
(``0-<stem>``, ``1-<stem>``… for every source when two stems are equal), so names are unique,
stable whatever else is pooled, and valid file names. Each item keeps its own ``source`` (its
file path); ``Scene.meta["pool"]`` adds the source's root, index and the item's own name.
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from changen.data.readers import detect_format, open_dataset, reader_class
from changen.data.readers.base import Reader, SceneReader
from changen.data.readers.folder import FolderReader
from changen.data.readers.resample import ResampledReader
from changen.errors import ConfigError
from changen.sample import Scene, Taxonomy

_KEYS = ("path", "format", "gsd", "binary_threshold", "split")


@dataclass(frozen=True)
class SourceEntry:
    """One source: dataset path, format (detected when None), GSD when its files carry none,
    the threshold that reads its grey 0/255 masks as 0/1 (folder sources) and the one split of
    the source to read (all when None)."""

    path: str
    format: str | None = None
    gsd: float | None = None
    binary_threshold: int | None = None
    split: str | None = None

    def open(self, taxonomy: str | Taxonomy | None = None) -> Reader[Any]:
        """This source alone, as :func:`open_dataset` reads it; ``binary_threshold`` applies to
        mask-folder sources only (other formats declare their own mask values)."""
        fmt = self.format or detect_format(self.path)
        options: dict[str, Any] = {}
        if self.binary_threshold is not None and issubclass(reader_class(fmt), FolderReader):
            options["binary_threshold"] = self.binary_threshold
        if self.split is not None:
            options["split"] = self.split
        return open_dataset(self.path, format=fmt, taxonomy=taxonomy, **options)


def source_tags(roots: Sequence[Path]) -> list[str]:
    """The name prefix of each source: its stem, index-prefixed for all when stems repeat."""
    stems = [Path(os.path.abspath(r)).stem for r in roots]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{i}-{s}" for i, s in enumerate(stems)]


class PooledReader(SceneReader):
    """The items of several scene readers, one after another, under ``<tag>__<name>`` names."""

    def __init__(self, readers: Sequence[Reader[Scene]]) -> None:
        if not readers:
            raise ConfigError("no sources to pool; give at least one dataset")
        first = readers[0]
        for r in readers:
            if r.kind != "scene":
                raise ConfigError(
                    f"{r.root}: only single-temporal sources can be pooled, got a "
                    f"{r.kind} dataset ({r.format})"
                )
            if r.taxonomy != first.taxonomy:
                raise ConfigError(
                    f"{first.root} reads taxonomy {first.taxonomy.name!r} but {r.root} reads "
                    f"{r.taxonomy.name!r}; pass --taxonomy NAME so all sources share one"
                )
        self.readers = list(readers)
        self.tags = source_tags([r.root for r in readers])
        self.root = Path(os.path.commonpath([os.path.abspath(r.root) for r in readers]))
        self.taxonomy = first.taxonomy
        formats = {r.format for r in readers}
        self.format = formats.pop() if len(formats) == 1 else "pooled"  # type: ignore[misc]
        licences = {r.licence for r in readers}
        self.licence = (
            licences.pop()
            if len(licences) == 1
            else "; ".join(f"{t}: {r.licence}" for t, r in zip(self.tags, readers, strict=True))
        )
        self.names = [f"{t}__{n}" for t, r in zip(self.tags, readers, strict=True) for n in r.names]
        self.offsets = [0]
        for r in readers:
            self.offsets.append(self.offsets[-1] + len(r))

    @property
    def sources(self) -> list[dict[str, Any]]:
        """Per-source provenance: root, format, tag, item count and first pooled index."""
        return [
            {"root": str(r.root), "format": r.format, "tag": t, "items": len(r), "offset": o}
            for r, t, o in zip(self.readers, self.tags, self.offsets[:-1], strict=True)
        ]

    def __getitem__(self, index: int) -> Scene:
        if not -len(self) <= index < len(self):
            raise IndexError(f"pooled index {index} out of range ({len(self)} items)")
        index %= len(self)
        k = bisect.bisect_right(self.offsets, index) - 1
        reader = self.readers[k]
        scene = reader[index - self.offsets[k]]
        pool = {"root": str(reader.root), "index": k, "name": scene.name}
        return replace(scene, name=self.names[index], meta={**scene.meta, "pool": pool})


def open_sources(
    entries: Sequence[SourceEntry],
    taxonomy: str | Taxonomy | None = None,
    target_gsd: float | None = None,
) -> Reader[Any]:
    """Open ``entries`` as one reader, resampled to ``target_gsd`` metres when it is given.

    One entry without ``target_gsd`` is returned as :func:`open_dataset` opens it (any kind);
    otherwise the sources must be single-temporal. ``SourceEntry.gsd`` is used only with
    ``target_gsd``.
    """
    if not entries:
        raise ConfigError("no sources given; name at least one dataset")
    readers: list[Reader[Any]] = []
    for e in entries:
        reader = e.open(taxonomy)
        if target_gsd is not None:
            reader = ResampledReader(reader, target_gsd, e.gsd)
        readers.append(reader)
    return readers[0] if len(readers) == 1 else PooledReader(readers)


def open_data_spec(
    data: str | Sequence[Mapping[str, Any]],
    format: str | None = None,
    taxonomy: str | Taxonomy | None = None,
    split: str | None = None,
) -> Reader[Any]:
    """A training config's ``data``: one dataset path (read with ``format`` and ``split``), or
    the JSON form of several :class:`SourceEntry` (``dataclasses.asdict``), pooled, each read
    with its own format, threshold and split."""
    if isinstance(data, str):
        return open_dataset(data, format=format, taxonomy=taxonomy, split=split)
    entries = [_entry(item, f"data source {i}", Path.cwd()) for i, item in enumerate(data)]
    return open_sources(entries, taxonomy)


def read_sources_file(path: str | Path) -> list[SourceEntry]:
    """The entries of a JSON sources file ``[{"path": …, "format": …, "gsd": …}, …]``.

    ``path`` is required, relative to the file's folder unless absolute, and must exist;
    ``format`` (a format name), ``gsd`` (metres) and ``binary_threshold`` are optional.
    """
    file = Path(path)
    try:
        doc = json.loads(file.read_text())
    except OSError as e:
        raise ConfigError(f"{file}: cannot read the sources file ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{file}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, list) or not doc:
        raise ConfigError(f'{file}: expected a non-empty JSON list of {{"path": ...}} objects')
    return [_entry(item, f"{file}: source {i}", file.parent) for i, item in enumerate(doc)]


def _entry(item: Any, where: str, folder: Path) -> SourceEntry:
    if not isinstance(item, dict) or not isinstance(item.get("path"), str):
        raise ConfigError(f'{where}: expected an object with a "path" string, got {item!r:.60}')
    unknown = sorted(set(item) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; the keys are {list(_KEYS)}")
    fmt, gsd, threshold = item.get("format"), item.get("gsd"), item.get("binary_threshold")
    split = item.get("split")
    if split is not None and not isinstance(split, str):
        raise ConfigError(f'{where}: "split" must be a split name such as "train", got {split!r}')
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int)):
        raise ConfigError(f'{where}: "binary_threshold" must be an integer, got {threshold!r}')
    if fmt is not None and not isinstance(fmt, str):
        raise ConfigError(f'{where}: "format" must be a format name, got {fmt!r}')
    if gsd is not None and (isinstance(gsd, bool) or not isinstance(gsd, int | float) or gsd <= 0):
        raise ConfigError(f'{where}: "gsd" must be a positive number of metres, got {gsd!r}')
    source = folder / item["path"]
    if not source.exists():
        raise ConfigError(f"{where}: {source} does not exist; fix the path (relative to {folder})")
    return SourceEntry(str(source), fmt, None if gsd is None else float(gsd), threshold, split)
