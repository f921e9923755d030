"""A static HTML gallery of a change dataset: thumbnails, masks, change overlay and events.

:func:`render_gallery` reads any change dataset :func:`changen.data.readers.open_dataset`
knows (a generated one, or LEVIR-CD, SECOND, …) and writes, by default under
``<dataset>/gallery/``::

    index.html        one card per sample, filter buttons by event type, a visible-sample count
    thumbs/<name>_{t1,t2}.jpg, <name>_{m1,m2,ov}.png   images, coloured masks, change overlay

For a dataset written by ``changen generate`` the events of every pair come from its manifest
rows (``manifest/shard-*.jsonl``); a pair without any event is filed under "none", and samples
of datasets without that provenance under "unknown". The page is self-contained (no network):
a small inline script shows the cards of the chosen event type; the URL fragment
(``index.html#remove``) preselects a filter.
"""

from __future__ import annotations

import html
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from changen.data.atomic import write_text_atomic
from changen.data.bands import to_rgb8
from changen.data.imageio import write_image
from changen.data.readers import open_dataset
from changen.errors import FormatError
from changen.sample import ChangeSample, Taxonomy
from changen.viz.grid import render_cell

EVENT_ORDER = ("create", "remove", "reclass", "none", "unknown")
OVERLAY_COLOR = np.array([255, 0, 64], np.float32)
OVERLAY_ALPHA = 0.55


def _manifest_events(root: Path) -> tuple[dict[str, list[dict[str, Any]]], Taxonomy | None]:
    """Output pair name → its event records, and the source taxonomy, from a generated
    dataset's provenance (empty when the dataset has none)."""
    from changen.generation.shards import RUN_CONFIG, read_rows

    events: dict[str, list[dict[str, Any]]] = {}
    for row in read_rows(root):
        for step, output in enumerate(row["outputs"], start=1):
            events[output["name"]] = [e for e in row["events"] if e["step"] == step]
    taxonomy = None
    config = root / RUN_CONFIG
    if config.is_file():
        saved = json.loads(config.read_text(encoding="utf-8"))["config"]
        taxonomy = Taxonomy.from_dict(saved["taxonomy"])
    return events, taxonomy


def change_overlay(image: np.ndarray, change: np.ndarray) -> np.ndarray:
    """``image`` (RGB uint8) with changed pixels (``change == 1``) tinted."""
    out = image.astype(np.float32)
    hit = change == 1
    out[hit] = out[hit] * (1 - OVERLAY_ALPHA) + OVERLAY_COLOR * OVERLAY_ALPHA
    return out.round().astype(np.uint8)


def _describe(event: dict[str, Any], names: dict[int, str]) -> str:
    before = names.get(event["class_before"], str(event["class_before"]))
    after = names.get(event["class_after"], str(event["class_after"]))
    if event["event"] == "create":
        return f"create {after} ({event['area']} px)"
    if event["event"] == "remove":
        return f"remove {before} → {after} ({event['area']} px)"
    return f"reclass {before} → {after} ({event['area']} px)"


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
    limit: int = 200,
    format: str | None = None,
    taxonomy: str | Taxonomy | None = None,
    thumb: int = 160,
) -> Path:
    """Write the gallery of the first ``limit`` samples (see the module); return the page."""
    root = Path(dataset_dir)
    reader = open_dataset(root, format=format, taxonomy=taxonomy)
    if reader.kind != "change":
        raise FormatError(
            f"{root}: is a {reader.format} scene dataset; the gallery shows change datasets "
            f"(run changen generate on it first)"
        )
    page = Path(out_html) if out_html is not None else root / "gallery" / "index.html"
    thumbs = page.parent / "thumbs"
    events, source_taxonomy = _manifest_events(root)
    names = (source_taxonomy or reader.taxonomy).names
    cards: list[str] = []
    kinds_seen: Counter[str] = Counter()
    n = min(limit, len(reader))
    for i in range(n):
        sample = reader[i]
        files = _thumbs(sample, thumbs, thumb, sample.taxonomy or reader.taxonomy)
        records = events.get(sample.name)
        if records is None:
            kinds, records = ["unknown"], []
        else:
            kinds = sorted({e["event"] for e in records}) or ["none"]
        kinds_seen.update(kinds)
        cards.append(_card(sample.name, files, kinds, [_describe(e, names) for e in records]))
    text = _page(root, reader.format, len(reader), cards, kinds_seen, reader.taxonomy)
    write_text_atomic(page, text)
    return page


def _card(name: str, files: dict[str, str], kinds: list[str], lines: list[str]) -> str:
    figures = "".join(
        f'<figure><img src="thumbs/{html.escape(f)}" alt="{html.escape(c)}" loading="lazy">'
        f"<figcaption>{html.escape(c)}</figcaption></figure>"
        for c, f in files.items()
    )
    empty = "events not recorded" if kinds == ["unknown"] else "no event"
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines) or f"<li>{empty}</li>"
    return (
        f'<article class="card" data-events="{" ".join(kinds)}">'
        f'<h2>{html.escape(name)}</h2><div class="row">{figures}</div>'
        f'<ul class="events">{items}</ul></article>'
    )


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1rem;background:#f4f4f4;color:#222}
header{position:sticky;top:0;background:#f4f4f4;padding:.5rem 0;z-index:1}
button{margin:.1rem;padding:.3rem .7rem;border:1px solid #888;border-radius:4px;background:#fff}
button.active{background:#333;color:#fff}
.card{background:#fff;margin:.6rem 0;padding:.5rem;border-radius:6px;box-shadow:0 1px 3px #0003}
.card h2{font-size:.95rem;margin:.1rem 0 .4rem}
.row{display:flex;gap:.4rem;flex-wrap:wrap}
figure{margin:0;text-align:center;font-size:.75rem}
.events{font-size:.8rem;margin:.3rem 0 0;padding-left:1.2rem}
.legend span{display:inline-block;margin-right:.6rem;font-size:.8rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.2rem;border:1px solid #999}
"""

_SCRIPT = """
const buttons = document.querySelectorAll('button[data-filter]');
function show(kind) {
  let visible = 0;
  for (const card of document.querySelectorAll('.card')) {
    const on = kind === 'all' || card.dataset.events.split(' ').includes(kind);
    card.hidden = !on;
    if (on) visible += 1;
  }
  document.getElementById('visible').textContent = visible;
  buttons.forEach(b => b.classList.toggle('active', b.dataset.filter === kind));
}
buttons.forEach(b => b.addEventListener('click', () => show(b.dataset.filter)));
show(location.hash.slice(1) || 'all');
"""


def _page(
    root: Path,
    fmt: str,
    total: int,
    cards: list[str],
    kinds: Counter[str],
    taxonomy: Taxonomy,
) -> str:
    buttons = [f'<button data-filter="all">all ({len(cards)})</button>'] + [
        f'<button data-filter="{k}">{k} ({kinds[k]})</button>' for k in EVENT_ORDER if kinds[k]
    ]
    legend = "".join(
        f'<span><i style="background:rgb{c.color}"></i>{html.escape(c.name)}</span>'
        for c in taxonomy.classes
    )
    title = html.escape(root.resolve().name)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} — changen gallery</title>
<style>{_STYLE}</style></head>
<body><header><h1>{title}</h1>
<p>{html.escape(fmt)} dataset, {len(cards)} of {total} samples shown;
<span id="visible">{len(cards)}</span> visible.</p>
<nav>{"".join(buttons)}</nav><div class="legend">{legend}</div></header>
<main>{"".join(cards)}</main>
<script>{_SCRIPT}</script></body></html>
"""
