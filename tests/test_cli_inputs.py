"""Inputs from the CLI (issue 16, item 5 and 9): 0/255 building masks, pooled sources in
simulate and training, mixed instance maps, single-temporal convert, tRNS PNGs, hints."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from changen.cli.app import _fail, app
from changen.cli.progress import rich_sink
from changen.cli.train import data_spec
from changen.data.imageio import read_image
from changen.data.readers import open_dataset
from changen.data.readers.folder import FolderReader
from changen.data.readers.pooled import open_data_spec
from changen.engine.data import holdout_split
from changen.metrics.inception import INSTALL_HINT
from fixtures_bad_inputs import GAN_RUN
from fixtures_scenes import make_folder_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def cli(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output + (str(result.exception or ""))


@pytest.fixture
def buildings(tmp_path: Path) -> tuple[Path, Path]:
    """Two building folders with 0/255 masks, as most building datasets store them."""
    rng = np.random.default_rng(16)
    roots = tmp_path / "city_a", tmp_path / "city_b"
    for root in roots:
        make_folder_dataset(root, rng, n=2, hw=(64, 64), mask_style="binary255")
    return roots


def test_simulate_reads_0_255_masks_with_binary_threshold(
    buildings: tuple[Path, Path], tmp_path: Path
) -> None:
    code, output = cli("simulate", buildings[0], "--out", tmp_path / "refused", "--no-progress")
    assert code != 0 and "--binary-threshold 127" in output
    out = tmp_path / "sim"
    code, output = cli(
        "simulate", buildings[0], "--out", out, "--binary-threshold", "127", "--no-progress"
    )
    assert code == 0, output
    masks = sorted((out / "masks").glob("*_t0.png"))
    assert len(masks) == 2
    assert set(np.unique(np.concatenate([read_image(m).ravel() for m in masks]))) <= {0, 1}


def test_simulate_pools_sources_as_generate_does(
    buildings: tuple[Path, Path], tmp_path: Path
) -> None:
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps([{"path": "city_b", "binary_threshold": 127}]))
    out = tmp_path / "sim"
    code, output = cli(
        "simulate", buildings[0], "--sources", sources, "--binary-threshold", "127",
        "--out", out, "--no-preview", "--no-progress",
    )  # fmt: skip
    assert code == 0, output
    assert "simulated 4 items" in output
    names = sorted(p.name.removesuffix("_t0.png") for p in (out / "masks").glob("*_t0.png"))
    assert names == [f"city_{c}__tile_00{i}" for c in "ab" for i in range(2)]


def test_train_generator_pools_0_255_sources(buildings: tuple[Path, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, output = cli(
        "train", "generator", *buildings, "--binary-threshold", "127", "--out", run,
        *GAN_RUN.split(),
    )  # fmt: skip
    assert code == 0, output
    data = json.loads((run / "config.json").read_text())["train"]["data"]
    assert [Path(d["path"]).name for d in data] == ["city_a", "city_b"]
    assert all(d["binary_threshold"] == 127 and Path(d["path"]).is_absolute() for d in data)


def test_training_data_spec_one_path_stays_a_path(
    buildings: tuple[Path, Path], tmp_path: Path
) -> None:
    spec, reader = data_spec([str(buildings[1])], None, None, None, None, None)
    assert spec == str(buildings[1])
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps([{"path": str(p), "binary_threshold": 127} for p in buildings]))
    spec, reader = data_spec(None, sources, None, None, None, None)
    assert isinstance(spec, list) and reader is not None and len(reader) == 4
    pooled = open_data_spec(spec)  # what train diffusion / generator open from config.json
    assert pooled.names == reader.names
    assert set(np.unique(pooled[3].mask)) <= {0, 1}


def test_mixed_instance_maps_derive_the_missing_ones(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    make_folder_dataset(tmp_path, rng, n=2, hw=(48, 48), mask_style="binary01", instances=".png")
    (tmp_path / "instances" / "tile_001.png").unlink()
    scene = FolderReader(tmp_path)[1]
    assert scene.instances is not None and scene.mask is not None
    buildings = np.asarray(scene.mask == 1, np.uint8)
    n, components = cv2.connectedComponents(buildings, connectivity=8)
    assert scene.instances.max() == n - 1
    np.testing.assert_array_equal(scene.instances > 0, components > 0)
    out = tmp_path / "sim"
    code, output = cli(
        "simulate", tmp_path, "--out", out, "--unlabeled", "instances", "--no-progress"
    )
    assert code == 0, output


def test_convert_writes_single_temporal_folders(
    buildings: tuple[Path, Path], tmp_path: Path
) -> None:
    code, output = cli("data", "convert", buildings[0], tmp_path / "x", "--layout", "levircd")
    assert code != 0 and "choose --layout folder" in output
    out = tmp_path / "plain"
    code, output = cli(
        "data", "convert", buildings[0], out, "--layout", "folder", "--binary-threshold", "127"
    )
    assert code == 0, output
    source = open_dataset(buildings[0], binary_threshold=127)
    copy = open_dataset(out)
    assert copy.format == "folder" and copy.names == source.names
    for a, b in zip(source, copy, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.mask, b.mask)


def test_rgb_png_with_transparency_chunk_reads_as_three_bands(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "trns.png", transparency=(0, 0, 0))
    assert b"tRNS" in (tmp_path / "trns.png").read_bytes()
    np.testing.assert_array_equal(read_image(tmp_path / "trns.png"), pixels)
    rgba = np.dstack([pixels, np.full((8, 8), 7, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgba)


def test_missing_extra_hints_keep_their_brackets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _fail(f"FID needs the metrics extra; run `{INSTALL_HINT}`")
    assert 'run `pip install "changen[metrics]"`' in capsys.readouterr().err
    with rich_sink(True) as sink:
        sink.note(f"hint: {INSTALL_HINT}")
    assert 'hint: pip install "changen[metrics]"' in capsys.readouterr().err


def test_holdout_keeps_small_sources_trainable() -> None:
    assert holdout_split(1, 0.1) == ([0], [])  # the only item is trained on
    assert holdout_split(2, 0.1) == ([1], [0])  # at least one held out when n > 1
    assert holdout_split(20, 0.1) == ([i for i in range(20) if i not in (0, 10)], [0, 10])
    assert holdout_split(5, 0.0) == ([0, 1, 2, 3, 4], [])


def test_train_diffusion_pools_sources_and_resumes(
    buildings: tuple[Path, Path], tmp_path: Path
) -> None:
    sources = tmp_path / "sources.json"
    sources.write_text(json.dumps([{"path": p.name, "binary_threshold": 127} for p in buildings]))
    run = tmp_path / "run"
    tiny = "--preset tiny --size 32 --batch-size 2 --workers 0 --accelerator cpu --no-progress"
    code, output = cli(
        "train", "diffusion", "--sources", sources, "--out", run, *tiny.split(),
        "--steps", "1", "--preview", "0", "--sample-every", "0",
    )  # fmt: skip
    assert code == 0, output
    data = json.loads((run / "config.json").read_text())["train"]["data"]
    assert [Path(d["path"]).name for d in data] == ["city_a", "city_b"]
    code, output = cli("train", "diffusion", "--out", run, "--resume", "--steps", "2",
                       "--accelerator", "cpu", "--no-progress")  # fmt: skip
    assert code == 0 and "trained to step 2" in output, output
