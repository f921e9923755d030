"""Nuisance and hard negatives in generation: labels and events untouched, images changed,
negatives empty, bytes independent of batches and workers, provenance recorded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from changen.data.imageio import read_image
from changen.generation import RunOptions, generate_dataset
from changen.generation.shards import read_rows
from changen.synthesis.nuisance import PRESETS
from fixtures_generation import config, dataset_files

pytestmark = pytest.mark.usefixtures("fake_synthesizers")


def files_under(root: Path, folder: str) -> dict[str, bytes]:
    return {k: v for k, v in dataset_files(root).items() if k.startswith(folder + "/")}


def test_nuisance_changes_post_images_only(source: Path, tmp_path: Path) -> None:
    plain = generate_dataset(config(source), tmp_path / "plain", RunOptions(workers=0))
    seen = generate_dataset(
        config(source, nuisance=PRESETS["default"]), tmp_path / "seen", RunOptions(workers=0)
    )
    assert plain.stats.written == seen.stats.written == 8
    for folder in ("A", "label"):
        assert files_under(tmp_path / "plain", folder) == files_under(tmp_path / "seen", folder)
    post_plain, post_seen = (
        files_under(tmp_path / "plain", "B"),
        files_under(tmp_path / "seen", "B"),
    )
    assert post_plain.keys() == post_seen.keys()
    assert all(post_plain[k] != post_seen[k] for k in post_plain)
    rows_plain, rows_seen = read_rows(tmp_path / "plain"), read_rows(tmp_path / "seen")
    assert [r["events"] for r in rows_plain] == [r["events"] for r in rows_seen]
    assert all(r["nuisance"] == [] for r in rows_plain)
    assert all(set(r["nuisance"][0]) >= {"photometric", "sensor", "style"} for r in rows_seen)
    saved = json.loads((tmp_path / "seen" / "generation.json").read_text())["config"]
    assert saved["nuisance"]["donors"]["donors"] == 4 and saved["negatives"] == 0.0
    assert "nuisance model" in (tmp_path / "seen" / "README.md").read_text()


def test_nuisance_bytes_do_not_depend_on_batches_or_workers(source: Path, tmp_path: Path) -> None:
    cfg = config(source, nuisance=PRESETS["default"], negatives=0.3, steps=2)
    files = []
    for key, run in {
        "a": RunOptions(batch_size=1, workers=0),
        "b": RunOptions(batch_size=3, workers=2),
    }.items():
        generate_dataset(cfg, tmp_path / key, run)
        files.append(dataset_files(tmp_path / key))
    assert files[0] == files[1]


def test_hard_negatives_have_empty_labels_and_differing_images(
    source: Path, tmp_path: Path
) -> None:
    cfg = config(source, nuisance=PRESETS["default"], negatives=0.5)
    result = generate_dataset(cfg, tmp_path / "neg", RunOptions(workers=0))
    plain = read_rows(generate_dataset(config(source), tmp_path / "plain").out)
    rows = read_rows(tmp_path / "neg")
    negatives = [r for r in rows if r["status"] == "negative"]
    assert 0 < len(negatives) < len(rows) and result.stats.negatives == len(negatives)
    root = tmp_path / "neg"
    for row in negatives:
        assert row["events"] == []
        name = row["outputs"][0]["name"]
        label = read_image(next((root / "label").glob(f"{name}.*")))
        assert not label.any()
        a = read_image(next((root / "A").glob(f"{name}.*"))).astype(int)
        b = read_image(next((root / "B").glob(f"{name}.*"))).astype(int)
        assert np.abs(a - b).mean() > 1.0
    for row, ref in zip(rows, plain, strict=True):
        if row["status"] != "negative":
            assert row["events"] == ref["events"]
