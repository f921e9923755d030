"""Convert a dataset from any readable format into one of changen's layouts.

Change datasets go to a change layout (:data:`~changen.data.writers.WRITERS`); single-temporal
datasets (xView2, LoveDA, OpenEarthMap, vector labels, tiles, …) to the ``folder`` layout of
:class:`~changen.data.writers.SceneFolderWriter` (``images/ masks/ [instances/]``). Samples
keep their names and splits (a sample read from ``train/`` is written to ``train/``); the
written manifest records where the data came from. The converted dataset is built under a
staging name and renamed into place when complete
(:func:`changen.data.staging.staged_output`): an unreadable sample or a full disk leaves the
output folder as it was.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from changen.data.output import check_output_dir
from changen.data.readers import open_dataset
from changen.data.staging import staged_output
from changen.data.writers import WRITERS, DatasetWriter, SceneFolderWriter
from changen.errors import ConfigError, FormatError
from changen.sample import Taxonomy


def _nested(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    layout: str,
    *,
    format: str | None = None,
    taxonomy: str | Taxonomy | None = None,
    overwrite: bool = False,
    split: str | None = None,
    **reader_options: Any,
) -> dict[str, Any]:
    """Read the dataset at ``src`` and write it to ``dst`` in ``layout`` (``folder`` for a
    single-temporal dataset, a change layout for a change dataset).

    ``format`` names the source format (detected when ``None``); ``taxonomy`` (a built-in name
    or a :class:`Taxonomy`) overrides the reader's; ``split`` converts one split only. ``dst``
    must be absent or empty unless ``overwrite``; ``reader_options`` go to the reader (e.g.
    ``binary_threshold``, ``label_values``). Returns the written manifest (layout,
    taxonomy, counts, provenance).
    """
    writers: dict[str, type[DatasetWriter[Any]]] = {
        **WRITERS,
        SceneFolderWriter.layout: SceneFolderWriter,
    }
    if layout not in writers:
        raise FormatError(f"unknown output layout {layout!r}; choose one of: {', '.join(writers)}")
    src_path, dst_path = Path(src).resolve(), Path(dst).resolve()
    if _nested(src_path, dst_path):
        raise ConfigError(
            f"{dst}: the output folder overlaps the source {src}; write the "
            f"converted dataset to a separate folder"
        )
    check_output_dir(dst_path, overwrite)
    options: dict[str, Any] = dict(reader_options) | ({} if split is None else {"split": split})
    reader = open_dataset(Path(src), format=format, taxonomy=taxonomy, **options)
    if reader.kind != writers[layout].kind:
        fits = SceneFolderWriter.layout if reader.kind == "scene" else ", ".join(WRITERS)
        raise FormatError(
            f"{src}: a {reader.kind} dataset ({reader.format}) cannot be written as {layout}; "
            f"choose --layout {fits}"
        )
    provenance: dict[str, Any] = {
        "source": str(src_path),
        "source_format": reader.format,
        "licence": reader.licence,
        "split": split,
    }
    choice = getattr(reader, "taxonomy_choice", None)
    if choice is not None:
        provenance["taxonomy_choice"] = choice
    with (
        staged_output(dst_path, overwrite=overwrite) as stage,
        writers[layout](stage, reader.taxonomy, provenance=provenance) as writer,
    ):
        for sample in reader:
            writer.write(sample, split=sample.meta.get("split"))
    return writer.close()
