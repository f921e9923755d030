"""``changen generate``, ``changen gallery`` and ``changen demo`` through a small typer app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from changen.cli.demo import demo, demo_checkpoint
from changen.cli.gallery import gallery
from changen.cli.generate import generate
from changen.data.readers import open_dataset
from changen.errors import ConfigError, FormatError
from fixtures_generation import small_process


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.command("generate")(generate)
    app.command("gallery")(gallery)
    app.command("demo")(demo)

    @app.callback()
    def _root() -> None:
        """Test app holding the generation commands."""

    return app


def invoke(*args: str | Path):
    return CliRunner().invoke(make_app(), [*map(str, args)])


pytestmark = pytest.mark.usefixtures("fake_synthesizers")


def test_generate_from_flags_prints_a_summary(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(
        "generate", source, "--out", out, "--synthesizer", "noise_fill", "--per-image", "2",
        "--events", "remove", "--count", "1:2", "--fill", "surrounding", "--seed", "5",
        "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = "generated 8 samples (8 pairs; 0 no-change, 0 hard negatives, 0 skipped as empty)"
    assert summary in result.output
    assert f"dataset: {out} (levircd, 8 pairs in all)" in result.output
    saved = json.loads((out / "generation.json").read_text())["config"]
    assert saved["seed"] == 5 and saved["per_image"] == 2
    assert [e["kind"] for e in saved["process"]["events"]] == ["remove"]
    assert len(open_dataset(out)) == 8


def test_generate_takes_a_process_json_and_steps(source: Path, tmp_path: Path) -> None:
    config = tmp_path / "process.json"
    config.write_text(json.dumps(small_process().to_dict()))
    out = tmp_path / "out"
    result = invoke(
        "generate", source, "--out", out, "--synthesizer", "noise_fill", "--events", config,
        "--steps", "2", "--layout", "second", "--limit", "2", "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "generation.json").read_text())["config"]
    assert saved["steps"] == 2 and saved["layout"] == "second" and saved["source"]["items"] == 2
    assert len(list((out / "series").iterdir())) == 2
    assert len(open_dataset(out)) == 4  # 2 items × 2 consecutive pairs


def test_generate_errors(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    base = ["generate", source, "--out", out, "--synthesizer", "noise_fill", "--workers", "0"]
    cases = [
        (["--layout", "coco"], FormatError, "unknown layout 'coco'"),
        (["--resume", "--overwrite"], ConfigError, "pick one"),
        (["--crop", "100"], ConfigError, "--crop 100 is larger than item"),
        (["--executor", "dask"], ConfigError, "--executor 'dask'"),
    ]
    for extra, error, message in cases:
        result = invoke(*base, *extra)
        assert isinstance(result.exception, error), result.output
        assert message in str(result.exception)
    assert not out.exists()


def test_gallery_command_writes_the_page(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("generate", source, "--out", out, "--synthesizer", "noise_fill",
                  "--workers", "0", "--no-progress").exit_code == 0  # fmt: skip
    result = invoke("gallery", out, "--limit", "3", "--thumb", "64")
    assert result.exit_code == 0, result.output
    page = out / "gallery" / "index.html"
    assert result.output.strip() == f"gallery: {page.resolve().as_uri()}"
    assert page.read_text().count('class="card"') == 3


def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = invoke(
        "demo", "--out", out, "--synthesizer", "copy_paste", "--n", "3", "--size", "64",
        "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for line in (f"source:  {out / 'source'}", f"dataset: {out / 'dataset'}", "gallery: file://"):
        assert line in result.output
    assert "demo finished in" in result.output
    assert len(open_dataset(out / "dataset")) == 3
    assert (out / "dataset" / "gallery" / "index.html").is_file()
    assert invoke("demo", "--out", out, "--synthesizer", "copy_paste").exit_code != 0
    again = invoke("demo", "--out", out, "--synthesizer", "copy_paste", "--n", "2",
                   "--size", "64", "--workers", "0", "--overwrite", "--no-progress")  # fmt: skip
    assert again.exit_code == 0, again.output
    assert len(open_dataset(out / "dataset")) == 2


def test_demo_without_the_shipped_checkpoint_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("changen.cli.demo.demo_checkpoint", lambda: tmp_path / "missing")
    result = invoke("demo", "--out", tmp_path / "demo")
    assert isinstance(result.exception, ConfigError)
    assert "missing" in str(result.exception) and "--synthesizer copy_paste" in str(
        result.exception
    )
    assert not (tmp_path / "demo").exists()


def test_the_shipped_demo_gan_is_small_and_drives_the_default_demo(tmp_path: Path) -> None:
    checkpoint = demo_checkpoint()
    size = sum(f.stat().st_size for f in checkpoint.iterdir())
    assert size < 20 * 2**20
    out = tmp_path / "demo"
    result = invoke("demo", "--out", out, "--n", "2", "--size", "64", "--workers", "0",
                    "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "dataset" / "generation.json").read_text())["config"]
    assert saved["synthesizer"]["name"] == "changen_gan"
    pairs = [open_dataset(out / "dataset")[i] for i in range(2)]
    changed = [p for p in pairs if (p.change_mask == 1).any()]
    assert changed, "the demo's events changed nothing"
    for p in changed:
        diff = np.abs(p.t2_image.astype(int) - p.t1_image.astype(int)).mean(-1)
        assert diff[p.change_mask == 1].mean() > 10  # changed regions are re-synthesised


def test_pooled_sources_resampled_with_nuisance_and_negatives(tmp_path: Path) -> None:
    from fixtures_generation import world_source

    a, b = world_source(tmp_path / "a", n=2), world_source(tmp_path / "b", n=2, seed=3)
    out = tmp_path / "out"
    result = invoke(
        "generate", a, b, "--out", out, "--synthesizer", "noise_fill", "--events", "remove",
        "--fill", "surrounding", "--gsd", "1.0", "--source-gsd", "0.5", "--nuisance", "mild",
        "--negatives", "0.5", "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [
        json.loads(line) for f in sorted((out / "manifest").glob("*.jsonl")) for line in f.open()
    ]
    assert [r["size"] for r in rows] == [[32, 32]] * 4
    assert {r["name"].split("__")[0] for r in rows} == {"a", "b"}
    assert any(r["status"] == "negative" for r in rows) and "hard negatives" in result.output
    saved = json.loads((out / "generation.json").read_text())["config"]
    assert saved["source"]["gsd"] == 1.0 and len(saved["source"]["datasets"]) == 2
    assert saved["nuisance"]["sensor"] == 0.5


def test_source_errors_are_one_line(tmp_path: Path) -> None:
    result = invoke("generate", "--out", tmp_path / "o", "--no-progress")
    assert result.exit_code != 0 and "name a source dataset" in str(result.exception)
    bad = tmp_path / "n.json"
    bad.write_text('{"sensor": 9}')
    from fixtures_generation import world_source

    src = world_source(tmp_path / "s", n=1)
    result = invoke("generate", src, "--out", tmp_path / "o", "--nuisance", bad, "--no-progress")
    assert "between 0 (off) and 4" in str(result.exception)


def test_idabd_0_255_masks_read_with_binary_threshold(real_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(
        "generate", real_root / "idabd_pre", "--out", out, "--binary-threshold", "127",
        "--limit", "1", "--crop", "256", "--events", "remove", "--nuisance", "default",
        "--synthesizer", "copy_paste", "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    label = open_dataset(out)[0].change_mask
    assert set(np.unique(label)) <= {0, 1}
