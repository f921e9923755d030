"""`changen data …` end to end: inspect on every real sample folder, errors as one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from changen import __version__
from changen.cli.app import app

runner = CliRunner()


def _changen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "changen.cli.app", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_version_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("data", "simulate"):
        assert command in result.output


def test_user_error_is_one_line_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "junk.txt").write_text("not a dataset")
    proc = _changen("data", "inspect", str(tmp_path))
    assert proc.returncode == 3  # a data error
    assert proc.stderr.strip().count("\n") == 0
    assert "could not recognise" in proc.stderr and "Traceback" not in proc.stderr


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    proc = _changen("data", "inspect", str(tmp_path))
    assert proc.returncode == 3 and "empty" in proc.stderr


def test_sample_world_then_inspect(tmp_path: Path) -> None:
    out = tmp_path / "world"
    result = runner.invoke(
        app, ["data", "sample-world", "--out", str(out), "--n", "3", "--size", "64"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["data", "inspect", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["n_items"] == 3 and summary["sizes"] == {"64x64": 3}
    assert summary["taxonomy"] == "openearthmap" and summary["n_objects"] > 0
    assert sum(summary["class_pixels"].values()) == 3 * 64 * 64


REAL_EXPECTED = {
    # folder: (format, n_items, n_objects or None, pixels per item)
    "xview2_joplin": ("xview2", 3, 185 + 198 + 103, 1024 * 1024),
    "levircd_crops": ("levircd", 11, None, 256 * 256),
    "loveda": ("loveda", 3, None, 1024 * 1024),
    "spacenet4_atlanta": ("geotiff_vector", 1, 43, 900 * 900),
    "oam_kampala": ("xyz_tiles", 147, None, 256 * 256),
}


@pytest.mark.real
@pytest.mark.parametrize("folder", sorted(REAL_EXPECTED))
def test_inspect_real_samples(real_root: Path, folder: str) -> None:
    fmt, n_items, n_objects, pixels = REAL_EXPECTED[folder]
    result = runner.invoke(app, ["data", "inspect", str(real_root / folder), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["format"] == fmt
    assert summary["n_items"] == n_items
    if n_objects is not None:
        assert summary["n_objects"] == n_objects
    if summary["kind"] == "scene":
        assert sum(summary["class_pixels"].values()) == n_items * pixels
    else:
        assert sum(summary["change_pixels"].values()) == n_items * pixels


def test_label_values_and_binary_threshold_options(tmp_path: Path) -> None:
    import numpy as np

    from fixtures_change import build_folder_dataset

    build_folder_dataset(tmp_path, "levircd", np.random.default_rng(0), label_values=(1, 2))
    result = runner.invoke(app, ["data", "inspect", str(tmp_path), "--json"])
    assert result.exit_code != 0 and "--label-values" in str(result.exception)
    for flags in (["--label-values", "1:2"], ["--binary-threshold", "1"]):
        result = runner.invoke(app, ["data", "inspect", str(tmp_path), "--json", *flags])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output)
        assert set(summary["change_pixels"]) == {"0", "1"}
    result = runner.invoke(app, ["data", "inspect", str(tmp_path), "--label-values", "1"])
    assert "UNCHANGED:CHANGED" in str(result.exception)
