"""The static HTML gallery: files and cards, then the page rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from changen.data.imageio import read_image
from changen.data.world import write_sample_world
from changen.errors import FormatError
from changen.generation import RunOptions, generate_dataset
from changen.generation.shards import read_rows
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
    page = render_gallery(generated, thumb=48)
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
    assert "building" in text and "<script>" in text


def test_gallery_limit_and_other_datasets(tmp_path: Path, generated: Path) -> None:
    page = render_gallery(generated, tmp_path / "g" / "page.html", limit=3, thumb=32)
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
    page = render_gallery(generated)
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
