"""The static HTML gallery: files and cards, hostile strings in every field that reaches the page,
then the page rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np
import pytest

from changen.cli.gallery import write_gallery
from changen.data.imageio import read_image, write_image
from changen.data.world import write_sample_world
from changen.errors import DataError, FormatError
from changen.generation import RunOptions, generate_dataset
from changen.generation.shards import read_rows
from changen.sample import ClassInfo, Taxonomy
from changen.viz.gallery import change_overlay, render_gallery
from fixtures_generation import config, register_fakes, world_source

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
N_SAMPLES = 8


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gallery")
    with pytest.MonkeyPatch.context() as mp:
        register_fakes(mp)
        source = world_source(root / "src")
        generate_dataset(config(source), root / "out", RunOptions(workers=0))
    return root / "out"


def _cards(page: str) -> list[str]:
    return re.findall(r'<article class="card" data-events="([a-z ]*)"', page)


def test_gallery_has_a_card_and_five_thumbnails_per_sample(generated: Path) -> None:
    page = render_gallery(generated, rows=read_rows(generated), thumb=48)
    assert page == generated / "gallery" / "index.html"
    text = page.read_text()
    kinds = _cards(text)
    rows = read_rows(generated)
    assert kinds == [" ".join(sorted({e["event"] for e in r["events"]})) or "none" for r in rows]
    thumbs = sorted(p.name for p in (page.parent / "thumbs").iterdir())
    assert len(thumbs) == 5 * N_SAMPLES
    assert read_image(page.parent / "thumbs" / "world_00000_v00_m1.png").shape == (48, 48, 3)
    for kind in ("create", "remove", "reclass"):
        n = sum(kind in k.split() for k in kinds)
        if n:
            assert f'data-filter="{kind}">{kind} ({n})' in text
    assert "building" in text and '<script src="gallery.js"></script>' in text
    assert {"gallery.css", "gallery.js"} <= {p.name for p in page.parent.iterdir()}
    assert write_gallery(generated, thumb=48).read_text() == text  # the CLI reads the manifest


def test_gallery_limit_and_other_datasets(tmp_path: Path, generated: Path) -> None:
    page = write_gallery(generated, tmp_path / "g" / "page.html", limit=3, thumb=32)
    assert len(_cards(page.read_text())) == 3 and (tmp_path / "g" / "thumbs").is_dir()
    pairs = write_sample_world(tmp_path / "pairs", 2, 0, size=64, pairs=True)
    assert _cards(render_gallery(pairs, thumb=32).read_text()) == ["unknown", "unknown"]
    scenes = write_sample_world(tmp_path / "scenes", 1, 0, size=64)
    with pytest.raises(FormatError, match="gallery shows change datasets"):
        render_gallery(scenes)


@pytest.mark.real
def test_gallery_of_real_levircd_crops(real_root: Path, tmp_path: Path) -> None:
    page = render_gallery(real_root / "levircd_crops", tmp_path / "index.html", thumb=32)
    text = page.read_text()
    assert _cards(text) == ["unknown"] * 11 and text.count("events not recorded") == 11
    assert len(list((tmp_path / "thumbs").glob("*_ov.png"))) == 11


def test_change_overlay_tints_changed_pixels_only() -> None:
    image = np.full((4, 4, 3), 100, np.uint8)
    change = np.zeros((4, 4), np.uint8)
    change[1, 2] = 1
    change[0, 0] = 255  # ignore stays as it is
    out = change_overlay(image, change)
    assert (out[1, 2] != 100).any() and (out[change != 1] == 100).all()


def _chromium(profile: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--window-size=1280,2000", *extra, url,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_page_renders_in_a_real_browser(generated: Path, tmp_path: Path) -> None:
    page = write_gallery(generated)
    kinds = _cards(page.read_text())
    counts = {
        k: sum(k in c.split() for c in kinds) for k in ("create", "remove", "reclass", "none")
    }
    kind = next(k for k, n in counts.items() if 0 < n < N_SAMPLES)  # a filter that hides cards
    shot = tmp_path / "shot.png"
    url = f"{page.resolve().as_uri()}#{kind}"
    dom = _chromium(tmp_path / "profile", url, f"--screenshot={shot}", "--dump-dom").stdout
    pixels = read_image(shot)
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 20  # thumbnails drawn, not a blank page
    rgb = pixels[..., :3].astype(np.int32)
    assert np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]).size > 1000
    assert dom.count('<article class="card"') == N_SAMPLES
    assert f'<span id="visible">{counts[kind]}</span>' in dom  # set by the script
    assert len(re.findall(r'<article class="card"[^>]* hidden=""', dom)) == N_SAMPLES - counts[kind]
    assert re.search(rf'<button data-filter="{kind}" class="active">', dom)


# --- hostile data --------------------------------------------------------------------------

#: Strings that would run script if a field reached the page unescaped; the file-name-safe
#: ones (no "/") also name the dataset folder and its samples.
HOSTILE = (
    '"><script>alert(1)</script>',
    "' onerror=alert(1) x='",
    "</textarea><img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    '"><img src=x onerror=alert(1)>',
    "<svg onload=alert(1)>",
)
FILE_SAFE = tuple(h for h in HOSTILE if "/" not in h)
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "link", "body", "header", "h1", "p", "span", "nav",
    "button", "div", "i", "main", "article", "h2", "figure", "img", "figcaption", "ul", "li",
    "script",
}  # fmt: skip


class PageParser(HTMLParser):
    """Every start tag with its attributes, and the text of the page, as a browser parses it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.script_text if self._in_script else self.text).append(data)


def hostile_rows() -> list[dict[str, Any]]:
    """Manifest rows, one per sample of :func:`hostile_dataset`, hostile in every field."""
    rows: list[dict[str, Any]] = []
    for i, name in enumerate(FILE_SAFE):
        events = [
            {"step": 1, "event": kind, "class_before": before, "class_after": after, "area": area}
            for kind, before, after, area in (
                ("create", 1, HOSTILE[i % len(HOSTILE)], HOSTILE[-1]),
                ("remove", HOSTILE[1], 0, 7),
                (HOSTILE[i % len(HOSTILE)], HOSTILE[0], HOSTILE[2], HOSTILE[3]),
            )
        ]
        rows.append(
            {
                "index": i,
                "source": HOSTILE[0],
                "outputs": [{"name": name, "path": HOSTILE[2]}],
                "events": events,
                "provenance": {h: h for h in HOSTILE},
            }
        )
    return rows


def hostile_dataset(root: Path) -> tuple[Path, list[dict[str, Any]], Taxonomy]:
    """A LEVIR-CD folder whose folder and sample names are hostile, its manifest rows, and a
    taxonomy of hostile class names."""
    folder = root / FILE_SAFE[0]
    rng = np.random.default_rng(11)
    for name in FILE_SAFE:
        for sub in ("A", "B"):
            write_image(folder / sub / f"{name}.png", rng.integers(0, 256, (32, 32, 3), np.uint8))
        label = np.zeros((32, 32), np.uint8)
        label[:8, :8] = 255
        write_image(folder / "label" / f"{name}.png", label)
    classes = tuple(ClassInfo(i, h, (i * 40, 255 - i * 40, 9)) for i, h in enumerate(HOSTILE))
    return folder, hostile_rows(), Taxonomy(HOSTILE[3], classes)


@pytest.fixture
def hostile_page(tmp_path: Path) -> Path:
    folder, rows, taxonomy = hostile_dataset(tmp_path)
    return render_gallery(
        folder, rows=rows, source_taxonomy=taxonomy, taxonomy=taxonomy, format="levircd", thumb=32
    )


def test_hostile_strings_are_text_never_markup(hostile_page: Path) -> None:
    parser = PageParser()
    parser.feed(hostile_page.read_text(encoding="utf-8"))
    tags = {tag for tag, _ in parser.tags}
    assert tags <= ALLOWED_TAGS, tags - ALLOWED_TAGS
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts == [{"src": "gallery.js"}] and not "".join(parser.script_text).strip()
    for tag, attrs in parser.tags:
        for name, value in attrs.items():
            assert not name.startswith("on") and name != "style", (tag, name, value)
            assert not (value or "").strip().lower().startswith("javascript:"), (tag, name)
        if tag == "img":
            src = attrs["src"] or ""
            assert src.startswith("thumbs/")
            assert (hostile_page.parent / unquote(src)).is_file()
        if tag == "link":
            assert attrs == {"rel": "stylesheet", "href": "gallery.css"}
    metas = [attrs for tag, attrs in parser.tags if tag == "meta"]
    csp = next(m["content"] or "" for m in metas if m.get("http-equiv"))
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    text = "".join(parser.text)
    for hostile in HOSTILE:
        assert hostile in text  # shown as text, not dropped
    kinds = sorted(a["data-events"] or "" for t, a in parser.tags if t == "article")
    expected = [" ".join(sorted({e["event"] for e in r["events"]})) for r in hostile_rows()]
    assert kinds == sorted(expected)  # each attribute holds its whole value, nothing broke out
    css = (hostile_page.parent / "gallery.css").read_text()
    assert "alert" not in css and "<" not in css


def test_malformed_manifest_rows_are_data_errors(tmp_path: Path) -> None:
    folder, rows, _ = hostile_dataset(tmp_path)
    del rows[0]["events"][0]["step"]
    with pytest.raises(DataError, match="manifest row 0: malformed"):
        render_gallery(folder, rows=rows, format="levircd")
    rows[0] = {"index": 0}
    with pytest.raises(DataError, match="manifest row 0: malformed"):
        render_gallery(folder, rows=rows, format="levircd")
    bad = Taxonomy("x", (ClassInfo(0, "a", ("red", 0, 0)),))  # type: ignore[arg-type]
    with pytest.raises(DataError, match="colour"):
        render_gallery(folder, format="levircd", taxonomy=bad)


def test_hostile_page_runs_no_script_in_chromium(hostile_page: Path) -> None:
    """Headless Chromium (playwright; Debian's chromium when installed): no dialog opens, no
    page error, no Content-Security-Policy violation, and the gallery's own script, style and
    images all load under the policy."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except sync_api.Error as e:
            pytest.skip(f"playwright finds no Chromium: {str(e).splitlines()[0]}")
        page = browser.new_page()
        dialogs: list[str] = []
        errors: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        url = hostile_page.resolve().as_uri()
        page.goto(url + "#" + quote(HOSTILE[4]))
        page.goto(url)
        page.wait_for_load_state("load")
        page.click('button[data-filter="remove"]')
        visible = page.inner_text("#visible")
        loaded = page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        browser.close()
    assert dialogs == [] and errors == []
    assert visible == str(len(FILE_SAFE))  # the gallery's script ran and filtered
    assert loaded and background == "rgb(244, 244, 244)"  # images and style allowed
