"""Export a change dataset to the formats training libraries load: Parquet, the Hugging Face Hub
layout, or WebDataset tar shards.

Every target holds one record per change pair with torchange's field names: ``t1_image``,
``t2_image``, ``t1_mask``, ``t2_mask``, ``change_mask`` (PNG bytes; a missing mask is null or
absent), ``image_name`` (the pair's name, the column torchange's Hub loader reads), ``split`` and
``provenance`` (JSON: the manifest row of a changen-generated pair, else the pair's source file
and reader metadata). Files stored as 8-bit PNG in the field's usual coding (RGB images,
single-band masks, 0/255 change labels) are embedded byte for byte; anything else (GeoTIFFs,
RGB-coded labels, derived change masks) is encoded from the decoded arrays in that coding:
images RGB, masks class ids, change 255 = changed and 0 elsewhere (ignore, as in LEVIR-CD).
A dataset without splits is exported as the split ``train`` (what ``datasets`` calls a lone
split).

Targets (``--to``):

* ``parquet``: ``<split>.parquet`` per split. Image columns are ``struct<bytes, path>``, the
  Hugging Face ``Image`` feature, declared in the schema metadata, so
  ``datasets.load_dataset("parquet", data_files={"train": "train.parquet"})`` decodes them;
* ``hf``: the layout the Hub reads, ``data/<split>-00000-of-00001.parquet`` plus a ``README.md``
  whose YAML header declares the splits (``datasets.load_dataset(folder)`` loads it; push the
  folder as a dataset repository to publish it);
* ``webdataset``: ``<split>/<split>-NNNNNN.tar`` shards of ``shard_size`` records, members
  ``<key>.<field>.png`` and ``<key>.json`` (image name, split, provenance). WebDataset groups
  members by key, the file name up to its first dot, so ``key`` is the pair's name with dots
  replaced by ``_``. Members carry fixed times and owners: shards are byte-reproducible.

The output is built in a staging folder and swapped in whole (:func:`changen.data.staging.
staged_output`, which also holds the writer lock).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from changen.data.imageio import encode_image
from changen.data.readers import open_dataset
from changen.data.readers.base import Reader
from changen.data.staging import staged_output
from changen.engine.progress import SILENT, ProgressSink
from changen.errors import ConfigError, DataError
from changen.sample import ChangeSample

FIELDS = ("t1_image", "t2_image", "t1_mask", "t2_mask", "change_mask")
TARGETS = ("hf", "parquet", "webdataset")
LONE_SPLIT = "train"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {"t1_image": 2, "t2_image": 2}  # PNG colour type 2 = RGB; masks: 0 = grey
_EXTRA = 'pip install "changen[export]"'


@dataclass
class Record:
    """One exported pair: its name, split, PNG bytes per field and provenance JSON."""

    name: str
    split: str
    images: dict[str, bytes | None]
    provenance: str


@dataclass
class ExportResult:
    """What an export wrote: the target, the output folder, records per split, the files."""

    to: str
    out: Path
    splits: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"to": self.to, "out": str(self.out), "splits": self.splits, "files": self.files}


def stored_png(path: Path | None, field_name: str) -> bytes | None:
    """The bytes of ``path`` when it is an 8-bit PNG in the field's usual coding, else None."""
    if path is None or path.suffix.lower() != ".png":
        return None
    data = path.read_bytes()
    if len(data) < 26 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    depth, colour = data[24], data[25]
    return data if depth == 8 and colour == _COLOUR_TYPES.get(field_name, 0) else None


def _arrays(sample: ChangeSample) -> dict[str, np.ndarray | None]:
    """Each field of a sample as it is encoded when no stored file can be embedded."""
    change = np.where(sample.change_mask == 1, 255, 0).astype(np.uint8)
    return {
        "t1_image": sample.t1_image,
        "t2_image": sample.t2_image,
        "t1_mask": sample.t1_mask,
        "t2_mask": sample.t2_mask,
        "change_mask": change,
    }


def _check_uint8(array: np.ndarray, field_name: str, where: str) -> np.ndarray:
    if array.dtype != np.uint8:
        raise DataError(
            f"{where}: {field_name} is {array.dtype}; export writes 8-bit PNGs, so convert the "
            f"dataset to 8-bit first (changen data convert)"
        )
    return array


def _manifest_rows(root: Path) -> dict[tuple[str | None, str], dict[str, Any]]:
    """The manifest row of each output pair of a changen-generated dataset, by (split, name)."""
    from changen.generation.shards import SHARD_DIR, read_rows

    if not (root / SHARD_DIR).is_dir():
        return {}
    return {
        (output.get("split"), output["name"]): row
        for row in read_rows(root)
        for output in row["outputs"]
    }


def records(reader: Reader[Any], progress: ProgressSink = SILENT) -> Iterator[Record]:
    """The export records of every pair of a change ``reader``, in reader order."""
    if reader.kind != "change":
        raise ConfigError(
            f"{reader.root}: a {reader.format} dataset holds single-temporal scenes; export takes "
            f"a change dataset (generate one with changen generate)"
        )
    rows = _manifest_rows(reader.root)
    stored = getattr(reader, "stored_files", None)
    advance = progress.task("exporting", len(reader))
    for i in range(len(reader)):
        sample = reader[i]
        split = sample.meta.get("split")
        files = stored(i) if stored is not None else {}
        images: dict[str, bytes | None] = {}
        for name, array in _arrays(sample).items():
            data = stored_png(files.get(name), name)
            if data is None and array is not None:
                where = sample.source or sample.name
                data = encode_image(_check_uint8(array, name, where), ".png", where)
            images[name] = data
        row = rows.get((split, sample.name))
        provenance = row if row is not None else {"source": sample.source, "meta": sample.meta}
        yield Record(sample.name, split or LONE_SPLIT, images, json.dumps(provenance, default=str))
        advance(1)


def _pyarrow() -> Any:
    try:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(f"Parquet export needs pyarrow; {_EXTRA}") from None
    return pa, pq


def _schema(pa: Any) -> Any:
    """The table schema: Hugging Face ``Image`` structs for the fields, declared in metadata."""
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    columns = [
        ("image_name", pa.string()),
        ("split", pa.string()),
        *((name, image) for name in FIELDS),
        ("provenance", pa.string()),
    ]
    features: dict[str, Any] = {
        "image_name": {"dtype": "string", "_type": "Value"},
        "split": {"dtype": "string", "_type": "Value"},
        **{name: {"_type": "Image"} for name in FIELDS},
        "provenance": {"dtype": "string", "_type": "Value"},
    }
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    return pa.schema(columns, metadata=meta)


class _ParquetSplits:
    """One Parquet file per split, written in row groups of ``group`` records."""

    def __init__(self, folder: Path, pattern: str, group: int = 64) -> None:
        self.pa, self.pq = _pyarrow()
        self.schema = _schema(self.pa)
        self.folder, self.pattern, self.group = folder, pattern, group
        self._writers: dict[str, Any] = {}
        self._rows: dict[str, list[Record]] = {}
        self.paths: dict[str, Path] = {}

    def add(self, record: Record) -> None:
        rows = self._rows.setdefault(record.split, [])
        rows.append(record)
        if len(rows) >= self.group:
            self._flush(record.split)

    def _flush(self, split: str) -> None:
        rows = self._rows.pop(split, [])
        if not rows:
            return
        if split not in self._writers:
            path = self.folder / self.pattern.format(split=split)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.paths[split] = path
            self._writers[split] = self.pq.ParquetWriter(path, self.schema)
        columns: dict[str, list[Any]] = {
            "image_name": [r.name for r in rows],
            "split": [r.split for r in rows],
            **{
                f: [
                    None if r.images[f] is None else {"bytes": r.images[f], "path": None}
                    for r in rows
                ]
                for f in FIELDS
            },
            "provenance": [r.provenance for r in rows],
        }
        self._writers[split].write_table(self.pa.table(columns, schema=self.schema))

    def close(self) -> None:
        for split in list(self._rows):
            self._flush(split)
        for writer in self._writers.values():
            writer.close()


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add ``data`` as ``name`` with fixed metadata (reproducible shards)."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def wds_key(name: str) -> str:
    """A WebDataset key for a pair name: no dots (WebDataset splits keys at the first dot)."""
    return name.replace(".", "_")


class _TarShards:
    """WebDataset shards per split: ``<split>/<split>-NNNNNN.tar`` of ``size`` records."""

    def __init__(self, folder: Path, size: int) -> None:
        if size < 1:
            raise ConfigError(f"--shard-size {size}: a shard holds at least one pair")
        self.folder, self.size = folder, size
        self._open: dict[str, tuple[tarfile.TarFile, int, int]] = {}
        self._keys: dict[str, dict[str, str]] = {}
        self.paths: list[Path] = []

    def add(self, record: Record) -> None:
        keys = self._keys.setdefault(record.split, {})
        key = wds_key(record.name)
        if key in keys:
            raise DataError(
                f"pairs {keys[key]!r} and {record.name!r} of split {record.split!r} give the same "
                f"WebDataset key {key!r} (dots become '_'); rename one of them"
            )
        keys[key] = record.name
        tar, shard, count = self._shard(record.split)
        for f in FIELDS:
            data = record.images[f]
            if data is not None:
                _tar_member(tar, f"{key}.{f}.png", data)
        meta = {"image_name": record.name, "split": record.split}
        text = json.dumps({**meta, "provenance": json.loads(record.provenance)})
        _tar_member(tar, f"{key}.json", text.encode())
        self._open[record.split] = (tar, shard, count + 1)

    def _shard(self, split: str) -> tuple[tarfile.TarFile, int, int]:
        tar, shard, count = self._open.get(split, (None, -1, self.size))
        if tar is not None and count < self.size:
            return tar, shard, count
        if tar is not None:
            tar.close()
        path = self.folder / split / f"{split}-{shard + 1:06d}.tar"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.paths.append(path)
        return tarfile.open(path, "w", format=tarfile.USTAR_FORMAT), shard + 1, 0

    def close(self) -> None:
        for tar, _, _ in self._open.values():
            tar.close()


def _hub_card(result: ExportResult, source: Path) -> str:
    """The README of the ``hf`` target: YAML split config, then what the dataset is."""
    splits = "".join(
        f"  - split: {name}\n    path: data/{name}-*\n" for name in sorted(result.splits)
    )
    return (
        f"---\nconfigs:\n- config_name: default\n  data_files:\n{splits}---\n\n"
        f"# {source.name}\n\nChange pairs exported by changen from `{source.name}`: fields "
        f"{', '.join(f'`{f}`' for f in FIELDS)} (PNG), `image_name`, `split`, `provenance` "
        f'(JSON). Load with `datasets.load_dataset("<this folder>")`.\n\n'
        + "\n".join(f"- {name}: {n} pairs" for name, n in sorted(result.splits.items()))
        + "\n"
    )


def export_dataset(
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str],
    to: str,
    *,
    format: str | None = None,
    taxonomy: str | None = None,
    split: str | None = None,
    shard_size: int = 1000,
    overwrite: bool = False,
    progress: ProgressSink = SILENT,
) -> ExportResult:
    """Export the change dataset at ``dataset`` (read with ``format``, ``taxonomy``, one
    ``split`` when given) to ``out`` as ``to`` (see the module docstring)."""
    if to not in TARGETS:
        raise ConfigError(f"--to {to!r}: choose one of {', '.join(TARGETS)}")
    chosen = {} if split is None else {"split": split}
    reader = open_dataset(Path(dataset), format=format, taxonomy=taxonomy, **chosen)
    if to != "webdataset":
        _pyarrow()
    result = ExportResult(to, Path(out))
    with staged_output(out, overwrite=overwrite, what="export") as stage:
        sink: _ParquetSplits | _TarShards
        if to == "webdataset":
            sink = _TarShards(stage, shard_size)
        else:
            pattern = (
                "{split}.parquet" if to == "parquet" else "data/{split}-00000-of-00001.parquet"
            )
            sink = _ParquetSplits(stage, pattern)
        try:
            for record in records(reader, progress):
                sink.add(record)
                result.splits[record.split] = result.splits.get(record.split, 0) + 1
        finally:
            sink.close()
        if to == "hf":
            (stage / "README.md").write_text(_hub_card(result, Path(dataset)), encoding="utf-8")
        result.files = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
    return result


__all__ = ["FIELDS", "TARGETS", "ExportResult", "Record", "export_dataset", "records"]
