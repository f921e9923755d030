"""End-to-end generation in-process: determinism, provenance, series, empty items, georef,
and errors raised before any work."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from changen.data import writers
from changen.data.imageio import read_image, write_image
from changen.data.raster import read_raster
from changen.data.readers import open_dataset
from changen.data.writers import GeoTiffWriter
from changen.errors import ConfigError, DataError, FormatError
from changen.events import ChangeProcess, simulate
from changen.generation import RunOptions, generate_dataset, sample_rngs
from changen.generation.shards import read_rows
from changen.sample import ChangeSample, GeoRef
from changen.taxonomies import OPENEARTHMAP
from fixtures_generation import config, dataset_files, world_source
from fixtures_scenes import make_loveda_dataset

pytestmark = pytest.mark.usefixtures("fake_synthesizers")


def test_output_is_identical_for_batches_and_workers(source: Path, tmp_path: Path) -> None:
    cfg = config(source)
    runs = {
        "b1w0": RunOptions(batch_size=1, workers=0),
        "b3w0": RunOptions(batch_size=3, workers=0),
        "b3w2": RunOptions(batch_size=3, workers=2),
    }
    files = {}
    for key, run in runs.items():
        result = generate_dataset(cfg, tmp_path / key, run)
        assert result.stats.written == 8 and result.planned == 8
        files[key] = dataset_files(tmp_path / key)
    assert files["b1w0"] == files["b3w0"] == files["b3w2"]
    names = sorted(files["b1w0"])
    assert "manifest.json" in names and "README.md" in names and "generation.json" in names
    assert [n for n in names if n.startswith("manifest/")] == [
        f"manifest/shard-0000{k}.jsonl" for k in range(3)
    ]
    assert sum(n.startswith("B/") for n in names) == 8


def test_rows_record_source_seed_events_and_synthesizer(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = generate_dataset(config(source), out, RunOptions(workers=0))
    rows = read_rows(out)
    assert [r["index"] for r in rows] == list(range(8))
    reader = open_dataset(source)
    process = config(source).process
    for row in rows:
        item = row["source"]
        assert row["seed"] == [0, row["index"]]
        assert item["item"] == reader.names[row["index"] // 2]
        assert item["variant"] == row["index"] % 2 and item["window"] is None
        scene = reader[item["item_index"]]
        chain = simulate(
            scene.mask,
            process,
            sample_rngs(0, row["index"])[0],
            instances=scene.instances,
            taxonomy=OPENEARTHMAP,
        )
        assert row["events"] == chain.log_dicts()
        assert row["synthesizer"]["name"] == "noise_fill"
        assert len(row["synthesizer"]["config_hash"]) == 16
        assert set(row["timing"]) == {"read_s", "events_s", "synth_s", "write_s"}
        (output,) = row["outputs"]
        label = read_image(out / "label" / f"{output['name']}.png")[..., 0]
        assert output["counts"]["changed_pixels"] == int((label == 255).sum())
        b_mask = read_image(out / "B_mask" / f"{output['name']}.png")[..., 0]
        assert np.array_equal(b_mask, chain.masks[1])
    events = sum(len(r["events"]) for r in rows)
    assert events > 8
    card = (out / "README.md").read_text()
    assert "| samples planned | 8 |" in card and "| change pairs | 8 |" in card
    assert '"seed": 0' in card and "noise_fill" in card
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["samples"] == 8 == result.manifest["counts"]["samples"]
    assert manifest["provenance"]["synthesizer"]["name"] == "noise_fill"


def test_time_series_writes_steps_and_consecutive_pairs(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate_dataset(config(source, steps=2, per_image=1), out, RunOptions(workers=0))
    name = "world_00000_v00"
    series = out / "series" / name
    assert sorted(p.name for p in series.iterdir()) == [
        "image_t0.png", "image_t1.png", "image_t2.png", "mask_t0.png", "mask_t1.png", "mask_t2.png"
    ]  # fmt: skip
    first, second = f"{name}_t0_t1", f"{name}_t1_t2"
    a1, b1 = read_image(out / "A" / f"{first}.png"), read_image(out / "B" / f"{first}.png")
    a2, b2 = read_image(out / "A" / f"{second}.png"), read_image(out / "B" / f"{second}.png")
    assert np.array_equal(b1, a2) and np.array_equal(b2, read_image(series / "image_t2.png"))
    assert np.array_equal(a1, read_image(source / "images" / "world_00000.png"))
    row = read_rows(out)[0]
    assert [o["name"] for o in row["outputs"]] == [first, second]
    assert {e["step"] for e in row["events"]} <= {1, 2}
    assert len(open_dataset(out)) == 8


@pytest.mark.parametrize("empty", ["nochange", "skip"])
def test_items_without_eligible_objects(tmp_path: Path, empty: str) -> None:
    src = world_source(tmp_path / "src", n=2)
    blank = np.full((64, 64), 2, np.uint8)  # rangeland only: no building or tree to edit
    write_image(src / "masks" / "world_00001.png", blank)
    shutil.rmtree(src / "instances")
    process = ChangeProcess.from_flags("create,remove", count=(1, 2), classes=(5, 8), min_area=16)
    cfg = config(src, empty=empty, process=process)
    out = tmp_path / "out"
    result = generate_dataset(cfg, out, RunOptions(workers=0))
    rows = {r["name"]: r for r in read_rows(out)}
    empty_rows = [rows["world_00001_v00"], rows["world_00001_v01"]]
    assert all(r["events"] == [] for r in empty_rows)
    if empty == "skip":
        assert all(r["status"] == "skipped" and r["outputs"] == [] for r in empty_rows)
        assert not (out / "A" / "world_00001_v00.png").exists()
        assert result.stats.skipped == 2 and result.stats.written == 2
        assert "| samples skipped (no eligible objects) | 2 |" in (out / "README.md").read_text()
    else:
        assert all(r["status"] == "nochange" for r in empty_rows)
        label = read_image(out / "label" / "world_00001_v00.png")
        assert not label.any()
        assert result.stats.nochange == 2 and result.stats.written == 4


def test_crop_keeps_georeference_in_the_geotiff_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    georef = GeoRef("EPSG:32616", Affine(0.5, 0, 500000.0, 0, -0.5, 3700000.0))
    mask = np.full((64, 96), 2, np.uint8)
    for y, x in ((4, 4), (40, 50), (20, 70)):
        mask[y : y + 12, x : x + 10] = 8
    image = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    src = tmp_path / "src"
    with GeoTiffWriter(src, OPENEARTHMAP) as w:
        w.write(ChangeSample(image, image, np.zeros_like(mask), mask, mask, georef, name="tile"))
    out = tmp_path / "out"
    cfg = config(src, crop=32, layout="geotiff", per_image=1)
    generate_dataset(cfg, out, RunOptions(workers=0))
    rows = read_rows(out)
    assert len(rows) == 6
    for row in rows:
        r, c, h, w = row["source"]["window"]
        t1, geo = read_raster(out / "A" / f"{row['name']}.tif")
        assert t1.shape == (32, 32, 3) and np.array_equal(t1, image[r : r + h, c : c + w])
        assert geo is not None and geo.crs == georef.crs
        assert geo.transform == georef.transform @ Affine.translation(c, r)
        assert row["georef"]["transform"] == list(geo.transform)[:6]


def test_errors_before_any_work(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cases = [
        (config(source, layout="coco"), FormatError, "unknown layout 'coco'"),
        (config(source, synthesizer="dalle"), ConfigError, "unknown synthesizer 'dalle'"),
        (config(source, synthesizer="picky"), ConfigError, "checkpoint has 3 classes"),
        (config(source, crop=65), ConfigError, r"--crop 65 is larger than item 'world_00000'"),
        (config(source, empty="drop"), ConfigError, "--empty 'drop'"),
        (
            config(source, synthesizer_options={"colour": "red"}),
            ConfigError,
            "NoiseFill\\(\\) takes no arguments",
        ),
    ]
    for cfg, error, message in cases:
        with pytest.raises(error, match=message):
            generate_dataset(cfg, out, RunOptions(workers=0))
        assert not out.exists()
    with pytest.raises(ConfigError, match="--executor 'spark'"):
        generate_dataset(config(source), out, RunOptions(executor="spark"))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match=r"file/out: cannot write the dataset \(Not a directory"):
        generate_dataset(config(source), blocker / "out", RunOptions(workers=0))


def test_disk_full_leaves_committed_shards_only_and_resumes(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "reference"
    generate_dataset(config(source), reference, RunOptions(workers=0))
    real_save = writers.base.save_array
    calls = {"n": 0}

    def full_disk(path: Path, array: np.ndarray, georef: object, classes: object) -> None:
        calls["n"] += 1
        if calls["n"] > 5 * 4:  # 4 samples (5 files each) fit: shard 0 plus one sample
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_save(path, array, georef, classes)  # type: ignore[arg-type]

    monkeypatch.setattr(writers.base, "save_array", full_disk)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"cannot write the dataset \(No space left on device\)"):
        generate_dataset(config(source), out, RunOptions(workers=0, batch_size=2))
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    kept = ["B/world_00000_v00.png", "B/world_00000_v01.png", "B/world_00001_v00.png"]
    assert [f for f in files if f.startswith("B/")] == kept
    assert "manifest/shard-00000.jsonl" in files and "manifest/shard-00001.jsonl" not in files
    assert "manifest.json" not in files and not any(".part" in f for f in files)
    monkeypatch.setattr(writers.base, "save_array", real_save)
    result = generate_dataset(config(source), out, RunOptions(workers=0, resume=True))
    assert result.restored == 3 and result.stats.written == 5
    assert dataset_files(out) == dataset_files(reference)


@pytest.mark.real
def test_real_sources_keep_georeference_and_ignore(real_root: Path, tmp_path: Path) -> None:
    tiles = real_root / "oam_kampala"
    process = ChangeProcess.from_flags("create,remove", count=(1, 2), min_area=16)
    cfg = config(tiles, process=process, per_image=1, limit=3, layout="geotiff")
    generate_dataset(cfg, tmp_path / "oam", RunOptions(workers=0))
    reader = open_dataset(tiles)
    for row in read_rows(tmp_path / "oam"):
        _, geo = read_raster(tmp_path / "oam" / "B" / f"{row['name']}.tif")
        source = reader[row["source"]["item_index"]].georef
        assert geo is not None and (geo.crs, geo.transform) == (source.crs, source.transform)
    loveda = real_root / "loveda"  # ignore id 0 (no-data), background 1
    process = ChangeProcess.from_flags("create,remove", count=(1, 3), classes=(2,), min_area=32)
    cfg = config(loveda, process=process, per_image=1, limit=1, crop=256)
    result = generate_dataset(cfg, tmp_path / "loveda", RunOptions(workers=0))
    assert result.planned == 16 and result.stats.written == 16
    scene = open_dataset(loveda)[0]
    for sample in open_dataset(tmp_path / "loveda"):
        row = next(r for r in read_rows(tmp_path / "loveda") if r["name"] == sample.name)
        r, c, h, w = row["source"]["window"]
        ignore = scene.mask[r : r + h, c : c + w] == 0
        assert (sample.t2_mask[ignore] == 0).all() and (sample.change_mask[ignore] == 255).all()


def test_loveda_ignore_id_0_is_written_as_change_ignore(tmp_path: Path) -> None:
    """LoveDA's ignore id is 0, which in a change map would mean "unchanged". The levircd
    ``label/`` (0/255 = changed) cannot hold ignore: it is 0 there, kept by the masks' id 0 in
    ``A_mask/ B_mask/``, and read back as 255; the second layout writes it 255."""
    source = tmp_path / "src"
    make_loveda_dataset(source, np.random.default_rng(0), n=2, size=64)
    process = ChangeProcess.from_flags("create,remove", count=(2, 4), min_area=16)
    for layout in ("levircd", "second"):
        cfg = config(source, process=process, per_image=2, format="loveda", layout=layout)
        assert generate_dataset(cfg, tmp_path / layout, RunOptions(workers=0)).stats.written == 4
    levir, second = tmp_path / "levircd", tmp_path / "second"
    changed = 0
    for sample, pair in zip(open_dataset(levir), open_dataset(second), strict=True):
        m1, m2 = sample.t1_mask, sample.t2_mask
        assert m1 is not None and m2 is not None and pair.name == sample.name
        ignore = (m1 == 0) | (m2 == 0)
        assert ignore.any() and (sample.change_mask[ignore] == 255).all()
        assert np.array_equal(sample.change_mask[~ignore], (m1 != m2)[~ignore])
        assert np.array_equal(pair.change_mask, sample.change_mask)
        changed += int((sample.change_mask == 1).sum())
        label = read_image(levir / "label" / f"{sample.name}.png")[..., 0]
        assert (label[ignore] == 0).all() and set(np.unique(label)) <= {0, 255}
        for folder in ("label1", "label2"):
            assert (read_image(second / folder / f"{sample.name}.png")[ignore] == 255).all()
    assert changed
