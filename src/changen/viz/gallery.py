"""A static HTML gallery of a change dataset: thumbnails, masks, change overlay and events.

:func:`render_gallery` reads any change dataset :func:`changen.data.readers.open_dataset`
knows (a generated one, or LEVIR-CD, SECOND, …) and writes, by default under
``<dataset>/gallery/``::

    index.html        one card per sample, filter buttons by event type, a visible-sample count
    gallery.css, gallery.js                              its style and its filter script
    thumbs/<name>_{t1,t2}.jpg, <name>_{m1,m2,ov}.png   images, coloured masks, change overlay

The thumbnails are written under a staging name and swapped in once all of them, the page,
its style and its script (each written atomically) are written, so a bad sample or a full disk
leaves the previous gallery as it was (:func:`changen.data.staging.staged_output`, which also
holds the writer lock of ``thumbs/``).

The events of every pair come from the manifest rows it is given (for a dataset written by
``changen generate``, its ``manifest/shard-*.jsonl``, read by the caller); a pair without any
event is filed under "none", and samples without rows under "unknown". The page is
self-contained (no network); the URL fragment (``index.html#remove``) preselects a filter.

Every value on the page (names, events, class names, paths) comes from files a user may have
been handed, so the page is rendered by Jinja2 with autoescaping, thumbnail paths are
URL-quoted, and a Content-Security-Policy allows only the gallery's own script, style and
images beside the page: no inline script or style runs, whatever the data holds.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from changen.data.atomic import write_text_atomic
from changen.data.bands import to_rgb8
from changen.data.imageio import write_image
from changen.data.readers import open_dataset
from changen.data.staging import staged_output
from changen.errors import DataError, FormatError
from changen.sample import ChangeSample, Taxonomy
from changen.viz.grid import render_cell

EVENT_ORDER = ("create", "remove", "reclass", "none", "unknown")
OVERLAY_COLOR = np.array([255, 0, 64], np.float32)
OVERLAY_ALPHA = 0.55
#: Only the gallery's own files beside the page: no inline script or style, nothing remote.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'"
)


def pair_events(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Output pair name → its event records, from the manifest rows of a generated dataset.

    A row without ``outputs``/``events`` (or an event without ``step``) is a :class:`DataError`.
    """
    events: dict[str, list[Mapping[str, Any]]] = {}
    for number, row in enumerate(rows):
        try:
            for step, output in enumerate(row["outputs"], start=1):
                events[str(output["name"])] = [e for e in row["events"] if e["step"] == step]
        except (KeyError, TypeError, IndexError) as e:
            raise DataError(
                f"manifest row {number}: malformed ({type(e).__name__}: {e}); regenerate the "
                f"dataset, or drop its manifest/ to show the gallery without events"
            ) from None
    return events


def change_overlay(image: np.ndarray, change: np.ndarray) -> np.ndarray:
    """``image`` (RGB uint8) with changed pixels (``change == 1``) tinted."""
    out = image.astype(np.float32)
    hit = change == 1
    out[hit] = out[hit] * (1 - OVERLAY_ALPHA) + OVERLAY_COLOR * OVERLAY_ALPHA
    return out.round().astype(np.uint8)


def _describe(event: Mapping[str, Any], names: Mapping[int, str]) -> str:
    before = names.get(event["class_before"], str(event["class_before"]))
    after = names.get(event["class_after"], str(event["class_after"]))
    if event["event"] == "create":
        return f"create {after} ({event['area']} px)"
    if event["event"] == "remove":
        return f"remove {before} → {after} ({event['area']} px)"
    return f"reclass {before} → {after} ({event['area']} px)"


def _card(
    name: str,
    files: dict[str, str],
    records: list[Mapping[str, Any]] | None,
    names: Mapping[int, str],
) -> dict[str, Any]:
    """The template fields of one sample's card (``records`` None: events not recorded)."""
    if records is None:
        kinds, lines, empty = ["unknown"], [], "events not recorded"
    else:
        try:
            kinds = sorted({str(e["event"]) for e in records}) or ["none"]
            lines = [_describe(e, names) for e in records]
        except (KeyError, TypeError) as e:
            raise DataError(
                f"manifest events of {name!r}: malformed ({type(e).__name__}: {e}); regenerate "
                f"the dataset, or drop its manifest/ to show the gallery without events"
            ) from None
        empty = "no event"
    figures = list(files.items())
    return {"name": name, "figures": figures, "kinds": kinds, "lines": lines, "empty": empty}


def _css_color(color: Any, name: str) -> str:
    """``#rrggbb`` of a class colour; anything but three integers 0..255 is a DataError."""
    try:
        channels = [int(c) for c in color]
    except (TypeError, ValueError):
        channels = []
    if len(channels) != 3 or not all(0 <= c <= 255 for c in channels):
        raise DataError(f"class {name!r}: colour {color!r} is not three integers 0..255; fix it")
    return "#" + "".join(f"{c:02x}" for c in channels)


def _thumbs(sample: ChangeSample, folder: Path, size: int, taxonomy: Taxonomy) -> dict[str, str]:
    """Write a sample's thumbnails; return caption → file name."""
    stem = sample.name
    files: dict[str, str] = {}
    cells: list[tuple[str, str, np.ndarray | None, Taxonomy | None]] = [
        ("t1", "jpg", sample.t1_image, None),
        ("t2", "jpg", sample.t2_image, None),
        ("t1 mask", "png", sample.t1_mask, taxonomy),
        ("t2 mask", "png", sample.t2_mask, taxonomy),
        ("change", "png", change_overlay(to_rgb8(sample.t2_image)[0], sample.change_mask), None),
    ]
    for (caption, ext, array, tax), key in zip(cells, ("t1", "t2", "m1", "m2", "ov"), strict=True):
        if array is None:
            continue
        name = f"{stem}_{key}.{ext}"
        write_image(folder / name, render_cell(array, size, tax))
        files[caption] = name
    return files


def render_gallery(
    dataset_dir: str | os.PathLike[str],
    out_html: str | os.PathLike[str] | None = None,
    *,
    rows: Iterable[Mapping[str, Any]] | None = None,
    source_taxonomy: Taxonomy | None = None,
    limit: int = 200,
    format: str | None = None,
    taxonomy: str | Taxonomy | None = None,
    thumb: int = 160,
) -> Path:
    """Write the gallery of the first ``limit`` samples (see the module); return the page.

    ``rows`` are the dataset's manifest rows (None: no provenance, every sample "unknown");
    ``source_taxonomy`` names the class ids of their events (default: the dataset's).
    """
    root = Path(dataset_dir)
    reader = open_dataset(root, format=format, taxonomy=taxonomy)
    if reader.kind != "change":
        raise FormatError(
            f"{root}: is a {reader.format} scene dataset; the gallery shows change datasets "
            f"(run changen generate on it first)"
        )
    page = Path(out_html) if out_html is not None else root / "gallery" / "index.html"
    events = pair_events(rows or ())
    names = (source_taxonomy or reader.taxonomy).names
    classes = reader.taxonomy.classes
    env = _environment()
    css = env.get_template("gallery.css.j2").render(
        colors=[_css_color(c.color, c.name) for c in classes]
    )
    script = resources.files("changen.viz").joinpath("templates", "gallery.js").read_text("utf-8")
    created = not page.parent.exists()
    try:
        with staged_output(page.parent / "thumbs", overwrite=True, what="gallery") as thumbs:
            cards = []
            for i in range(min(limit, len(reader))):
                sample = reader[i]
                files = _thumbs(sample, thumbs, thumb, sample.taxonomy or reader.taxonomy)
                cards.append(_card(sample.name, files, events.get(sample.name), names))
            kinds = Counter(k for card in cards for k in card["kinds"])
            html = env.get_template("gallery.html.j2").render(
                csp=CSP,
                title=root.resolve().name,
                format=reader.format,
                total=len(reader),
                cards=cards,
                filters=[(k, kinds[k]) for k in EVENT_ORDER if kinds[k]],
                legend=[c.name for c in classes],
            )
            write_text_atomic(page.parent / "gallery.css", css)
            write_text_atomic(page.parent / "gallery.js", script)
            write_text_atomic(page, html)
    except BaseException:
        if created:  # the page's folder held nothing before: leave nothing
            shutil.rmtree(page.parent, ignore_errors=True)
        raise
    return page


@functools.cache
def _environment() -> jinja2.Environment:
    """The gallery's templates (package data), with HTML autoescaping on."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("changen.viz", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
