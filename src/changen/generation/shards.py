"""Sharded, resumable output of a generation run.

A shard is a contiguous range of ``shard_size`` sample indices. Its samples are written through
the layout's writer (every file via a temporary name and a rename); when the last sample of the
shard is written, its manifest rows go to ``manifest/shard-XXXXX.jsonl`` by an atomic rename,
and that rename is the shard's commit. A run killed at any moment leaves committed shards,
complete, plus sample files of uncommitted shards that the next run rewrites with the same
bytes. Resuming recomputes the plan, checks that ``generation.json`` (the run's full config)
matches, removes temporary files left by a killed writer, re-counts the committed shards from
their rows (no file is read back) and redoes the others. A run that fails with an error (disk
full, unwritable folder) first removes the files of its uncommitted shards, so only committed
samples stay visible.

Output folder::

    generation.json              the run's config (written first; resume checks it)
    manifest/shard-XXXXX.jsonl   one provenance row per sample, per shard (kept per shard)
    <layout folders>             A/ B/ label/ A_mask/ B_mask/ (levircd, geotiff), im1/ … (second)
                                 or, with splits, <split>/<layout folders> per split
    list/<split>.txt             the file names of each split (with splits only)
    series/<name>/image_t<k>.png, mask_t<k>.png   the time series, only when T > 1
                                 (.tif images with their georeference in the geotiff layout)
    manifest.json                the writer's summary (counts, taxonomy), written at the end
    README.md                    the dataset card, written at the end
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from changen.data.atomic import write_text_atomic
from changen.data.output import check_output_dir
from changen.data.writers import WRITERS, ChangeDatasetWriter
from changen.data.writers.base import save_array
from changen.errors import ConfigError, DataError, FormatError, OutputExistsError
from changen.generation.pipeline import (
    Generated,
    change_samples,
    change_series,
    manifest_row,
)
from changen.sample import Taxonomy

SHARD_DIR = "manifest"
RUN_CONFIG = "generation.json"
SERIES_DIR = "series"
CARD_NAME = "README.md"
GALLERY_DIR = "gallery"
OWN_ARTEFACTS = (SHARD_DIR, RUN_CONFIG, SERIES_DIR, CARD_NAME, GALLERY_DIR)


def shard_ranges(n: int, shard_size: int) -> list[range]:
    """The shards of ``n`` samples: contiguous ranges of ``shard_size`` indices."""
    if shard_size < 1:
        raise ConfigError(f"--shard-size {shard_size}: a shard holds at least one sample")
    return [range(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


def shard_path(root: Path, shard: int) -> Path:
    return root / SHARD_DIR / f"shard-{shard:05d}.jsonl"


def read_rows(root: Path) -> list[dict[str, Any]]:
    """Every committed manifest row of a generated dataset, in sample order."""
    rows: list[dict[str, Any]] = []
    for path in sorted((root / SHARD_DIR).glob("shard-*.jsonl")):
        rows.extend(_read_shard(path))
    return sorted(rows, key=lambda r: r["index"])


ROW_KEYS = ("index", "name", "status", "outputs")
"""Keys every manifest row has, whatever the version that wrote it."""


def _read_shard(path: Path) -> list[dict[str, Any]]:
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, ValueError) as e:
        raise DataError(
            f"{path}: unreadable shard manifest ({e}); delete it and rerun with --resume "
            f"to regenerate that shard"
        ) from None
    for n, row in enumerate(rows, start=1):
        missing = [k for k in ROW_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise DataError(
                f"{path}: row {n} lacks {', '.join(missing)}; not a changen manifest or damaged "
                f"— delete the shard and rerun generate with --resume"
            )
    return rows


def read_run_config(root: Path) -> dict[str, Any] | None:
    """The ``generation.json`` of an output folder, if it has one."""
    path = root / RUN_CONFIG
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(
            f"{path}: unreadable run config ({e}); regenerate with --overwrite"
        ) from None


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


class DatasetOutput:
    """Writes generated samples into ``root`` in a layout, commits shards, resumes.

    ``config`` is the run's JSON config (saved as ``generation.json`` and as the manifest's
    provenance); on ``resume`` it must equal the saved one. ``record`` adds other top-level
    records to ``generation.json`` (the request and environment of :mod:`.rerun`).
    ``n_samples`` and ``shard_size`` define the shards; ``synthesizer`` (name and config hash)
    goes into every row.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        layout: str,
        taxonomy: Taxonomy,
        *,
        n_samples: int,
        shard_size: int,
        seed: int,
        config: dict[str, Any],
        synthesizer: dict[str, str],
        resume: bool = False,
        overwrite: bool = False,
        record: dict[str, Any] | None = None,
    ) -> None:
        if layout not in WRITERS:
            raise FormatError(f"unknown layout {layout!r}; choose one of {', '.join(WRITERS)}")
        self.root = Path(root)
        self.layout = layout
        self.taxonomy = taxonomy
        self.seed = seed
        self.synthesizer = synthesizer
        self.shards = shard_ranges(n_samples, shard_size)
        self._shard_size = shard_size
        resuming = resume and self._check_resume(config)
        committed = self._committed_rows() if resuming else {}
        if not resuming and self._busy(overwrite):
            self._remove_own_artefacts()
        self.writer: ChangeDatasetWriter = WRITERS[layout](
            self.root, taxonomy, overwrite=overwrite, resume=resuming, provenance=config
        )
        doc = {"config": config, **(record or {})}
        write_text_atomic(self.root / RUN_CONFIG, json.dumps(doc, indent=2) + "\n")
        self.committed: set[int] = set()
        self.restored = 0
        if resuming:
            self._restore(committed)
        self._pending: dict[int, dict[int, dict[str, Any]]] = {}
        self._written: dict[int, list[tuple[str | None, str]]] = {}

    def _busy(self, overwrite: bool) -> bool:
        """Whether ``root`` holds files to replace; refuse them unless ``overwrite``."""
        if self.root.is_dir() and any(self.root.iterdir()) and not overwrite:
            raise OutputExistsError(
                f"{self.root}: the output folder is not empty; pass --resume to finish an "
                f"interrupted run there, --overwrite to replace it, or choose a new folder"
            )
        return check_output_dir(self.root, overwrite)

    # -- resume ---------------------------------------------------------------------------

    def _check_resume(self, config: dict[str, Any]) -> bool:
        """True if ``root`` holds a run to resume (its config must match); False if empty."""
        if not self.root.is_dir() or not any(self.root.iterdir()):
            return False
        saved = read_run_config(self.root)
        if saved is None:
            raise OutputExistsError(
                f"{self.root}: has no {RUN_CONFIG}, so it is not a changen generate output to "
                f"resume; choose another --out, or pass --overwrite instead of --resume"
            )
        diff = _differences(saved, config)
        if diff:
            raise ConfigError(
                f"{self.root}: --resume with a different config ({', '.join(diff[:6])} differ "
                f"from {RUN_CONFIG}); rerun with the original options, or --overwrite"
            )
        return True

    def _committed_rows(self) -> dict[int, list[dict[str, Any]]]:
        """The rows of each committed shard of the run to resume, checked before anything in
        ``root`` changes (so a damaged shard leaves the folder as it was)."""
        committed: dict[int, list[dict[str, Any]]] = {}
        for path in sorted((self.root / SHARD_DIR).glob("shard-*.jsonl")):
            try:
                shard = int(path.stem.split("-")[1])
            except (IndexError, ValueError):
                continue
            if shard >= len(self.shards):
                raise DataError(f"{path}: shard {shard} is outside this run's plan; --overwrite")
            rows = _read_shard(path)
            if [r["index"] for r in rows] != list(self.shards[shard]):
                raise DataError(
                    f"{path}: rows do not cover shard {shard}'s samples; delete the file and "
                    f"rerun with --resume"
                )
            committed[shard] = rows
        return committed

    def _restore(self, committed: dict[int, list[dict[str, Any]]]) -> None:
        for stale in self.root.rglob(".*.part*"):  # temporary files of a killed run
            if stale.is_file():
                stale.unlink()
        for shard, rows in committed.items():
            for row in rows:
                for output in row["outputs"]:
                    self.writer.record(output["name"], output["counts"], output.get("split"))
            self.committed.add(shard)
            self.restored += len(rows)

    def _remove_own_artefacts(self) -> None:
        for name in OWN_ARTEFACTS:
            path = self.root / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    # -- writing --------------------------------------------------------------------------

    def todo(self) -> list[int]:
        """The sample indices of the shards not committed yet, in order."""
        return [i for k, r in enumerate(self.shards) if k not in self.committed for i in r]

    def write(self, generated: Generated) -> dict[str, Any]:
        """Write one sample's files and row; commit its shard when it is the shard's last.
        Returns the row."""
        start = time.perf_counter()
        index = generated.prepared.spec.index
        shard = index // self._shard_size
        row = manifest_row(generated, self.seed, self.synthesizer)
        split = generated.prepared.spec.split
        written = self._written.setdefault(shard, [])
        outputs = []
        for sample in change_samples(generated, self.taxonomy):
            written.append((split, sample.name))
            output = {"name": sample.name, "counts": self.writer.write(sample, split)}
            outputs.append(output if split is None else {**output, "split": split})
        series = change_series(generated, self.taxonomy)
        if series is not None and len(series) > 2:
            written.append((None, f"{SERIES_DIR}/{series.name}"))
            self._write_series(series)
        row["outputs"] = outputs
        row["timing"]["write_s"] = round(time.perf_counter() - start, 6)
        pending = self._pending.setdefault(shard, {})
        pending[index] = row
        if len(pending) == len(self.shards[shard]):
            rows = [pending[i] for i in self.shards[shard]]
            text = "".join(json.dumps(r) + "\n" for r in rows)
            write_text_atomic(shard_path(self.root, shard), text)
            self.committed.add(shard)
            del self._pending[shard], self._written[shard]
        return row

    def _write_series(self, series: Any) -> None:
        folder = self.root / SERIES_DIR / series.name
        suffix = ".tif" if self.layout == "geotiff" else ".png"
        for k in range(len(series)):
            save_array(folder / f"image_t{k}{suffix}", series.images[k], series.georef)
            save_array(folder / f"mask_t{k}.png", series.masks[k], None)

    def discard_uncommitted(self) -> None:
        """Remove the files written for shards not committed (after a failed run)."""
        for names in self._written.values():
            for split, name in names:
                if name.startswith(f"{SERIES_DIR}/"):
                    shutil.rmtree(self.root / name, ignore_errors=True)
                    continue
                base = self.root if split is None else self.root / split
                for folder in self.writer.folders:
                    for path in (base / folder).glob(f"{glob.escape(name)}.*"):
                        path.unlink(missing_ok=True)
        self._written.clear()
        self._pending.clear()

    def close(self) -> dict[str, Any]:
        """Write ``manifest.json`` once every shard is committed; return it."""
        missing = [k for k in range(len(self.shards)) if k not in self.committed]
        if missing:
            raise RuntimeError(f"{self.root}: shards {missing[:5]} are not committed yet")
        return self.writer.close()
