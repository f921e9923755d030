"""``changen detect`` train / finetune / eval / predict / info on generated sample-world data."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner, Result

from changen.cli.detect import app as detect_app
from changen.cli.detect import canonical
from changen.data.imageio import read_image
from changen.errors import ConfigError, OutputExistsError

torch.set_num_threads(1)
SMALL = ["--model", "fc-siam-diff", "--batch-size", "2", "--crop", "64", "--no-progress"]


def make_app() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(detect_app, name="detect")
    return root


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(make_app(), ["detect", *map(str, args)])


def ok(*args: str | Path) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def run(worlds: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli_run") / "run"
    result = ok("train", worlds["pairs"], "--out", out, "--steps", "3", *SMALL)
    assert "trained 3 steps" in result.output
    return out


def test_info_json_and_forgiving_names() -> None:
    result = ok("info", "--model", "ChangeStar-1x96", "--backbone", "r18", "--json", "--size", "64")
    facts = json.loads(result.output)
    assert facts["model"] == "changestar_1x96" and facts["backbone"] == "resnet18"
    assert facts["params"] == 16_401_569  # the paper's 16.4M
    assert 1e9 < facts["flops"] < 1e10 and facts["flops_size"] == 64  # one 64² pair: ~2 GFLOPs
    assert canonical("MiT-B1") == "mit_b1" and canonical("resnet-18") == "resnet18"
    table = ok("info", "--model", "fc_siam_diff", "--no-flops").output
    assert "1,350,001" in table
    bad = invoke("info", "--model", "nonet")
    assert isinstance(bad.exception, ConfigError) and "changestar_1x96" in str(bad.exception)


def test_eval_json_and_per_image_csv(run: Path, worlds: dict[str, Path], tmp_path: Path) -> None:
    csv_path = tmp_path / "per_image.csv"
    result = ok("eval", worlds["pairs"], "--ckpt", run, "--json", "--csv", csv_path)
    scores = json.loads(result.output)
    for key in ("precision", "recall", "f1", "iou"):
        assert 0.0 <= scores[key] <= 1.0
    assert scores["images"] == 8 and scores["tp"] + scores["fn"] > 0
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["name"] for r in rows] == [f"world_{i:05d}" for i in range(8)]
    assert sum(int(r["tp"]) for r in rows) == scores["tp"]
    table = ok("eval", worlds["pairs"], "--ckpt", run, "--csv", csv_path, "--no-progress")
    assert "f1" in table.output and "per-image scores" in table.output


def test_predict_png_with_preview(run: Path, worlds: dict[str, Path], tmp_path: Path) -> None:
    t1, t2 = (
        worlds["pairs"] / "A" / "world_00001.png",
        worlds["pairs"] / "B" / "world_00001.png",
    )
    out = tmp_path / "change.png"
    result = ok("predict", t1, t2, "--ckpt", run, "--out", out, "--tile", "64", "--overlap", "16")
    assert "% changed" in result.output
    change = read_image(out)[..., 0]
    assert change.shape == (64, 64) and set(np.unique(change)) <= {0, 255}
    assert (tmp_path / "change.preview.png").is_file()
    again = invoke("predict", t1, t2, "--ckpt", run, "--out", out)
    assert isinstance(again.exception, OutputExistsError)
    both = invoke("predict", t1, t2, "--out", tmp_path / "x.png")
    assert isinstance(both.exception, ConfigError) and "--ckpt" in str(both.exception)


def test_finetune_with_train_fraction(run: Path, worlds: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "ft"
    args = ["--init", run, worlds["pairs"], "--out", out, "--steps", "2"]
    ok(
        "finetune",
        *args,
        "--train-fraction",
        "0.5",
        "--batch-size",
        "2",
        "--crop",
        "64",
        "--no-progress",
    )
    saved = json.loads((out / "config.json").read_text())
    assert saved["init"] == str(run) and saved["train"]["train_fraction"] == 0.5
    assert saved["train"]["model"] == "fc_siam_diff"  # the model comes from the checkpoint


def test_resume_from_the_command_line(worlds: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [worlds["pairs"], "--out", out, "--steps", "4", "--save-every", "2"]
    ok("train", *args, *SMALL)
    for name in ("step-4", "last"):  # as if killed after step 2
        shutil.rmtree(out / "checkpoints" / name)
    result = ok("train", *args, *SMALL, "--resume")
    assert "trained 4 steps" in result.output
    busy = invoke("train", *args, *SMALL)
    assert isinstance(busy.exception, OutputExistsError)
    nothing = invoke("train", worlds["pairs"], "--out", tmp_path / "new", *SMALL, "--resume")
    assert isinstance(nothing.exception, ConfigError)


def test_star_needs_scenes_and_scenes_need_star(worlds: dict[str, Path], tmp_path: Path) -> None:
    wrong = invoke("train", worlds["pairs"], "--out", tmp_path / "a", "--mode", "star", *SMALL)
    assert isinstance(wrong.exception, ConfigError) and "supervised" in str(wrong.exception)
    other = invoke("train", worlds["scenes"], "--out", tmp_path / "b", *SMALL)
    assert isinstance(other.exception, ConfigError) and "star" in str(other.exception)
    ok(
        "train",
        worlds["scenes"],
        "--out",
        tmp_path / "c",
        "--mode",
        "gstar",
        "--objects",
        "8",
        "--steps",
        "1",
        *SMALL,
    )


@pytest.mark.real
def test_eval_on_real_levircd_crops(real_root: Path, run: Path, tmp_path: Path) -> None:
    crops = real_root / "levircd_crops"
    if not crops.is_dir():
        pytest.skip("levircd_crops not in the real samples")
    result = ok(
        "eval",
        crops,
        "--format",
        "levircd",
        "--ckpt",
        run,
        "--json",
        "--csv",
        tmp_path / "levir.csv",
    )
    scores = json.loads(result.output)
    assert scores["images"] == 11
    assert {"precision", "recall", "f1", "iou"} <= set(scores)
    assert scores["tp"] + scores["fn"] > 0  # 0/255 labels read as change


def geotiff_pair(worlds: dict[str, Path], tmp_path: Path) -> tuple[Path, Path]:
    """World pair 1 as georeferenced GeoTIFFs in ``tmp_path``."""
    from affine import Affine

    from changen.data.raster import write_raster
    from changen.sample import GeoRef

    georef = GeoRef("EPSG:32616", Affine(0.5, 0.0, 740000.0, 0.0, -0.5, 3730000.0))
    paths = []
    for folder, name in (("A", "t1.tif"), ("B", "t2.tif")):
        write_raster(
            tmp_path / name, read_image(worlds["pairs"] / folder / "world_00001.png"), georef
        )
        paths.append(tmp_path / name)
    return paths[0], paths[1]


def test_predict_streams_geotiff_with_probability(
    run: Path, worlds: dict[str, Path], tmp_path: Path
) -> None:
    from changen.data.raster import read_raster

    t1, t2 = geotiff_pair(worlds, tmp_path)
    out, prob = tmp_path / "maps" / "change.tif", tmp_path / "maps" / "prob.tif"
    args = ("--ckpt", run, "--out", out, "--tile", "32", "--overlap", "8", "--no-progress")
    result = ok("predict", t1, t2, *args, "--probability", prob, "--precision", "fp32")
    assert "(georeferenced)" in result.output and str(prob) in result.output
    change, georef = read_raster(out)
    probability, prob_georef = read_raster(prob)
    assert georef is not None and georef == prob_georef == read_raster(t1)[1]
    assert np.array_equal(change[..., 0], (probability[..., 0] > 0.5).astype(np.uint8))
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "change.preview.png", "change.tif", "prob.tif"
    ]  # fmt: skip
    bad = invoke("predict", t1, t2, *args, "--overwrite", "--precision", "fp16")
    assert isinstance(bad.exception, ConfigError) and "fp16" in str(bad.exception)


def test_predict_write_failure_is_one_line_and_leaves_nothing(
    run: Path,
    worlds: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import errno
    import sys

    from changen.cli.app import main
    from changen.detectors import inference

    t1, t2 = geotiff_pair(worlds, tmp_path)

    def status(*args: str | Path) -> tuple[object, str]:
        argv = ["changen", "detect", "predict", str(t1), str(t2), *map(str, args)]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as e:
            main()
        return e.value.code, capsys.readouterr().err

    def read_only(*args: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(inference, "_geotiff", read_only)
    code, err = status("--ckpt", run, "--out", tmp_path / "out" / "c.tif", "--no-progress")
    assert code == 3 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{tmp_path / 'out' / 'c.tif'}: cannot write the change map (Read-only" in err
    assert list((tmp_path / "out").iterdir()) == []
    monkeypatch.undo()
    (tmp_path / "file").write_text("not a folder")
    code, err = status("--ckpt", run, "--out", tmp_path / "file" / "c.tif", "--no-progress")
    assert code == 3 and err.count("\n") == 1 and "cannot write" in err
    assert (tmp_path / "file").read_text() == "not a folder"
